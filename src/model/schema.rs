//! Which tensors each RWKV architecture has, and the shapes they must have.

use std::collections::HashMap;

use super::Arch;
use crate::error::{Error, Result};
use crate::format::{FileHeader, TensorInfo};

/// An expected shape, ggml order. Each dimension is a number, or a symbol: `E` n_embed, `V` n_vocab,
/// `F` the FFN width, `S` head size, `H` head count, lower case a LoRA rank. A symbol takes one value
/// throughout the model (the first tensor that has it fixes it).
type Shape = &'static [&'static str];

struct Spec {
    name: &'static str,
    shape: Shape,
}

const fn s(name: &'static str, shape: Shape) -> Spec {
    Spec { name, shape }
}

const GLOBAL: &[Spec] = &[
    s("emb.weight", &["E", "V"]),
    s("blocks.0.ln0.weight", &["E"]),
    s("blocks.0.ln0.bias", &["E"]),
    s("ln_out.weight", &["E"]),
    s("ln_out.bias", &["E"]),
    s("head.weight", &["E", "V"]),
];

const LAYER_COMMON: &[Spec] = &[
    s("ln1.weight", &["E"]),
    s("ln1.bias", &["E"]),
    s("ln2.weight", &["E"]),
    s("ln2.bias", &["E"]),
    s("att.key.weight", &["E", "E"]),
    s("att.value.weight", &["E", "E"]),
    s("att.receptance.weight", &["E", "E"]),
    s("att.output.weight", &["E", "E"]),
    s("ffn.key.weight", &["E", "F"]),
    s("ffn.value.weight", &["F", "E"]),
];

const V4: &[Spec] = &[
    s("att.time_decay", &["E"]),
    s("att.time_first", &["E"]),
    s("att.time_mix_k", &["E"]),
    s("att.time_mix_v", &["E"]),
    s("att.time_mix_r", &["E"]),
    s("ffn.time_mix_k", &["E"]),
    s("ffn.time_mix_r", &["E"]),
    s("ffn.receptance.weight", &["E", "E"]),
];

const V5_1: &[Spec] = &[
    s("att.time_decay", &["1", "1", "H"]),
    s("att.time_first", &["1", "1", "H"]),
    s("att.time_mix_k", &["E"]),
    s("att.time_mix_v", &["E"]),
    s("att.time_mix_r", &["E"]),
    s("att.ln_x.weight", &["E"]),
    s("att.ln_x.bias", &["E"]),
    s("ffn.time_mix_k", &["E"]),
    s("ffn.time_mix_r", &["E"]),
    s("ffn.receptance.weight", &["E", "E"]),
];

const V5_2: &[Spec] = &[
    s("att.time_decay", &["1", "S", "H"]),
    s("att.time_faaaa", &["1", "S", "H"]),
    s("att.time_mix_k", &["E"]),
    s("att.time_mix_v", &["E"]),
    s("att.time_mix_r", &["E"]),
    s("att.time_mix_g", &["E"]),
    s("att.ln_x.weight", &["E"]),
    s("att.ln_x.bias", &["E"]),
    s("att.gate.weight", &["E", "E"]),
    s("ffn.time_mix_k", &["E"]),
    s("ffn.time_mix_r", &["E"]),
    s("ffn.receptance.weight", &["E", "E"]),
];

const V6: &[Spec] = &[
    s("att.time_maa_x", &["E"]),
    s("att.time_maa_w", &["E"]),
    s("att.time_maa_k", &["E"]),
    s("att.time_maa_v", &["E"]),
    s("att.time_maa_r", &["E"]),
    s("att.time_maa_g", &["E"]),
    s("att.time_maa_w1", &["E", "m5"]),
    s("att.time_maa_w2", &["m", "E", "5"]),
    s("att.time_decay", &["1", "S", "H"]),
    s("att.time_decay_w1", &["E", "d"]),
    s("att.time_decay_w2", &["d", "E"]),
    s("att.time_faaaa", &["1", "S", "H"]),
    s("att.gate.weight", &["E", "E"]),
    s("att.ln_x.weight", &["E"]),
    s("att.ln_x.bias", &["E"]),
    s("ffn.time_maa_k", &["E"]),
    s("ffn.time_maa_r", &["E"]),
    s("ffn.receptance.weight", &["E", "E"]),
];

