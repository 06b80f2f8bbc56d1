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

/// Bytes the load and save copy through at a time: a saved state is read from and written to JS
/// memory a piece at a time, so neither needs a block as big as the state in wasm memory.
const PIECE: usize = 4096;

#[derive(Debug)]
pub(crate) struct Conversation {
    /// Every token so far: prompts and replies.
    pub tokens: Vec<u32>,
    /// How many of `tokens` the state has seen. The rest wait to be fed with the next input
    /// (a reply's last token is fed lazily: the conversation may never continue).
    pub fed: usize,
    pub state: Vec<f32>,
    /// The logits after `tokens[..fed]` (n_vocab floats), valid when `has_logits`. Always known
    /// when every token is fed.
    pub logits: Vec<f32>,
    pub has_logits: bool,
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

/// Reads `n` words from `read` at byte `at`, a piece at a time, passing each to `each` with its
/// index.
fn read_words(read: &mut dyn FnMut(usize, &mut [u8]), at: usize, n: usize, each: &mut dyn FnMut(usize, u32)) {
    let mut piece = [0u8; PIECE];
    for first in (0..n).step_by(PIECE / 4) {
        let bytes = &mut piece[..4 * (n - first).min(PIECE / 4)];
        read(at + 4 * first, bytes);
        words(bytes).enumerate().for_each(|(i, w)| each(first + i, w));
    }
}

/// Passes `values` to `put` as little-endian bytes, a piece at a time.
fn write_words<T: Copy>(values: &[T], to_le: fn(T) -> [u8; 4], put: &mut dyn FnMut(&[u8])) {
    let mut piece = [0u8; PIECE];
    for chunk in values.chunks(PIECE / 4) {
        for (b, &v) in piece.chunks_exact_mut(4).zip(chunk) {
            b.copy_from_slice(&to_le(v));
        }
        put(&piece[..4 * chunk.len()]);
    }
}

impl Conversation {
    pub fn new(model: &Model) -> Conversation {
        Conversation { tokens: Vec::new(), fed: 0, state: model.initial_state(), logits: vec![0.0; model.hparams.n_vocab], has_logits: false }
    }

    /// Back to the model's initial state with no tokens, in the buffers it has (a new conversation
    /// per request would ask wasm memory for a state- and a logits-sized block each time).
    pub fn clear(&mut self, model: &Model) {
        self.tokens.clear();
        self.fed = 0;
        model.initial_state_into(&mut self.state);
        self.has_logits = false;
    }

    /// Tokens still to be evaluated.
    pub fn unfed(&self) -> &[u32] {
        &self.tokens[self.fed..]
    }

    /// The logits after the fed tokens, when known.
    pub fn logits(&self) -> Option<&[f32]> {
        self.has_logits.then_some(&self.logits[..])
    }

    /// Sets the logits (`None`: not known).
    pub fn set_logits(&mut self, logits: Option<&[f32]>) {
        if let Some(l) = logits {
            self.logits.copy_from_slice(l);
        }
        self.has_logits = logits.is_some();
    }

    /// The length of what `save_to` writes.
    pub fn saved_len(&self) -> usize {
        MAGIC.len() + 4 * (HEADER_WORDS + self.state.len() + self.tokens.len() + self.logits().map_or(0, <[f32]>::len))
    }

    pub fn save(&self, model: &Model) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.saved_len());
        self.save_to(model, &mut |b| out.extend_from_slice(b));
        out
    }

    /// Writes the saved form to `put`, in pieces.
    pub fn save_to(&self, model: &Model, put: &mut dyn FnMut(&[u8])) {
        let h = &model.hparams;
        put(MAGIC);
        let header = [
            VERSION,
            arch_code(model.arch),
            h.n_vocab as u32,
            h.n_embed as u32,
            h.n_layer as u32,
            self.state.len() as u32,
            self.tokens.len() as u32,
            self.fed as u32,
            self.has_logits as u32,
        ];
        write_words(&header, u32::to_le_bytes, put);
        write_words(&self.state, f32::to_le_bytes, put);
        write_words(&self.tokens, u32::to_le_bytes, put);
        write_words(self.logits().unwrap_or(&[]), f32::to_le_bytes, put);
    }

    /// Reads what `save` wrote for this model; anything else is `InvalidOptions` and leaves the
    /// conversation as it was.
    pub fn load(&mut self, model: &Model, bytes: &[u8]) -> Result<()> {
        self.load_from(model, bytes.len(), &mut |at, out| out.copy_from_slice(&bytes[at..at + out.len()]))
    }

    /// Like `load`, from `len` bytes that `read(at, out)` copies out piece by piece: the header
    /// is checked against `len` before anything else is read, and the body is read twice (checked,
    /// then copied into this conversation's own buffers), so a load allocates nothing new.
    pub fn load_from(&mut self, model: &Model, len: usize, read: &mut dyn FnMut(usize, &mut [u8])) -> Result<()> {
        let bad = |why: &str| Error::invalid_options(format!("not a saved state for this model: {why}"));
        const HEAD: usize = MAGIC.len() + 4 * HEADER_WORDS;
        let mut bytes = [0u8; HEAD];
        read(0, &mut bytes[..len.min(HEAD)]);
        let body = bytes[..len.min(HEAD)].strip_prefix(MAGIC.as_slice()).ok_or_else(|| bad("wrong magic"))?;
        if (len - MAGIC.len()) % 4 != 0 {
            return Err(bad("wrong length"));
        }
        if len < HEAD {
            return Err(bad("truncated"));
        }
        let mut header = [0u32; HEADER_WORDS];
        header.iter_mut().zip(words(body)).for_each(|(h, w)| *h = w);
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
        // In u64: crafted counts must not overflow a 32-bit usize.
        if ((len - HEAD) / 4) as u64 != state_len as u64 + n_tokens as u64 + n_logits as u64 {
            return Err(bad("wrong length"));
        }
        let (tokens_at, logits_at) = (HEAD + 4 * state_len, HEAD + 4 * (state_len + n_tokens));
        let mut finite = true;
        let mut check_floats = |_, w| finite &= f32::from_bits(w).is_finite();
        read_words(read, HEAD, state_len, &mut check_floats);
        read_words(read, logits_at, n_logits, &mut check_floats);
        if !finite {
            return Err(bad("non-finite numbers"));
        }
        let mut in_vocab = true;
        read_words(read, tokens_at, n_tokens, &mut |_, t| in_vocab &= (t as usize) < h.n_vocab);
        if !in_vocab {
            return Err(bad("a token is out of the model's vocabulary"));
        }
        let Conversation { tokens, state, logits, .. } = self;
        read_words(read, HEAD, state_len, &mut |i, w| state[i] = f32::from_bits(w));
        read_words(read, logits_at, n_logits, &mut |i, w| logits[i] = f32::from_bits(w));
        tokens.resize(n_tokens, 0);
        read_words(read, tokens_at, n_tokens, &mut |i, t| tokens[i] = t);
        self.fed = fed;
        self.has_logits = has_logits;
        Ok(())
    }
}
