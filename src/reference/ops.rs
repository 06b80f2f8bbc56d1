//! The operations every architecture shares: normalizations, the matrix-vector product over
//! stored (possibly quantized) weights, activations and token-shift mixing.

use super::dequant::dequantize_row;
use crate::error::{Error, Result};
use crate::model::Tensor;

/// `F.layer_norm`'s epsilon, used by rwkv.cpp for ln0, ln1, ln2 and ln_out.
pub const LAYER_NORM_EPS: f32 = 1e-5;
/// v5.1 and v5.2: `ln_x`, a group norm with one group per head (rwkv.cpp `ggml_norm(.., 1e-5)`).
pub const GROUP_NORM_EPS_V5: f32 = 1e-5;
/// v6 and v7: `ln_x` with eps 64e-5 (rwkv.cpp `ggml_norm(.., 64e-5)`; its older v6 graph scaled
/// the input by 1/8 and used 1e-5, which is the same thing).
pub const GROUP_NORM_EPS_V6: f32 = 64e-5;

/// `(x - mean) / sqrt(variance + eps)` in place (population variance, sums in f64).
fn normalize(x: &mut [f32], eps: f32) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let scale = 1.0 / (var + eps as f64).sqrt();
    for v in x.iter_mut() {
        *v = ((*v as f64 - mean) * scale) as f32;
    }
}

/// `normalize(x) * w + b` into a new vector.
pub fn layer_norm(x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let mut y = x.to_vec();
    normalize(&mut y, LAYER_NORM_EPS);
    for ((y, w), b) in y.iter_mut().zip(w).zip(b) {
        *y = *y * w + b;
    }
    y
}

/// Group norm with `groups` equal, contiguous groups (the heads), then `* w + b`, in place.
pub fn group_norm(x: &mut [f32], groups: usize, w: &[f32], b: &[f32], eps: f32) {
    let size = x.len() / groups;
    for g in x.chunks_exact_mut(size) {
        normalize(g, eps);
    }
    for ((y, w), b) in x.iter_mut().zip(w).zip(b) {
        *y = *y * w + b;
    }
}

/// `x / max(‖x‖₂, 1e-12)` in place, as `F.normalize`.
pub fn l2_normalize(x: &mut [f32]) {
    let norm = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt().max(1e-12);
    for v in x.iter_mut() {
        *v = (*v as f64 / norm) as f32;
    }
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

pub fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// `relu(x)²`, the FFN's activation.
pub fn relu_sq(x: f32) -> f32 {
    let r = x.max(0.0);
    r * r
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums, so the compiler can vectorize (like ggml's SIMD dot products).
    let mut acc = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// v4/v5 token shift: `x * m + prev * (1 - m)`.
pub fn mix(x: &[f32], prev: &[f32], m: &[f32]) -> Vec<f32> {
    x.iter().zip(prev).zip(m).map(|((x, p), m)| x * m + p * (1.0 - m)).collect()
}

/// v6/v7 token shift: `x + (prev - x) * m`.
pub fn shift(x: &[f32], prev: &[f32], m: &[f32]) -> Vec<f32> {
    x.iter().zip(prev).zip(m).map(|((x, p), m)| x + (p - x) * m).collect()
}

pub fn add(x: &mut [f32], y: &[f32]) {
    for (x, y) in x.iter_mut().zip(y) {
        *x += y;
    }
}

/// Rows of `w` (each `w.info.ne(0)` elements long), for error messages and bounds checks.
fn rows(w: &Tensor) -> usize {
    match w.info.ne(0) {
        0 => 0,
        n => w.info.n_elements() / n,
    }
}

/// `out[r] = dot(row first_row + r of w, x)`, dequantizing one row at a time (the weights stay
/// in their stored type; no f32 copy of the matrix is ever made).
pub fn matvec_rows(w: &Tensor, first_row: usize, x: &[f32], out: &mut [f32]) -> Result<()> {
    let n = w.info.ne(0);
    if n != x.len() || first_row + out.len() > rows(w) {
        return Err(Error::invalid_model(format!(
            "tensor '{}' of shape {:?} cannot take a vector of {} into rows {}..{}",
            w.info.name,
            w.info.shape,
            x.len(),
            first_row,
            first_row + out.len()
        )));
    }
    if out.is_empty() {
        return Ok(());
    }
    let row_bytes = w.data.len() / rows(w);
    let data = &w.data.as_slice()[first_row * row_bytes..];
    let mut row = vec![0.0; n];
    for (o, bytes) in out.iter_mut().zip(data.chunks_exact(row_bytes)) {
        dequantize_row(w.info.dtype, bytes, &mut row);
        *o = dot(&row, x);
    }
    Ok(())
}

/// `W x` for a matrix stored as `[len(x), rows]` (ggml order): one output per row.
pub fn matvec(w: &Tensor, x: &[f32]) -> Result<Vec<f32>> {
    let mut out = vec![0.0; rows(w)];
    matvec_rows(w, 0, x, &mut out)?;
    Ok(out)
}