const V7: &[Spec] = &[
    s("att.x_rwkvag", &["E", "1", "6"]),
    s("att.w0", &["E", "1", "1"]),
    s("att.w1", &["E", "w"]),
    s("att.w2", &["w", "E"]),
    s("att.a0", &["E", "1", "1"]),
    s("att.a1", &["E", "a"]),
    s("att.a2", &["a", "E"]),
    s("att.g1", &["E", "g"]),
    s("att.g2", &["g", "E"]),
    s("att.k_k", &["E", "1", "1"]),
    s("att.k_a", &["E", "1", "1"]),
    s("att.r_k", &["S", "H"]),
    s("att.ln_x.weight", &["E"]),
    s("att.ln_x.bias", &["E"]),
    s("ffn.x_k", &["E", "1", "1"]),
];

/// v7's value-residual tensors exist in every layer but the first.
const V7_AFTER_FIRST: &[Spec] = &[s("att.v0", &["E", "1", "1"]), s("att.v1", &["E", "v"]), s("att.v2", &["v", "E"])];

/// Detects the architecture from the tensor names, as rwkv.cpp does.
pub fn detect(has: impl Fn(&str) -> bool) -> Arch {
    if has("blocks.0.att.x_rwkvag") {
        Arch::V7
    } else if has("blocks.0.att.time_maa_x") {
        Arch::V6
    } else if has("blocks.0.att.ln_x.weight") {
        if has("blocks.0.att.gate.weight") { Arch::V5_2 } else { Arch::V5_1 }
    } else {
        Arch::V4
    }
}

/// Every tensor name the architecture needs, with its expected shape.
pub fn expected(arch: Arch, n_layer: usize) -> Vec<(String, Shape)> {
    let per_arch = match arch {
        Arch::V4 => V4,
        Arch::V5_1 => V5_1,
        Arch::V5_2 => V5_2,
        Arch::V6 => V6,
        Arch::V7 => V7,
    };
    let mut out: Vec<(String, Shape)> = GLOBAL.iter().map(|t| (t.name.to_string(), t.shape)).collect();
    for layer in 0..n_layer {
        let extra = if arch == Arch::V7 && layer > 0 { V7_AFTER_FIRST } else { &[] };
        for t in LAYER_COMMON.iter().chain(per_arch).chain(extra) {
            out.push((format!("blocks.{layer}.{}", t.name), t.shape));
        }
    }
    out
}

/// Values of the shape symbols.
pub type Dims = HashMap<&'static str, usize>;

/// The concrete shape for `dims` (every symbol of `shape` must be bound).
pub fn resolve(shape: Shape, dims: &Dims) -> Vec<usize> {
    shape.iter().map(|d| d.parse().unwrap_or_else(|_| dims[d])).collect()
}

/// Checks that exactly the expected tensors are present with consistent shapes; returns the
/// values the symbols took (`F`, `S`, `H`, LoRA ranks), with `E` and `V` from the header.
pub fn validate(arch: Arch, h: &FileHeader, find: impl Fn(&str) -> Option<TensorInfo>, count: usize) -> Result<Dims> {
    let expected = expected(arch, h.n_layer as usize);
    let mut dims = Dims::from([("E", h.n_embed as usize), ("V", h.n_vocab as usize)]);
    for (name, shape) in &expected {
        let t = find(name).ok_or_else(|| {
            Error::invalid_model(format!("tensor '{name}' is missing (the file looks like an RWKV {} model)", arch.name()))
        })?;
        let fits = t.shape.len() == shape.len()
            && t.shape.iter().zip(shape.iter()).all(|(&got, sym)| match sym.parse::<usize>() {
                Ok(n) => got == n,
                Err(_) => *dims.entry(sym).or_insert(got) == got,
            });
        if !fits {
            return Err(Error::invalid_model(format!(
                "tensor '{name}' has shape {:?}, which does not fit n_embed={} n_vocab={} and the other tensors",
                t.shape, h.n_embed, h.n_vocab
            )));
        }
    }
    if count != expected.len() {
        return Err(Error::invalid_model(format!(
            "the file has {count} tensors but an RWKV {} model with {} layers has {}",
            arch.name(),
            h.n_layer,
            expected.len()
        )));
    }
    Ok(dims)
}

/// Whether quantizing keeps this tensor as it is: rwkv.cpp quantizes only 2-D matrices, never the
/// embedding or head, and (in its v7 files) not v7's LoRA matrices nor `r_k`. Those names exist only
/// in v7, so no architecture is needed and a streaming quantizer can decide tensor by tensor.
pub fn keeps_precision(t: &TensorInfo) -> bool {
    const V7_SMALL: [&str; 9] = ["w1", "w2", "a1", "a2", "g1", "g2", "v1", "v2", "r_k"];
    if t.shape.len() != 2 || t.name == "emb.weight" || t.name == "head.weight" {
        return true;
    }
    t.name.rsplit_once(".att.").is_some_and(|(_, leaf)| V7_SMALL.contains(&leaf))
}
