//! The RWKV "World" tokenizer: a 65k vocabulary (`rwkv_vocab_v20230424.txt`), encoded by greedy
//! longest match over the UTF-8 bytes, exactly like the reference `TRIE_TOKENIZER`.
//!
//! File format, one token per line: `id repr byte_length`, where `repr` is Python's repr of the
//! token, a str literal ('abc', "it's", '\n', '\u3000') or a bytes literal (b'\xe4\xbd') for
//! tokens that are not whole UTF-8 characters. The repr may itself contain spaces, so the id is
//! everything before the first space and the length everything after the last one.

use super::pieces::Pieces;
use super::trie::Trie;
use crate::error::{Error, Result};

const WHAT: &str = "world";

#[derive(Clone)]
pub struct World {
    trie: Trie,
    pieces: Pieces,
}

impl World {
    pub fn load(file: &[u8]) -> Result<World> {
        let mut pieces = Pieces::default();
        let mut has_byte = [false; 256];
        for (n, line) in file.split(|&b| b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let bad = |why: &str| Error::invalid_options(format!("world vocabulary, line {}: {why}", n + 1));
            let line = std::str::from_utf8(line).map_err(|_| bad("not valid UTF-8"))?;
            let (Some(first), Some(last)) = (line.find(' '), line.rfind(' ')) else {
                return Err(bad("expected `id repr byte_length`"));
            };
            if first == last {
                return Err(bad("expected `id repr byte_length`"));
            }
            let id: u32 = line[..first].parse().map_err(|_| bad("the id is not a number"))?;
            let len: usize = line[last + 1..].parse().map_err(|_| bad("the byte length is not a number"))?;
            let bytes = python_literal(&line[first + 1..last]).map_err(bad)?;
            if bytes.len() != len {
                return Err(bad(&format!("the token has {} bytes but the line says {len}", bytes.len())));
            }
            pieces.insert(id, &bytes).map_err(|why| bad(&why))?;
            if let [b] = bytes[..] {
                has_byte[b as usize] = true;
            }
        }
        // Every single byte must be a token, so that encoding can never get stuck.
        if let Some(b) = has_byte.iter().position(|&h| !h) {
            return Err(Error::invalid_options(format!(
                "world vocabulary: byte 0x{b:02x} has no token of its own, so some text could not be encoded"
            )));
        }
        // Built from the id table, which already holds every token's bytes.
        let tokens = (0..pieces.id_limit() as u32).filter_map(|id| pieces.get(id).map(|bytes| (bytes, id)));
        let trie = Trie::build(tokens).map_err(|dup| {
            Error::invalid_options(format!(
                "world vocabulary: the token {:?} appears twice",
                String::from_utf8_lossy(dup)
            ))
        })?;
        Ok(World { trie, pieces })
    }

    pub fn encode(&self, text: &str) -> Vec<u32> {
        let bytes = text.as_bytes();
        let mut ids = Vec::with_capacity(bytes.len() / 3 + 1);
        let mut i = 0;
        while i < bytes.len() {
            // `load` checked that every byte is a token, so there is always a match; the fallback
            // only keeps the loop finite should that ever change.
            let (id, len) = self.trie.longest_prefix(&bytes[i..]).unwrap_or((0, 1));
            ids.push(id);
            i += len;
        }
        ids
    }

    pub fn decode(&self, ids: &[u32]) -> Result<Vec<u8>> {
        self.pieces.decode(ids, WHAT)
    }

    pub fn vocab_size(&self) -> usize {
        self.pieces.id_limit()
    }
}

/// The bytes of a Python str literal (as UTF-8) or bytes literal (raw), as `repr()` writes them.
fn python_literal(repr: &str) -> std::result::Result<Vec<u8>, &'static str> {
    let (is_bytes, quoted) = match repr.strip_prefix('b') {
        Some(rest) => (true, rest),
        None => (false, repr),
    };
    let quote = match quoted.chars().next() {
        Some(q @ ('\'' | '"')) => q,
        _ => return Err("the token is not a quoted Python literal"),
    };
    let body =
        quoted.strip_prefix(quote).and_then(|s| s.strip_suffix(quote)).ok_or("the token's closing quote is missing")?;
    let mut out = Vec::with_capacity(body.len());
    let mut chars = body.chars();
    let push_char = |out: &mut Vec<u8>, c: char| out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
    while let Some(c) = chars.next() {
        if c == quote {
            return Err("unescaped quote inside the token");
        }
        if c != '\\' {
            if is_bytes && !c.is_ascii() {
                return Err("non-ASCII character in a bytes literal");
            }
            push_char(&mut out, c);
            continue;
        }
        let esc = chars.next().ok_or("the token ends with a lone backslash")?;
        let simple = match esc {
            '\\' | '\'' | '"' => Some(esc),
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'v' => Some('\u{b}'),
            _ => None,
        };
        if let Some(s) = simple {
            push_char(&mut out, s);
            continue;
        }
        let digits = match esc {
            'x' => 2,
            'u' if !is_bytes => 4,
            'U' if !is_bytes => 8,
            _ => return Err("unknown escape sequence"),
        };
        let mut value = 0u32;
        for _ in 0..digits {
            let d = chars.next().and_then(|h| h.to_digit(16)).ok_or("bad hex digits in an escape")?;
            value = value * 16 + d;
        }
        if is_bytes {
            out.push(value as u8); // \xHH in a bytes literal is the raw byte
        } else {
            // In a str literal \xHH, \uHHHH and \UHHHHHHHH all name a code point.
            push_char(&mut out, char::from_u32(value).ok_or("escape names an invalid code point")?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_literals() {
        assert_eq!(python_literal("'abc'").unwrap(), b"abc");
        assert_eq!(python_literal("\"it's\"").unwrap(), b"it's");
        assert_eq!(python_literal(r"'\n\t\\\''").unwrap(), b"\n\t\\'");
        assert_eq!(python_literal(r"'\x85'").unwrap(), "\u{85}".as_bytes());
        assert_eq!(python_literal(r"'\u3000'").unwrap(), "\u{3000}".as_bytes());
        assert_eq!(python_literal(r"'\U0001f600'").unwrap(), "😀".as_bytes());
        assert_eq!(python_literal(r"b'\xe4\xbd'").unwrap(), b"\xe4\xbd");
        assert_eq!(python_literal("'以下'").unwrap(), "以下".as_bytes());
        for bad in ["abc", "'abc", "'a'b'", r"'\q'", r"'\x4'", r"b'\u1234'", "b'é'", r"'\'", r"'\ud800'", "'", ""] {
            assert!(python_literal(bad).is_err(), "{bad}");
        }
    }
}
