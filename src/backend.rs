//! The evaluation backends behind one interface: `ggml` (the engine) and `reference` (plain Rust
//! f32, the oracle for tests and a fallback).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::model::Model;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Ggml,
    Reference,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Ggml => "ggml",
            BackendKind::Reference => "reference",
        }
    }

    pub fn from_name(name: &str) -> Result<BackendKind> {
        match name {
            "ggml" => Ok(BackendKind::Ggml),
            "reference" => Ok(BackendKind::Reference),
            _ => Err(Error::invalid_options(format!("unknown backend '{name}'; use ggml or reference"))),
        }
    }
}

pub trait Backend {
    fn kind(&self) -> BackendKind;
    /// Feeds `tokens` in order from `state` (updated in place); writes the last token's logits
    /// when asked.
    fn eval(&mut self, tokens: &[u32], state: &mut [f32], logits: Option<&mut [f32]>) -> Result<()>;
}

struct Reference(Arc<Model>);

impl Backend for Reference {
    fn kind(&self) -> BackendKind {
        BackendKind::Reference
    }
    fn eval(&mut self, tokens: &[u32], state: &mut [f32], logits: Option<&mut [f32]>) -> Result<()> {
        crate::reference::eval(&self.0, tokens, state, logits)
    }
}

impl Backend for crate::ggml::GgmlContext {
    fn kind(&self) -> BackendKind {
        BackendKind::Ggml
    }
    fn eval(&mut self, tokens: &[u32], state: &mut [f32], logits: Option<&mut [f32]>) -> Result<()> {
        crate::ggml::GgmlContext::eval(self, tokens, state, logits)
    }
}

pub fn create(kind: BackendKind, model: Arc<Model>) -> Result<Box<dyn Backend>> {
    Ok(match kind {
        BackendKind::Reference => Box::new(Reference(model)),
        BackendKind::Ggml => {
            let shared = Arc::new(crate::ggml::GgmlModel::new(model)?);
            Box::new(crate::ggml::GgmlContext::new(shared)?)
        }
    })
}

/// Bytes a loaded model takes with one ggml evaluation context: weights plus compute memory.
pub fn memory_bytes(model: &Model) -> u64 {
    (model.weight_bytes() + crate::ggml::compute_bytes(&model.hparams, model.arch)) as u64
}

/// Which SIMD instruction set ggml was built with.
pub fn simd() -> &'static str {
    crate::ggml::simd_info()
}
