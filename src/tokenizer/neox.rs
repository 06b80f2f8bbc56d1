//! The GPT-NeoX-20B tokenizer of RWKV "Pile" models, loaded from its Hugging Face
//! `tokenizer.json`: added tokens, NFC, GPT-2 pre-tokenizer, byte-level BPE.
//!
//! Why hand-written and not the `tokenizers` crate (measured 2026-11-28, release wasm32, opt-level
//! 3, LTO, sizes before/after wasm-strip): a scratch cdylib that only encodes with
//! `tokenizers = "=0.22.2"` (`default-features = false`, `unstable_wasm`: fancy-regex, no C) does
//! build for wasm32-unknown-unknown, but weighs 2,888,027 bytes against 15,334 without it:
//! +2.8 MB (+2.6 MB stripped, +0.8 MB gzipped), over our 1.5 MB budget. The same scratch crate
//! with this module (World and byte included, with `unicode-normalization` for NFC and
//! `unicode-properties` for \p{L}/\p{N}) weighs 292,610 bytes: +0.28 MB (+0.13 MB gzipped).
//!
//! Fidelity: ids equal those of the reference (Hugging Face `tokenizers` 0.23.3, Python) on the
//! cases in tests/tokenizer.rs and on 99,995 of 100,000 random strings (all scripts, marks, emoji,
//! control and Unicode spaces, added-token text). Each of the other 5 holds a character that is
//! newer than the reference's Unicode tables (e.g. U+119E0, U+18F13, U+1D25B), which our tables
//! class or reorder differently.
//!
//! Encoding, as the reference does it: (1) cut out the added tokens that match the raw text
//! (`<|endoftext|>`, `<|padding|>`), (2) NFC-normalize the rest, (3) cut out the added tokens
//! that match normalized text (NeoX's runs of 2 to 24 spaces), (4) pre-tokenize each remaining
//! piece, (5) BPE-merge each word's bytes. Added tokens match leftmost-longest.

use std::borrow::Cow;
use std::collections::HashMap;

use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

use super::bpe::{merge_word, pair_key, Merges};
use super::json::Json;
use super::pieces::Pieces;
use super::pretokenize;
use crate::error::{Error, Result};

const WHAT: &str = "neox";

#[derive(Clone)]
pub struct NeoX {
    pieces: Pieces,
    /// Boxed so that `Tokenizer` stays small whichever variant it holds.
    byte_ids: Box<[u32; 256]>,
    merges: Merges,
    /// Added tokens matched before normalization, and after it.
    raw_added: AddedTokens,
    normalized_added: AddedTokens,
    nfc: bool,
}

fn bad(why: impl std::fmt::Display) -> Error {
    Error::invalid_options(format!("neox tokenizer.json: {why}"))
}

