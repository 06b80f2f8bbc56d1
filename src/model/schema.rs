//! Which tensors each RWKV architecture has: their shapes, their order in a file, and the types
//! rwkv.cpp stores them in.

use std::collections::HashMap;

use super::Arch;
use crate::error::{Error, Result};
use crate::format::{DType, FileHeader, TensorInfo};

/// An expected shape, ggml order. Each dimension is a number, or a symbol: `E` n_embed, `V` n_vocab,
/// `F` the FFN width, `S` head size, `H` head count, lower case a LoRA rank. A symbol takes one value
/// throughout the model (the first tensor that has it fixes it).
type Shape = &'static [&'static str];

/// How rwkv.cpp stores a tensor. Its graphs use the matrices in their stored type (`ggml_mul_mat`
/// and `ggml_get_rows` take any type) and every other tensor as an operand of element-wise ops,
/// which ggml computes in f32 only. Its converter (`convert_pytorch_to_ggml.py`) writes the
/// matrices of an FP16 file in FP16, except those it keeps in FP32 by name (`.time_*`); its
/// quantizer quantizes the 2-D matrices except the embedding, the head and (its v7 files show)
/// v7's LoRA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// An element-wise operand: FP32 in every file (in another type it aborts rwkv.cpp).
    Vector,
    /// A matrix: `half` if FP16 files have it in FP16, `quantized` if quantized files quantize it.
    Matrix { half: bool, quantized: bool },
}

const VECTOR: Store = Store::Vector;
/// The projections.
const MATRIX: Store = Store::Matrix { half: true, quantized: true };
/// The embedding, the head and v7's LoRA, which quantization keeps in their float type.
const KEPT: Store = Store::Matrix { half: true, quantized: false };
/// v6's 2-D LoRA: FP32 in float files (a `.time_*` name), quantized in quantized files.
const TIME: Store = Store::Matrix { half: false, quantized: true };
/// v6's 3-D LoRA (`time_maa_w2`): FP32 in the files rwkv.cpp writes.
const TIME_3D: Store = Store::Matrix { half: false, quantized: false };

impl Store {
    pub fn is_matrix(self) -> bool {
        matches!(self, Store::Matrix { .. })
    }

    /// Whether quantizing to `q` (a quantized type) turns this tensor, with rows of `row_len`, into `q`.
    pub fn quantizes(self, q: DType, row_len: usize) -> bool {
        matches!(self, Store::Matrix { quantized: true, .. }) && row_len % q.block_len() == 0
    }

    /// The tensor's type in a file of type `file` made as rwkv.cpp makes files: converted to FP32
    /// or FP16, and a quantized file quantized from the FP16 one.
    pub fn dtype(self, file: DType, row_len: usize) -> DType {
        match (self, file) {
            (Store::Vector, _) | (_, DType::F32) => DType::F32,
            (_, q) if q.is_quantized() && self.quantizes(q, row_len) => q,
            (Store::Matrix { half: true, .. }, _) => DType::F16,
            (Store::Matrix { half: false, .. }, _) => DType::F32,
        }
    }
}

/// Which layers have a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layers {
    All,
    First,
    /// v7's value-residual tensors.
    AfterFirst,
}

/// One tensor of a table: its name (inside `blocks.N.` for a layer's), shape, storage and layers.
pub struct Spec {
    name: &'static str,
    pub shape: Shape,
    pub store: Store,
    layers: Layers,
}

const fn s(name: &'static str, shape: Shape, store: Store) -> Spec {
    Spec { name, shape, store, layers: Layers::All }
}

const fn first(name: &'static str, shape: Shape, store: Store) -> Spec {
    Spec { name, shape, store, layers: Layers::First }
}

const fn after_first(name: &'static str, shape: Shape, store: Store) -> Spec {
    Spec { name, shape, store, layers: Layers::AfterFirst }
}

/// Before the layers.
const EMB: &[Spec] = &[s("emb.weight", &["E", "V"], KEPT)];

/// After the layers.
const HEAD: &[Spec] =
    &[s("ln_out.weight", &["E"], VECTOR), s("ln_out.bias", &["E"], VECTOR), s("head.weight", &["E", "V"], KEPT)];

const LN: &[Spec] = &[
    s("ln1.weight", &["E"], VECTOR),
    s("ln1.bias", &["E"], VECTOR),
    s("ln2.weight", &["E"], VECTOR),
    s("ln2.bias", &["E"], VECTOR),
];

/// The first layer's normalization of the embeddings.
const LN0: &[Spec] = &[first("ln0.weight", &["E"], VECTOR), first("ln0.bias", &["E"], VECTOR)];

const V4_ATT: &[Spec] = &[
    s("att.time_decay", &["E"], VECTOR),
    s("att.time_first", &["E"], VECTOR),
    s("att.time_mix_k", &["E"], VECTOR),
    s("att.time_mix_v", &["E"], VECTOR),
    s("att.time_mix_r", &["E"], VECTOR),
    s("att.key.weight", &["E", "E"], MATRIX),
    s("att.value.weight", &["E", "E"], MATRIX),
    s("att.receptance.weight", &["E", "E"], MATRIX),
    s("att.output.weight", &["E", "E"], MATRIX),
];

