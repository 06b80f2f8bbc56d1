//! A session's conversation: its tokens, the RNN state after the ones fed so far, and the
//! logits that state gives — plus the byte format that saves and restores all of it.
//!
//! Format (little-endian): magic `ECHOSTAT`, u32 version (1), u32 architecture (4, 51, 52, 6, 7),
//! u32 n_vocab, n_embed, n_layer, state length (floats), token count, fed count, has-logits flag
//! (0/1); then the state (f32), the tokens (u32) and, when flagged, n_vocab logits (f32).

use crate::error::{Error, Result};
use crate::model::{Arch, Model};

const MAGIC: &[u8; 8] = b"ECHOSTAT";
const VERSION: u32 = 1;
const HEADER_WORDS: usize = 9;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Conversation {
    /// Every token so far: prompts and replies.
    pub tokens: Vec<u32>,
    /// How many of `tokens` the state has seen. The rest wait to be fed with the next input
    /// (a reply's last token is fed lazily: the conversation may never continue).
    pub fed: usize,
    pub state: Vec<f32>,
    /// The logits after `tokens[..fed]`, when computed. Always known when every token is fed.
    pub logits: Option<Vec<f32>>,
}

fn arch_code(arch: Arch) -> u32 {
    match arch {
        Arch::V4 => 4,
        Arch::V5_1 => 51,
        Arch::V5_2 => 52,
        Arch::V6 => 6,
        Arch::V7 => 7,
    }
}

/// The little-endian u32 words of `b` (its length a multiple of 4).
fn words(b: &[u8]) -> impl Iterator<Item = u32> + '_ {
    b.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl Conversation {
    pub fn new(model: &Model) -> Conversation {
        Conversation { tokens: Vec::new(), fed: 0, state: model.initial_state(), logits: None }
    }

    /// Tokens still to be evaluated.
    pub fn unfed(&self) -> &[u32] {
        &self.tokens[self.fed..]
    }

    pub fn save(&self, model: &Model) -> Vec<u8> {
        let h = &model.hparams;
        let logits = self.logits.as_deref().unwrap_or(&[]);
        let mut out = Vec::with_capacity(8 + 4 * (HEADER_WORDS + self.state.len() + self.tokens.len() + logits.len()));
        out.extend_from_slice(MAGIC);
        let header = [
            VERSION,
            arch_code(model.arch),
            h.n_vocab as u32,
            h.n_embed as u32,
            h.n_layer as u32,
            self.state.len() as u32,
            self.tokens.len() as u32,
            self.fed as u32,
            self.logits.is_some() as u32,
        ];
        header.iter().for_each(|w| out.extend_from_slice(&w.to_le_bytes()));
        self.state.iter().for_each(|f| out.extend_from_slice(&f.to_le_bytes()));
        self.tokens.iter().for_each(|t| out.extend_from_slice(&t.to_le_bytes()));
        logits.iter().for_each(|f| out.extend_from_slice(&f.to_le_bytes()));
        out
    }

    /// Reads what `save` wrote for this model; anything else is `InvalidOptions`.
    pub fn load(model: &Model, bytes: &[u8]) -> Result<Conversation> {
        let bad = |why: &str| Error::invalid_options(format!("not a saved state for this model: {why}"));
        let body = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(|| bad("wrong magic"))?;
        if body.len() % 4 != 0 {
            return Err(bad("wrong length"));
        }
        // Read in place: a copy of the whole state as words was a transient block as big as the
        // state, which wasm memory had to find room for at every load.
        let mut header = [0u32; HEADER_WORDS];
        if body.len() < 4 * HEADER_WORDS {
            return Err(bad("truncated"));
        }
        header.iter_mut().zip(words(&body[..4 * HEADER_WORDS])).for_each(|(h, w)| *h = w);
        let [version, arch, n_vocab, n_embed, n_layer, state_len, n_tokens, fed, has_logits] = header;
        let h = &model.hparams;
        if version != VERSION {
            return Err(bad(&format!("format version {version}, this engine reads {VERSION}")));
        }
        if (arch, n_vocab as usize, n_embed as usize, n_layer as usize) != (arch_code(model.arch), h.n_vocab, h.n_embed, h.n_layer) {
            return Err(bad("it was saved for a different architecture or model size"));
        }
        let (state_len, n_tokens, fed) = (state_len as usize, n_tokens as usize, fed as usize);
        if state_len != model.state_len() || fed > n_tokens || has_logits > 1 {
            return Err(bad("inconsistent header"));
        }
        // No logits before the first token; always logits once every token is fed.
        let has_logits = has_logits == 1;
        if (fed == 0 && has_logits) || (fed > 0 && fed == n_tokens && !has_logits) {
            return Err(bad("logits missing or unexpected"));
        }
        let n_logits = if has_logits { h.n_vocab } else { 0 };
        let rest = &body[4 * HEADER_WORDS..];
        // In u64: crafted counts must not overflow a 32-bit usize.
        if (rest.len() / 4) as u64 != state_len as u64 + n_tokens as u64 + n_logits as u64 {
            return Err(bad("wrong length"));
        }
        let (state, rest) = rest.split_at(4 * state_len);
        let (tokens, logits) = rest.split_at(4 * n_tokens);
        let floats = |b: &[u8]| words(b).map(f32::from_bits).collect::<Vec<f32>>();
        let state = floats(state);
        let tokens: Vec<u32> = words(tokens).collect();
        let logits = has_logits.then(|| floats(logits));
        if state.iter().chain(logits.iter().flatten()).any(|f| !f.is_finite()) {
            return Err(bad("non-finite numbers"));
        }
        if tokens.iter().any(|&t| t as usize >= h.n_vocab) {
            return Err(bad("a token is out of the model's vocabulary"));
        }
        Ok(Conversation { tokens, fed, state, logits })
    }
}