impl NeoX {
    pub fn load(json: &[u8]) -> Result<NeoX> {
        let root = Json::parse(json)?;
        let nfc = check_normalizer(root.get("normalizer"))?;
        check_pre_tokenizer(root.get("pre_tokenizer"))?;
        let model = root.get("model").ok_or_else(|| bad("no \"model\""))?;
        check_model_options(model)?;

        // The vocabulary is keyed by GPT-2's byte-level text: one printable char per byte.
        let Some(Json::Object(vocab_json)) = model.get("vocab") else {
            return Err(bad("model.vocab is not an object"));
        };
        let mut vocab: HashMap<&str, u32> = HashMap::with_capacity(vocab_json.len());
        let mut pieces = Pieces::default();
        let to_byte = byte_level_inverse();
        for (text, id) in vocab_json {
            let id = id.as_u32().ok_or_else(|| bad(format!("the id of {text:?} is not an integer")))?;
            let bytes: Option<Vec<u8>> = text.chars().map(|c| to_byte.get(c as usize).copied().flatten()).collect();
            let bytes = bytes.ok_or_else(|| bad(format!("vocabulary token {text:?} is not byte-level text")))?;
            pieces.insert(id, &bytes).map_err(bad)?;
            if vocab.insert(text, id).is_some() {
                return Err(bad(format!("vocabulary token {text:?} appears twice")));
            }
        }
        // Every byte that UTF-8 text can contain needs a token, so encoding never gets stuck; the
        // 13 that it cannot (0xc0, 0xc1, 0xf5..) are absent from NeoX's vocabulary and never looked up.
        let mut byte_ids = Box::new([0u32; 256]);
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            let text = byte_level_char(b as u8).to_string();
            match vocab.get(text.as_str()) {
                Some(&id) => *slot = id,
                None if matches!(b, 0xc0 | 0xc1 | 0xf5..=0xff) => {}
                None => return Err(bad(format!("byte 0x{b:02x} has no token"))),
            }
        }
        let merges = load_merges(model.get("merges"), &vocab)?;
        let (raw_added, normalized_added) = load_added_tokens(root.get("added_tokens"), &mut pieces)?;
        Ok(NeoX { pieces, byte_ids, merges, raw_added, normalized_added, nfc })
    }

    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 1);
        let bpe = |word: &str, ids: &mut Vec<u32>| merge_word(word.as_bytes(), &self.byte_ids, &self.merges, ids);
        self.raw_added.split(text, &mut ids, &mut |piece, ids| {
            let normalized = if self.nfc && is_nfc_quick(piece.chars()) != IsNormalized::Yes {
                Cow::Owned(piece.nfc().collect::<String>())
            } else {
                Cow::Borrowed(piece)
            };
            self.normalized_added
                .split(&normalized, ids, &mut |rest, ids| pretokenize::split(rest, |word| bpe(word, ids)));
        });
        ids
    }

    pub fn decode(&self, ids: &[u32]) -> Result<Vec<u8>> {
        self.pieces.decode(ids, WHAT)
    }

    pub fn vocab_size(&self) -> usize {
        self.pieces.id_limit()
    }
}

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes stand for themselves; the other 68 bytes
/// (controls, space, DEL, NBSP, soft hyphen) take the code points 256.. in byte order.
fn byte_level_char(b: u8) -> char {
    let printable = |b: u8| matches!(b, 33..=126 | 161..=172 | 174..=255);
    if printable(b) {
        return b as char;
    }
    let rank = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + rank).unwrap_or('\u{0}')
}

/// Code point → byte, the inverse of `byte_level_char` (None for other code points).
fn byte_level_inverse() -> [Option<u8>; 324] {
    let mut table = [None; 324];
    for b in 0..=255u8 {
        table[byte_level_char(b) as usize] = Some(b);
    }
    table
}

/// NFC or nothing; other normalizers would silently change the ids, so they are refused.
fn check_normalizer(n: Option<&Json>) -> Result<bool> {
    match n {
        None | Some(Json::Null) => Ok(false),
        Some(n) if n.get("type").and_then(Json::as_str) == Some("NFC") => Ok(true),
        Some(_) => Err(bad("only the NFC normalizer is supported")),
    }
}

fn check_pre_tokenizer(p: Option<&Json>) -> Result<()> {
    let p = p.ok_or_else(|| bad("no \"pre_tokenizer\""))?;
    let flag = |key: &str| p.get(key).and_then(Json::as_bool);
    if p.get("type").and_then(Json::as_str) != Some("ByteLevel")
        || flag("add_prefix_space") == Some(true)
        || flag("use_regex") == Some(false)
    {
        return Err(bad("only the ByteLevel pre-tokenizer (no prefix space, GPT-2 regex) is supported"));
    }
    Ok(())
}

fn check_model_options(model: &Json) -> Result<()> {
    if model.get("type").and_then(Json::as_str).is_some_and(|t| t != "BPE") {
        return Err(bad("model.type is not \"BPE\""));
    }
    let set = |key: &str| match model.get(key) {
        None | Some(Json::Null) | Some(Json::Bool(false)) => false,
        Some(Json::String(s)) => !s.is_empty(),
        Some(_) => true,
    };
    for key in ["dropout", "continuing_subword_prefix", "end_of_word_suffix", "byte_fallback", "ignore_merges"] {
        if set(key) {
            return Err(bad(format!("model.{key} is not supported")));
        }
    }
    Ok(())
}

