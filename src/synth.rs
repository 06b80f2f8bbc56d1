//! Deterministic random-weight models at any size, for benchmarks and memory tests. The weights
//! are scaled so activations stay finite (unit-variance mat-vecs, decays inside (0, 1)); the file
//! is produced row by row, so a model of any size is written with a few KB of memory. Tensors,
//! their order and their types are those of a file rwkv.cpp's converter (and quantizer) makes
//! from a checkpoint of that size (the schema's tables).

use crate::error::{Error, Result};
use crate::format::{write_file_header, write_tensor_header, DType, FileHeader, TensorInfo, MAX_N_EMBED, MAX_N_LAYER, MAX_N_VOCAB, VERSION};
use crate::model::schema::{self, Dims};
use crate::model::Arch;
use crate::quantize::encode_row;
use crate::rng::SplitMix;

#[derive(Debug, Clone, Copy)]
pub struct SynthSpec {
    pub arch: Arch,
    pub n_embed: usize,
    pub n_layer: usize,
    pub n_vocab: usize,
    /// The FFN width and the head size; None: as the RWKV training code sizes them. An FFN wider
    /// than the 4× n_embed a file header is budgeted for makes a model whose evaluation may not
    /// fit (memory tests).
    pub n_ffn: Option<usize>,
    pub head_size: Option<usize>,
    pub dtype: DType,
    pub seed: u64,
}

/// Uniform in [lo, hi).
fn uniform(rng: &mut SplitMix, lo: f32, hi: f32) -> f32 {
    let unit = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
    lo + (hi - lo) * unit
}

/// The shape symbols for a model of this size, as the RWKV training code sizes them.
fn dims(spec: &SynthSpec) -> Dims {
    let e = spec.n_embed;
    let round32 = |x: f64| ((x / 32.0).round() as usize * 32).max(32);
    let ffn = spec.n_ffn.unwrap_or(match spec.arch {
        Arch::V5_2 | Arch::V6 => (e * 7 / 2) / 32 * 32,
        _ => 4 * e,
    });
    let head_size = spec.head_size.unwrap_or(e.min(64));
    let sqrt = (e as f64).sqrt();
    Dims::from([
        ("E", e),
        ("V", spec.n_vocab),
        ("F", ffn),
        ("S", head_size),
        ("H", e / head_size),
        ("m", 32),
        ("m5", 160),
        ("d", 64),
        ("w", round32(1.8 * sqrt)),
        ("a", round32(1.8 * sqrt)),
        ("v", round32(1.3 * sqrt)),
        ("g", round32(0.6 * (e as f64).powf(0.8))),
    ])
}

/// The range a tensor's values are drawn from, by what the tensor does.
fn value_range(name: &str, shape: &[usize]) -> (f32, f32) {
    let leaf = name.rsplit_once("blocks.").map_or(name, |(_, l)| l.split_once('.').map_or(l, |(_, l)| l));
    match leaf {
        "ln0.weight" | "ln1.weight" | "ln2.weight" | "att.ln_x.weight" | "ln_out.weight" => (0.9, 1.1),
        l if l.ends_with(".bias") => (-0.05, 0.05),
        "att.time_decay" | "att.w0" => (-2.0, -0.5),
        "att.time_first" | "att.time_faaaa" => (-0.5, 0.5),
        "att.k_k" | "att.k_a" => (0.8, 1.0),
        "att.a0" | "att.v0" | "att.r_k" => (-0.1, 0.1),
        l if l.contains("time_mix") || l.contains("time_maa") && shape.len() == 1 || l.contains("x_") => (0.0, 1.0),
        _ if shape.len() >= 2 => {
            // Unit variance after a mat-vec over `shape[0]` inputs; LoRA matrices much smaller.
            let is_lora = !name.ends_with(".weight");
            let a = (3.0 / shape[0] as f32).sqrt() * if is_lora { 0.1 } else { 1.0 };
            (-a, a)
        }
        _ => (-0.1, 0.1),
    }
}