const V5_1_ATT: &[Spec] = &[
    s("att.time_decay", &["1", "1", "H"], VECTOR),
    s("att.time_first", &["1", "1", "H"], VECTOR),
    s("att.time_mix_k", &["E"], VECTOR),
    s("att.time_mix_v", &["E"], VECTOR),
    s("att.time_mix_r", &["E"], VECTOR),
    s("att.ln_x.weight", &["E"], VECTOR),
    s("att.ln_x.bias", &["E"], VECTOR),
    s("att.key.weight", &["E", "E"], MATRIX),
    s("att.value.weight", &["E", "E"], MATRIX),
    s("att.receptance.weight", &["E", "E"], MATRIX),
    s("att.output.weight", &["E", "E"], MATRIX),
];

const V5_2_ATT: &[Spec] = &[
    s("att.time_decay", &["1", "S", "H"], VECTOR),
    s("att.time_faaaa", &["1", "S", "H"], VECTOR),
    s("att.time_mix_k", &["E"], VECTOR),
    s("att.time_mix_v", &["E"], VECTOR),
    s("att.time_mix_r", &["E"], VECTOR),
    s("att.time_mix_g", &["E"], VECTOR),
    s("att.ln_x.weight", &["E"], VECTOR),
    s("att.ln_x.bias", &["E"], VECTOR),
    s("att.key.weight", &["E", "E"], MATRIX),
    s("att.value.weight", &["E", "E"], MATRIX),
    s("att.receptance.weight", &["E", "E"], MATRIX),
    s("att.output.weight", &["E", "E"], MATRIX),
    s("att.gate.weight", &["E", "E"], MATRIX),
];

/// v4's and v5's channel mix.
const FFN_MIX: &[Spec] = &[
    s("ffn.time_mix_k", &["E"], VECTOR),
    s("ffn.time_mix_r", &["E"], VECTOR),
    s("ffn.key.weight", &["E", "F"], MATRIX),
    s("ffn.value.weight", &["F", "E"], MATRIX),
    s("ffn.receptance.weight", &["E", "E"], MATRIX),
];

const V6_ATT: &[Spec] = &[
    s("att.time_maa_x", &["E"], VECTOR),
    s("att.time_maa_w", &["E"], VECTOR),
    s("att.time_maa_k", &["E"], VECTOR),
    s("att.time_maa_v", &["E"], VECTOR),
    s("att.time_maa_r", &["E"], VECTOR),
    s("att.time_maa_g", &["E"], VECTOR),
    s("att.time_maa_w1", &["E", "m5"], TIME),
    s("att.time_maa_w2", &["m", "E", "5"], TIME_3D),
    s("att.time_decay", &["1", "S", "H"], VECTOR),
    s("att.time_decay_w1", &["E", "d"], TIME),
    s("att.time_decay_w2", &["d", "E"], TIME),
    s("att.time_faaaa", &["1", "S", "H"], VECTOR),
    s("att.receptance.weight", &["E", "E"], MATRIX),
    s("att.key.weight", &["E", "E"], MATRIX),
    s("att.value.weight", &["E", "E"], MATRIX),
    s("att.output.weight", &["E", "E"], MATRIX),
    s("att.gate.weight", &["E", "E"], MATRIX),
    s("att.ln_x.weight", &["E"], VECTOR),
    s("att.ln_x.bias", &["E"], VECTOR),
];

const V6_FFN: &[Spec] = &[
    s("ffn.time_maa_k", &["E"], VECTOR),
    s("ffn.time_maa_r", &["E"], VECTOR),
    s("ffn.key.weight", &["E", "F"], MATRIX),
    s("ffn.receptance.weight", &["E", "E"], MATRIX),
    s("ffn.value.weight", &["F", "E"], MATRIX),
];

const V7_ATT: &[Spec] = &[
    s("att.x_rwkvag", &["E", "1", "6"], VECTOR),
    s("att.w1", &["E", "w"], KEPT),
    s("att.w2", &["w", "E"], KEPT),
    s("att.w0", &["E", "1", "1"], VECTOR),
    s("att.a1", &["E", "a"], KEPT),
    s("att.a2", &["a", "E"], KEPT),
    s("att.a0", &["E", "1", "1"], VECTOR),
    after_first("att.v1", &["E", "v"], KEPT),
    after_first("att.v2", &["v", "E"], KEPT),
    after_first("att.v0", &["E", "1", "1"], VECTOR),
    s("att.g1", &["E", "g"], KEPT),
    s("att.g2", &["g", "E"], KEPT),
    s("att.k_k", &["E", "1", "1"], VECTOR),
    s("att.k_a", &["E", "1", "1"], VECTOR),
    s("att.r_k", &["S", "H"], VECTOR),
    s("att.receptance.weight", &["E", "E"], MATRIX),
    s("att.key.weight", &["E", "E"], MATRIX),
    s("att.value.weight", &["E", "E"], MATRIX),
    s("att.output.weight", &["E", "E"], MATRIX),
    s("att.ln_x.weight", &["E"], VECTOR),
    s("att.ln_x.bias", &["E"], VECTOR),
];