/// Merges as `"a b"` strings (older files) or `["a", "b"]` pairs; rank = position in the list.
fn load_merges(merges: Option<&Json>, vocab: &HashMap<&str, u32>) -> Result<Merges> {
    let Some(Json::Array(list)) = merges else { return Err(bad("model.merges is not an array")) };
    let mut out = Merges::with_capacity(list.len());
    let id = |s: &str| vocab.get(s).copied().ok_or_else(|| bad(format!("merge part {s:?} is not in the vocabulary")));
    for (rank, m) in list.iter().enumerate() {
        let (left, right) = match m {
            Json::String(s) => s.split_once(' ').filter(|(_, r)| !r.contains(' ')),
            Json::Array(pair) => match pair.as_slice() {
                [Json::String(l), Json::String(r)] => Some((l.as_str(), r.as_str())),
                _ => None,
            },
            _ => None,
        }
        .ok_or_else(|| bad(format!("merge #{rank} is not a pair of tokens")))?;
        let merged = id(&format!("{left}{right}"))?;
        // A later duplicate overwrites an earlier one, as in the reference implementation.
        out.insert(pair_key(id(left)?, id(right)?), (rank as u32, merged));
    }
    Ok(out)
}

/// Splits `added_tokens` into those matched on raw text and those matched after normalization,
/// and gives ids that the vocabulary lacks their text for decoding.
fn load_added_tokens(list: Option<&Json>, pieces: &mut Pieces) -> Result<(AddedTokens, AddedTokens)> {
    let (mut raw, mut normalized) = (AddedTokens::default(), AddedTokens::default());
    let Some(list) = list else { return Ok((raw, normalized)) };
    let Json::Array(list) = list else { return Err(bad("added_tokens is not an array")) };
    for t in list {
        let id = t.get("id").and_then(Json::as_u32).ok_or_else(|| bad("an added token has no integer id"))?;
        let content =
            t.get("content").and_then(Json::as_str).ok_or_else(|| bad(format!("added token {id} has no content")))?;
        let flag = |key: &str| t.get(key).and_then(Json::as_bool);
        if ["lstrip", "rstrip", "single_word"].iter().any(|k| flag(k) == Some(true)) {
            return Err(bad(format!("added token {content:?} uses lstrip/rstrip/single_word, which is not supported")));
        }
        match pieces.get(id) {
            Some(known) if known != content.as_bytes() => {
                return Err(bad(format!("added token {content:?} reuses the id {id} of another token")))
            }
            Some(_) => {}
            None => pieces.insert(id, content.as_bytes()).map_err(bad)?,
        }
        let special = flag("special").unwrap_or(false);
        let target = if flag("normalized").unwrap_or(!special) { &mut normalized } else { &mut raw };
        target.add(content, id);
    }
    Ok((raw, normalized))
}

/// A few literal tokens found by leftmost-longest matching, indexed by their first byte.
#[derive(Clone, Default)]
struct AddedTokens {
    /// Indexed by first byte (256 lists once a token is added): (text, id), longest first.
    by_first_byte: Vec<Vec<(String, u32)>>,
}

impl AddedTokens {
    fn add(&mut self, text: &str, id: u32) {
        let Some(&first) = text.as_bytes().first() else { return };
        self.by_first_byte.resize(256, Vec::new());
        let list = &mut self.by_first_byte[first as usize];
        list.push((text.to_string(), id));
        list.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
    }

    /// Pushes matched tokens' ids to `ids` and hands the text between them to `rest`.
    fn split(&self, text: &str, ids: &mut Vec<u32>, rest: &mut dyn FnMut(&str, &mut Vec<u32>)) {
        if self.by_first_byte.is_empty() {
            return rest(text, ids);
        }
        let bytes = text.as_bytes();
        let (mut start, mut i) = (0, 0);
        while i < bytes.len() {
            let found =
                self.by_first_byte[bytes[i] as usize].iter().find(|(t, _)| bytes[i..].starts_with(t.as_bytes()));
            match found {
                // Token texts are whole UTF-8 strings, so both cuts fall on char boundaries.
                Some((t, id)) => {
                    if start < i {
                        rest(&text[start..i], ids);
                    }
                    ids.push(*id);
                    i += t.len();
                    start = i;
                }
                None => i += 1,
            }
        }
        if start < bytes.len() {
            rest(&text[start..], ids);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_alphabet() {
        assert_eq!(byte_level_char(b'a'), 'a');
        assert_eq!(byte_level_char(b' '), 'Ġ');
        assert_eq!(byte_level_char(b'\n'), 'Ċ');
        assert_eq!(byte_level_char(0xad), '\u{143}');
        let inv = byte_level_inverse();
        assert_eq!((0..=255u8).filter(|&b| inv[byte_level_char(b) as usize] == Some(b)).count(), 256);
    }
}