/// The tensors of the model, in file order, with their stored types and sizes.
pub fn plan(spec: &SynthSpec) -> Result<(FileHeader, Vec<TensorInfo>)> {
    if spec.n_embed == 0 || spec.n_layer == 0 || spec.n_vocab == 0 || spec.n_embed % 32 != 0 || spec.n_ffn.is_some_and(|f| f == 0 || f % 32 != 0) {
        return Err(Error::invalid_options("n_embed (and n_ffn) must be positive multiples of 32, n_layer and n_vocab positive"));
    }
    if spec.head_size.is_some_and(|s| s == 0 || spec.n_embed % s != 0) {
        return Err(Error::invalid_options("head_size must divide n_embed"));
    }
    // The parser's limits: past them the file could not be loaded, and the header's u32 fields
    // would truncate the sizes (and planning billions of layers would not end).
    if spec.n_embed > MAX_N_EMBED as usize || spec.n_layer > MAX_N_LAYER as usize || spec.n_vocab > MAX_N_VOCAB as usize {
        return Err(Error::invalid_options(format!(
            "n_embed, n_layer and n_vocab may be at most {MAX_N_EMBED}, {MAX_N_LAYER} and {MAX_N_VOCAB} (the file format's limits)"
        )));
    }
    let dims = dims(spec);
    schema::check_head_size(spec.arch, dims["S"]).map_err(Error::invalid_options)?;
    let header = FileHeader {
        version: VERSION,
        n_vocab: spec.n_vocab as u32,
        n_embed: spec.n_embed as u32,
        n_layer: spec.n_layer as u32,
        dtype: spec.dtype,
    };
    let tensors = schema::expected(spec.arch, spec.n_layer)
        .into_iter()
        .map(|(name, t)| {
            let shape = schema::resolve(t.shape, &dims);
            let dtype = t.store.dtype(spec.dtype, shape[0]);
            // n_ffn is unbounded: a tensor may not be addressable.
            let n_bytes = shape[1..]
                .iter()
                .try_fold(dtype.row_bytes(shape[0]).expect("row fits"), |acc, &d| acc.checked_mul(d))
                .filter(|&n| n <= isize::MAX as usize)
                .ok_or_else(|| Error::invalid_options(format!("tensor '{name}' of shape {shape:?} is too large")))?;
            Ok(TensorInfo { name, dtype, shape, n_bytes })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((header, tensors))
}

/// Total bytes of the file `write` produces.
pub fn file_bytes(spec: &SynthSpec) -> Result<u64> {
    let (_, tensors) = plan(spec)?;
    tensors
        .iter()
        .try_fold(24u64, |acc, t| acc.checked_add((t.header_bytes() + t.n_bytes) as u64))
        .ok_or_else(|| Error::invalid_options("the model is too large to write"))
}

/// The whole file in memory (small models: tests).
pub fn to_vec(spec: &SynthSpec) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write(spec, |bytes| {
        out.extend_from_slice(bytes);
        Ok(())
    })?;
    Ok(out)
}

/// Writes the model, handing each piece of the file to `emit` (at most one row plus a header).
pub fn write(spec: &SynthSpec, mut emit: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
    let (header, tensors) = plan(spec)?;
    let mut rng = SplitMix(spec.seed);
    let mut out = Vec::new();
    write_file_header(&mut out, &header);
    let mut row = Vec::new();
    for info in &tensors {
        write_tensor_header(&mut out, info);
        let (lo, hi) = value_range(&info.name, &info.shape);
        let rows: usize = info.shape[1..].iter().product();
        for _ in 0..rows {
            row.clear();
            row.extend((0..info.shape[0]).map(|_| uniform(&mut rng, lo, hi)));
            encode_row(info.dtype, &row, &mut out);
            if out.len() >= 1 << 16 {
                emit(&out)?;
                out.clear();
            }
        }
    }
    emit(&out)
}
