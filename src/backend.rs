//! The evaluation backends behind one interface: `ggml` (the engine), `reference` (plain Rust
//! f32, the oracle for tests and a fallback) and `mock` (deterministic fake logits, so user
//! interfaces can be tested fast and repeatably on any model file).

use std::sync::Arc;

use crate::error::{Error, ErrorCode, Result};
use crate::format::FileHeader;
use crate::model::{Arch, Hparams, Model};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Ggml,
    Reference,
    Mock,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Ggml => "ggml",
            BackendKind::Reference => "reference",
            BackendKind::Mock => "mock",
        }
    }

    pub fn from_name(name: &str) -> Result<BackendKind> {
        match name {
            "ggml" => Ok(BackendKind::Ggml),
            "reference" => Ok(BackendKind::Reference),
            "mock" => Ok(BackendKind::Mock),
            _ => Err(Error::invalid_options(format!("unknown backend '{name}'; use ggml, reference or mock"))),
        }
    }
}

pub trait Backend {
    fn kind(&self) -> BackendKind;
    /// Feeds `tokens` in order from `state` (updated in place); writes the last token's logits
    /// when asked.
    fn eval(&mut self, tokens: &[u32], state: &mut [f32], logits: Option<&mut [f32]>) -> Result<()>;
    /// Feeds `tokens` like `eval`, and writes every token's final hidden state, normalised by
    /// `ln_out` (what the head reads): `n_embed` floats per token, in order. Embeddings are
    /// made from it (`crate::memory::embed`).
    fn eval_hidden(&mut self, tokens: &[u32], state: &mut [f32], hidden: &mut [f32]) -> Result<()>;
}

struct Reference(Arc<Model>);

impl Backend for Reference {
    fn kind(&self) -> BackendKind {
        BackendKind::Reference
    }
    fn eval(&mut self, tokens: &[u32], state: &mut [f32], logits: Option<&mut [f32]>) -> Result<()> {
        crate::reference::eval(&self.0, tokens, state, logits)
    }
    fn eval_hidden(&mut self, tokens: &[u32], state: &mut [f32], hidden: &mut [f32]) -> Result<()> {
        crate::reference::eval_hidden(&self.0, tokens, state, hidden)
    }
}

/// Fake logits that depend only on the tokens fed so far: one favourite token per step, in
/// 32..=126 (printable ASCII in the byte vocabulary), so greedy output is readable and repeatable.
/// The state's first float counts the tokens, so saving and restoring a state changes what follows.
struct Mock(Arc<Model>);

impl Backend for Mock {
    fn kind(&self) -> BackendKind {
        BackendKind::Mock
    }
    fn eval(&mut self, tokens: &[u32], state: &mut [f32], logits: Option<&mut [f32]>) -> Result<()> {
        self.0.check_eval(tokens, state, logits.as_deref())?;
        // Every model's state has at least one float per layer and channel.
        state[0] += tokens.len() as f32;
        if let Some(logits) = logits {
            let last = *tokens.last().expect("check_eval requires a token") as u64;
            let mix = (last.wrapping_mul(0x9E37_79B9) ^ state[0] as u64).wrapping_mul(0x85EB_CA6B) >> 7;
            let favourite = (32 + mix % 95) as usize % logits.len();
            for (i, l) in logits.iter_mut().enumerate() {
                *l = -(((i as u64).wrapping_mul(2_654_435_761).wrapping_add(mix) % 1000) as f32) / 1000.0;
            }
            logits[favourite] = 10.0;
        }
        Ok(())
    }
    /// Each token's hidden state is a fixed pseudo-random vector of that token (so a mean over
    /// tokens is a bag of tokens: texts sharing tokens get similar embeddings).
    fn eval_hidden(&mut self, tokens: &[u32], state: &mut [f32], hidden: &mut [f32]) -> Result<()> {
        self.0.check_hidden(tokens, state, hidden)?;
        state[0] += tokens.len() as f32;
        let e = self.0.hparams.n_embed;
        for (&token, row) in tokens.iter().zip(hidden.chunks_exact_mut(e)) {
            let mut rng = crate::rng::SplitMix(token as u64);
            row.iter_mut().for_each(|h| *h = (rng.next_f64() * 2.0 - 1.0) as f32);
        }
        Ok(())
    }
}

