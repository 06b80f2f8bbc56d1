//! Tokenizers for RWKV models: text ↔ token ids.
//!
//! - `world`: the 65k RWKV World vocabulary, greedy longest match over bytes (v5+ models);
//! - `neox`: GPT-NeoX-20B byte-level BPE from a Hugging Face `tokenizer.json` (Pile models, Raven);
//! - `byte`: id = byte value (the tiny test models).
//!
//! Vocabularies are loaded at run time from the files' bytes, so no vocabulary is baked into the
//! `.wasm`. `decode` returns raw bytes, not a `String`, because a token may hold part of a UTF-8
//! character: streaming callers join bytes across tokens before turning them into text.

mod bpe;
mod byte;
pub(crate) mod json;
mod neox;
mod pieces;
mod pretokenize;
mod trie;
mod world;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerKind {
    World,
    NeoX,
    Byte,
}

impl TokenizerKind {
    /// "world", "neox" (or its alias "20b"), "byte".
    pub fn from_name(name: &str) -> Result<TokenizerKind> {
        // "20B" and "pile" name the same tokenizer: GPT-NeoX-20B's, trained on the Pile.
        match name {
            "world" => Ok(TokenizerKind::World),
            "neox" | "20b" | "20B" | "pile" => Ok(TokenizerKind::NeoX),
            "byte" => Ok(TokenizerKind::Byte),
            _ => Err(Error::invalid_options(format!(
                "unknown tokenizer {name:?}: use \"world\", \"neox\" (or \"20B\", \"pile\") or \"byte\""
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TokenizerKind::World => "world",
            TokenizerKind::NeoX => "neox",
            TokenizerKind::Byte => "byte",
        }
    }
}

/// The tokenizer a model with `n_vocab` outputs was trained with, guessed from that size.
/// NeoX's ids stop at 50276; models pad the embedding to 50277 (rwkv.cpp's 20B models), 50304 or
/// 50432, so the band up to the next multiple of 128 after 50432 is taken as NeoX.
pub fn kind_for_vocab(n_vocab: usize) -> Option<TokenizerKind> {
    match n_vocab {
        65_536 => Some(TokenizerKind::World),
        50_277..=50_560 => Some(TokenizerKind::NeoX),
        256 => Some(TokenizerKind::Byte),
        _ => None,
    }
}

/// A loaded tokenizer. Cheap to share (`&Tokenizer` is all `encode`/`decode` need); cloning
/// copies the vocabulary.
#[derive(Clone)]
pub enum Tokenizer {
    World(world::World),
    NeoX(neox::NeoX),
    Byte,
}

/// Brief on purpose: the derived form would print the whole vocabulary.
impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokenizer({}, {} ids)", self.name(), self.vocab_size())
    }
}

impl Tokenizer {
    /// From the bytes of `rwkv_vocab_v20230424.txt`.
    pub fn world(vocab_file: &[u8]) -> Result<Tokenizer> {
        world::World::load(vocab_file).map(Tokenizer::World)
    }

    /// From the bytes of NeoX-20B's `tokenizer.json`.
    pub fn neox(tokenizer_json: &[u8]) -> Result<Tokenizer> {
        neox::NeoX::load(tokenizer_json).map(Tokenizer::NeoX)
    }

    pub fn byte() -> Tokenizer {
        Tokenizer::Byte
    }

    /// A tokenizer of `kind` from its vocabulary file (ignored for `Byte`, which has none).
    pub fn load(kind: TokenizerKind, file: &[u8]) -> Result<Tokenizer> {
        match kind {
            TokenizerKind::World => Tokenizer::world(file),
            TokenizerKind::NeoX => Tokenizer::neox(file),
            TokenizerKind::Byte => Ok(Tokenizer::byte()),
        }
    }

    pub fn kind(&self) -> TokenizerKind {
        match self {
            Tokenizer::World(_) => TokenizerKind::World,
            Tokenizer::NeoX(_) => TokenizerKind::NeoX,
            Tokenizer::Byte => TokenizerKind::Byte,
        }
    }

    /// "world", "neox" or "byte".
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    pub fn encode(&self, text: &str) -> Vec<u32> {
        match self {
            Tokenizer::World(t) => t.encode(text),
            Tokenizer::NeoX(t) => t.encode(text),
            Tokenizer::Byte => byte::encode(text),
        }
    }

    /// The bytes of `ids`, concatenated. An id with no token is an `InvalidOptions` error.
    pub fn decode(&self, ids: &[u32]) -> Result<Vec<u8>> {
        match self {
            Tokenizer::World(t) => t.decode(ids),
            Tokenizer::NeoX(t) => t.decode(ids),
            Tokenizer::Byte => byte::decode(ids),
        }
    }

    /// One past the highest id the vocabulary defines (World: 65530, NeoX: 50277, byte: 256).
    /// Models may have more outputs than this (World models have 65536); ids without a token
    /// fail to decode.
    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::World(t) => t.vocab_size(),
            Tokenizer::NeoX(t) => t.vocab_size(),
            Tokenizer::Byte => byte::VOCAB_SIZE,
        }
    }
}
