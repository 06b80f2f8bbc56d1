//! The byte tokenizer of the tiny test models: token id = byte value, 256 ids.

use crate::error::{Error, Result};

pub const VOCAB_SIZE: usize = 256;

pub fn encode(text: &str) -> Vec<u32> {
    text.bytes().map(u32::from).collect()
}

pub fn decode(ids: &[u32]) -> Result<Vec<u8>> {
    ids.iter()
        .map(|&id| {
            u8::try_from(id).map_err(|_| {
                Error::invalid_options(format!("unknown token id {id}: the byte vocabulary has ids 0..=255"))
            })
        })
        .collect()
}
