//! The id → bytes table that every loaded vocabulary decodes with: all token bytes in one buffer,
//! plus (offset, length) per id, so 65k tokens cost two allocations instead of 65k.

use crate::error::{Error, Result};

/// Ids at or above this are refused when loading, so a hostile file cannot make us allocate a
/// table of billions of entries (real vocabularies stop at 65,536).
pub const MAX_ID: u32 = 1 << 22;

#[derive(Clone, Default)]
pub struct Pieces {
    bytes: Vec<u8>,
    /// (offset, length) into `bytes`; length 0 marks an id with no token (tokens are never empty).
    spans: Vec<(u32, u32)>,
}

impl Pieces {
    /// Registers `piece` for `id`; the error says why not, for the caller to put in context.
    pub fn insert(&mut self, id: u32, piece: &[u8]) -> std::result::Result<(), String> {
        if id >= MAX_ID {
            return Err(format!("token id {id} is too large (limit {MAX_ID})"));
        }
        if piece.is_empty() {
            return Err(format!("token id {id} is empty"));
        }
        if self.bytes.len() + piece.len() > u32::MAX as usize {
            return Err("the vocabulary holds more than 4 GB of text".to_string());
        }
        let i = id as usize;
        if i >= self.spans.len() {
            self.spans.resize(i + 1, (0, 0));
        }
        if self.spans[i].1 != 0 {
            return Err(format!("token id {id} appears twice"));
        }
        self.spans[i] = (self.bytes.len() as u32, piece.len() as u32);
        self.bytes.extend_from_slice(piece);
        Ok(())
    }

    /// The bytes of `id`, if it is a token.
    pub fn get(&self, id: u32) -> Option<&[u8]> {
        let &(off, len) = self.spans.get(id as usize)?;
        (len != 0).then(|| &self.bytes[off as usize..(off + len) as usize])
    }

    /// One past the highest id that has a token.
    pub fn id_limit(&self) -> usize {
        self.spans.len()
    }

    pub fn decode(&self, ids: &[u32], what: &str) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let piece = self.get(id).ok_or_else(|| {
                Error::invalid_options(format!("unknown token id {id}: the {what} vocabulary has no such token"))
            })?;
            out.extend_from_slice(piece);
        }
        Ok(out)
    }
}
