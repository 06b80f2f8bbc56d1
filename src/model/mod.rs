//! A loaded RWKV model: its hyperparameters, architecture and weight tensors (in the file's data
//! types, exactly as stored), shared read-only by every backend and evaluation context.

mod buffer;
mod loader;
mod stream;
pub mod schema;

use std::collections::HashMap;

pub use buffer::{AlignedBuf, FloatSlots};
pub use loader::{load_bytes, LoadOptions, ModelLoader};
pub use stream::StreamingLoad;

use crate::error::{Error, Result};
use crate::format::{FileHeader, TensorInfo};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    V4,
    V5_1,
    V5_2,
    V6,
    V7,
}

impl Arch {
    pub const ALL: [Arch; 5] = [Arch::V4, Arch::V5_1, Arch::V5_2, Arch::V6, Arch::V7];

    pub fn name(self) -> &'static str {
        match self {
            Arch::V4 => "v4",
            Arch::V5_1 => "v5.1",
            Arch::V5_2 => "v5.2",
            Arch::V6 => "v6",
            Arch::V7 => "v7",
        }
    }

    pub fn from_name(name: &str) -> Result<Arch> {
        Ok(match name.trim().trim_start_matches(['v', 'V']) {
            "4" => Arch::V4,
            "5.1" => Arch::V5_1,
            "5.2" => Arch::V5_2,
            "6" => Arch::V6,
            "7" => Arch::V7,
            _ => return Err(Error::invalid_options(format!("unknown architecture '{name}'; use v4, v5.1, v5.2, v6 or v7"))),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hparams {
    pub n_vocab: usize,
    pub n_embed: usize,
    pub n_layer: usize,
    /// Width of the FFN's hidden layer.
    pub n_ffn: usize,
    /// Attention heads and their size (v5 and later; v4 has one "head" of size 1 per channel).
    pub n_head: usize,
    pub head_size: usize,
}

impl Hparams {
    /// Floats of recurrent state per layer, laid out as rwkv.cpp does:
    /// v4: `ffn_xx, att_xx, att_aa, att_bb, att_pp` (n_embed each);
    /// v5+: `ffn_xx, att_xx` (n_embed each), then the heads' `head_size × head_size` matrices.
    pub fn state_per_layer(&self, arch: Arch) -> usize {
        match arch {
            Arch::V4 => 5 * self.n_embed,
            _ => (2 + self.head_size) * self.n_embed,
        }
    }

    pub fn state_len(&self, arch: Arch) -> usize {
        self.n_layer * self.state_per_layer(arch)
    }
}

pub struct Tensor {
    pub info: TensorInfo,
    pub data: AlignedBuf,
}

pub struct Model {
    pub header: FileHeader,
    pub arch: Arch,
    pub hparams: Hparams,
    /// Bytes of the file it came from.
    pub file_bytes: u64,
    tensors: Vec<Tensor>,
    index: HashMap<String, usize>,
}

impl Model {
    /// The initial state, as rwkv.cpp defines it: zeros, except v4's `att_pp` = -1e30.
    pub fn initial_state(&self) -> Vec<f32> {
        let mut state = vec![0.0; self.state_len()];
        self.initial_state_into(&mut state);
        state
    }

    /// Writes the initial state into `state` (`state_len` floats).
    pub fn initial_state_into(&self, state: &mut [f32]) {
        state.fill(0.0);
        if self.arch == Arch::V4 {
            let e = self.hparams.n_embed;
            for layer in state.chunks_exact_mut(5 * e) {
                layer[4 * e..].fill(-1e30);
            }
        }
    }

    pub fn state_len(&self) -> usize {
        self.hparams.state_len(self.arch)
    }

    /// The arguments every backend's `eval` checks before changing anything: at least one
    /// token, every token `< n_vocab`, a state and a logits buffer of this model's sizes.
    pub fn check_eval(&self, tokens: &[u32], state: &[f32], logits: Option<&[f32]>) -> Result<()> {
        let n_vocab = self.hparams.n_vocab;
        if tokens.is_empty() {
            return Err(Error::invalid_options("no tokens to evaluate: pass at least one token"));
        }
        if let Some((i, t)) = tokens.iter().enumerate().find(|(_, &t)| t as usize >= n_vocab) {
            return Err(Error::invalid_options(format!(
                "token {t} (at position {i}) is out of range: the model's vocabulary has {n_vocab} tokens (0..{n_vocab})"
            )));
        }
        if state.len() != self.state_len() {
            return Err(Error::invalid_options(format!(
                "the state has {} floats but this model's state has {}; start from the model's initial state",
                state.len(),
                self.state_len()
            )));
        }
        match logits {
            Some(l) if l.len() != n_vocab => Err(Error::invalid_options(format!(
                "the logits buffer has {} floats but the model has {n_vocab} tokens",
                l.len()
            ))),
            _ => Ok(()),
        }
    }

    /// [`Model::check_eval`] for an evaluation that writes every token's hidden state:
    /// `hidden` holds `n_embed` floats per token.
    pub fn check_hidden(&self, tokens: &[u32], state: &[f32], hidden: &[f32]) -> Result<()> {
        self.check_eval(tokens, state, None)?;
        let needed = tokens.len() * self.hparams.n_embed;
        if hidden.len() != needed {
            return Err(Error::invalid_options(format!(
                "the hidden-state buffer has {} floats but {} tokens of {} need {needed}",
                hidden.len(),
                tokens.len(),
                self.hparams.n_embed
            )));
        }
        Ok(())
    }

    pub fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// A tensor the schema guarantees (validated at load time).
    pub fn tensor(&self, name: &str) -> &Tensor {
        self.get(name).unwrap_or_else(|| panic!("validated model lacks '{name}'"))
    }

    /// `blocks.{layer}.{leaf}`, e.g. `layer(3, "att.key.weight")`.
    pub fn layer(&self, layer: usize, leaf: &str) -> &Tensor {
        self.tensor(&format!("blocks.{layer}.{leaf}"))
    }

    /// `blocks.{layer}.{leaf}` where the tensor may be absent (v7's first layer has no `att.v0`).
    pub fn layer_opt(&self, layer: usize, leaf: &str) -> Option<&Tensor> {
        self.get(&format!("blocks.{layer}.{leaf}"))
    }

    /// Bytes held by the weights.
    pub fn weight_bytes(&self) -> usize {
        self.tensors.iter().map(|t| t.data.len()).sum()
    }

    fn from_tensors(header: FileHeader, file_bytes: u64, tensors: Vec<Tensor>, index: HashMap<String, usize>) -> Result<Model> {
        let arch = schema::detect(|n| index.contains_key(n));
        let find = |n: &str| index.get(n).map(|&i| tensors[i].info.clone());
        let dims = schema::validate(arch, &header, find, tensors.len())?;
        let e = header.n_embed as usize;
        let (n_head, head_size) = match arch {
            Arch::V4 => (1, 1),
            _ => (dims["H"], dims.get("S").copied().unwrap_or(e / dims["H"])),
        };
        if arch != Arch::V4 && n_head * head_size != e {
            return Err(Error::invalid_model(format!("{n_head} heads of size {head_size} do not make n_embed = {e}")));
        }
        schema::check_head_size(arch, head_size).map_err(Error::invalid_model)?;
        let hparams = Hparams {
            n_vocab: header.n_vocab as usize,
            n_embed: e,
            n_layer: header.n_layer as usize,
            n_ffn: dims["F"],
            n_head,
            head_size,
        };
        Ok(Model { header, arch, hparams, file_bytes, tensors, index })
    }
}