impl Backend for crate::ggml::GgmlContext {
    fn kind(&self) -> BackendKind {
        BackendKind::Ggml
    }
    fn eval(&mut self, tokens: &[u32], state: &mut [f32], logits: Option<&mut [f32]>) -> Result<()> {
        crate::ggml::GgmlContext::eval(self, tokens, state, logits)
    }
    fn eval_hidden(&mut self, tokens: &[u32], state: &mut [f32], hidden: &mut [f32]) -> Result<()> {
        crate::ggml::GgmlContext::eval_hidden(self, tokens, state, hidden)
    }
}

/// What `auto` tries, in order: the first to start and pass `health_check` is used.
pub const AUTO: [BackendKind; 3] = [BackendKind::Ggml, BackendKind::Reference, BackendKind::Mock];

/// A started backend's check before use: one token from the initial state gives finite logits.
pub fn health_check(backend: &mut dyn Backend, model: &Model) -> Result<()> {
    let mut state = model.initial_state();
    let mut logits = vec![0.0; model.hparams.n_vocab];
    backend.eval(&[0], &mut state, Some(&mut logits))?;
    if logits.iter().all(|l| l.is_finite()) {
        return Ok(());
    }
    Err(Error::new(ErrorCode::ComputeFailed, format!("the {} backend's logits are not finite numbers", backend.kind().name())))
}

pub fn create(kind: BackendKind, model: Arc<Model>) -> Result<Box<dyn Backend>> {
    create_with_threads(kind, model, 1)
}

/// Like [`create`]; the ggml backend computes on `threads` threads (the others are one-threaded
/// and ignore it).
pub fn create_with_threads(kind: BackendKind, model: Arc<Model>, threads: usize) -> Result<Box<dyn Backend>> {
    Ok(match kind {
        BackendKind::Reference => Box::new(Reference(model)),
        BackendKind::Mock => Box::new(Mock(model)),
        BackendKind::Ggml => {
            let shared = Arc::new(crate::ggml::GgmlModel::new(model)?);
            Box::new(crate::ggml::GgmlContext::new(shared, threads)?)
        }
    })
}

/// Bytes a loaded model takes with one ggml evaluation context: weights plus compute memory.
pub fn memory_bytes(model: &Model) -> u64 {
    (model.weight_bytes() + crate::ggml::compute_bytes(&model.hparams, model.arch)) as u64
}

/// An upper bound, from the file header alone (before any tensor is allocated), of what one
/// evaluation context needs besides the weights: the hidden sizes the header does not give are
/// taken at their largest (FFN 4× n_embed, heads of 64, v7's vectors), plus the state.
pub fn eval_bytes_bound(h: &FileHeader) -> u64 {
    let e = h.n_embed as usize;
    let hp = Hparams {
        n_vocab: h.n_vocab as usize,
        n_embed: e,
        n_layer: h.n_layer as usize,
        n_ffn: 4 * e,
        n_head: (e / 64).max(1),
        head_size: 64.min(e),
    };
    let state = hp.state_len(Arch::V7) * 4;
    (crate::ggml::compute_bytes(&hp, Arch::V7) + state) as u64
}

/// The build-time memory cap (`build.rs`): the wasm module's maximum memory. A run-time limit
/// may only lower it. Native builds have none.
pub fn memory_cap_bytes() -> Option<u64> {
    #[cfg(target_arch = "wasm32")]
    return env!("ECHO_MAX_MEMORY_BYTES").parse().ok();
    #[cfg(not(target_arch = "wasm32"))]
    None
}

/// Which SIMD instruction set ggml was built with.
pub fn simd() -> &'static str {
    crate::ggml::simd_info()
}