const V7_FFN: &[Spec] = &[
    s("ffn.x_k", &["E", "1", "1"], VECTOR),
    s("ffn.key.weight", &["E", "F"], MATRIX),
    s("ffn.value.weight", &["F", "E"], MATRIX),
];

/// A layer's tensors in file order: the checkpoint's order, which rwkv.cpp's converter keeps
/// (its v4 and v5 files have the first layer's `ln0` after its channel mix, v6 and v7 after `ln2`).
fn layer(arch: Arch) -> [&'static [Spec]; 4] {
    match arch {
        Arch::V4 => [LN, V4_ATT, FFN_MIX, LN0],
        Arch::V5_1 => [LN, V5_1_ATT, FFN_MIX, LN0],
        Arch::V5_2 => [LN, V5_2_ATT, FFN_MIX, LN0],
        Arch::V6 => [LN, LN0, V6_ATT, V6_FFN],
        Arch::V7 => [LN, LN0, V7_ATT, V7_FFN],
    }
}

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

/// Every tensor the architecture needs, in file order.
pub fn expected(arch: Arch, n_layer: usize) -> Vec<(String, &'static Spec)> {
    let mut out: Vec<(String, &'static Spec)> = EMB.iter().map(|t| (t.name.to_string(), t)).collect();
    for i in 0..n_layer {
        for t in layer(arch).into_iter().flatten() {
            let here = match t.layers {
                Layers::All => true,
                Layers::First => i == 0,
                Layers::AfterFirst => i > 0,
            };
            if here {
                out.push((format!("blocks.{i}.{}", t.name), t));
            }
        }
    }
    out.extend(HEAD.iter().map(|t| (t.name.to_string(), t)));
    out
}

/// How rwkv.cpp stores the tensor of this name (in any architecture: a name means the same in
/// all of them), so a streaming tool can decide tensor by tensor; None for an unknown name.
pub fn store(name: &str) -> Option<Store> {
    let spec = match name.strip_prefix("blocks.").and_then(|rest| rest.split_once('.')) {
        Some((_, leaf)) => Arch::ALL.into_iter().flat_map(layer).flatten().find(|t| t.name == leaf),
        None => EMB.iter().chain(HEAD).find(|t| t.name == name),
    };
    spec.map(|t| t.store)
}

/// Values of the shape symbols.
pub type Dims = HashMap<&'static str, usize>;

/// The concrete shape for `dims` (every symbol of `shape` must be bound).
pub fn resolve(shape: Shape, dims: &Dims) -> Vec<usize> {
    shape.iter().map(|d| d.parse().unwrap_or_else(|_| dims[d])).collect()
}

/// Checks that exactly the expected tensors are present with consistent shapes, the element-wise
/// ones in FP32 (rwkv.cpp runs nothing else; matrices may have any type); returns the
/// ggml's v7 kernel (`rwkv_wkv7`) walks a head in blocks of up to 64 floats (16 in wasm, 64 with
/// AVX-512) with no loop for a remainder: a head of another size makes it read and write past its
/// buffers. Every RWKV-7 model has heads of 64; a file with others is refused, on every target.
pub fn check_head_size(arch: Arch, head_size: usize) -> std::result::Result<(), String> {
    if arch == Arch::V7 && head_size % 64 != 0 {
        return Err(format!("v7 heads of size {head_size}: only multiples of 64 can run (every RWKV-7 model has 64)"));
    }
    Ok(())
}

/// values the symbols took (`F`, `S`, `H`, LoRA ranks), with `E` and `V` from the header.
pub fn validate(arch: Arch, h: &FileHeader, find: impl Fn(&str) -> Option<TensorInfo>, count: usize) -> Result<Dims> {
    let expected = expected(arch, h.n_layer as usize);
    let mut dims = Dims::from([("E", h.n_embed as usize), ("V", h.n_vocab as usize)]);
    for (name, spec) in &expected {
        let t = find(name).ok_or_else(|| {
            Error::invalid_model(format!("tensor '{name}' is missing (the file looks like an RWKV {} model)", arch.name()))
        })?;
        let fits = t.shape.len() == spec.shape.len()
            && t.shape.iter().zip(spec.shape).all(|(&got, sym)| match sym.parse::<usize>() {
                Ok(n) => got == n,
                Err(_) => *dims.entry(sym).or_insert(got) == got,
            });
        if !fits {
            return Err(Error::invalid_model(format!(
                "tensor '{name}' has shape {:?}, which does not fit n_embed={} n_vocab={} and the other tensors",
                t.shape, h.n_embed, h.n_vocab
            )));
        }
        // Refused rather than computed (we could convert it): such a file aborts rwkv.cpp, and
        // no converter writes one, so it is a broken file.
        if spec.store == Store::Vector && t.dtype != DType::F32 {
            return Err(Error::invalid_model(format!(
                "tensor '{name}' is {}, but RWKV files keep it in FP32: rwkv.cpp computes with it in f32 only",
                t.dtype.name()
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
