//! Stored data types to f32: one row (a whole number of blocks) at a time.
//!
//! The quantized types are ggml's blocks of 32 elements (`QK`), all little-endian:
//!
//! | type | block bytes | layout | element `i` |
//! |---|---|---|---|
//! | Q4_0 | 18 | f16 `d`, 16 bytes of nibbles | `(q - 8) * d` |
//! | Q4_1 | 20 | f16 `d`, f16 `m`, 16 bytes of nibbles | `q * d + m` |
//! | Q5_0 | 22 | f16 `d`, u32 `qh`, 16 bytes of nibbles | `(q - 16) * d` |
//! | Q5_1 | 24 | f16 `d`, f16 `m`, u32 `qh`, 16 bytes of nibbles | `q * d + m` |
//! | Q8_0 | 34 | f16 `d`, 32 × i8 | `q * d` |
//!
//! Nibble byte `j` holds element `j` in its low half and element `j + 16` in its high half; for the
//! Q5 types, bit `i` of `qh` is the fifth (high) bit of element `i`.

use half::f16;

use crate::format::{DType, QK};
use crate::model::Tensor;

/// Dequantizes one row: `bytes` must be exactly `dtype.row_bytes(out.len())` long.
///
/// # Panics
/// When the byte count does not match `out.len()` elements of `dtype` (a caller bug: rows of
/// loaded tensors always match, see `TensorInfo::n_bytes`).
pub fn dequantize_row(dtype: DType, bytes: &[u8], out: &mut [f32]) {
    assert_eq!(
        dtype.row_bytes(out.len()),
        Some(bytes.len()),
        "{} bytes are not a row of {} {} elements",
        bytes.len(),
        out.len(),
        dtype.name()
    );
    match dtype {
        DType::F32 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        DType::F16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        _ => {
            for (block, o) in bytes.chunks_exact(dtype.block_bytes()).zip(out.chunks_exact_mut(QK)) {
                dequantize_block(dtype, block, o);
            }
        }
    }
}

/// The whole tensor as f32, row after row (for vectors and other small tensors).
pub fn tensor_to_f32(t: &Tensor) -> Vec<f32> {
    let n = t.info.n_elements();
    let mut out = vec![0.0; n];
    let row = t.info.ne(0);
    if n == 0 || row == 0 {
        return out;
    }
    let row_bytes = t.data.len() / (n / row);
    for (bytes, o) in t.data.as_slice().chunks_exact(row_bytes).zip(out.chunks_exact_mut(row)) {
        dequantize_row(t.info.dtype, bytes, o);
    }
    out
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The 32 four-bit values packed in 16 bytes: byte `j` holds value `j` (low) and `j + 16` (high).
fn nibbles(qs: &[u8]) -> [u8; QK] {
    let mut q = [0u8; QK];
    for (j, &byte) in qs.iter().enumerate() {
        q[j] = byte & 0x0F;
        q[j + QK / 2] = byte >> 4;
    }
    q
}

/// Adds bit `i` of `qh` as the fifth bit of value `i`.
fn with_high_bits(mut q: [u8; QK], qh: u32) -> [u8; QK] {
    for (i, v) in q.iter_mut().enumerate() {
        *v |= (((qh >> i) & 1) as u8) << 4;
    }
    q
}

fn dequantize_block(dtype: DType, b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    match dtype {
        DType::Q4_0 => {
            for (o, q) in out.iter_mut().zip(nibbles(&b[2..18])) {
                *o = (q as i32 - 8) as f32 * d;
            }
        }
        DType::Q4_1 => {
            let m = f16_at(b, 2);
            for (o, q) in out.iter_mut().zip(nibbles(&b[4..20])) {
                *o = q as f32 * d + m;
            }
        }
        DType::Q5_0 => {
            let q = with_high_bits(nibbles(&b[6..22]), u32_at(b, 2));
            for (o, q) in out.iter_mut().zip(q) {
                *o = (q as i32 - 16) as f32 * d;
            }
        }
        DType::Q5_1 => {
            let m = f16_at(b, 2);
            let q = with_high_bits(nibbles(&b[8..24]), u32_at(b, 4));
            for (o, q) in out.iter_mut().zip(q) {
                *o = q as f32 * d + m;
            }
        }
        DType::Q8_0 => {
            for (o, &q) in out.iter_mut().zip(&b[2..2 + QK]) {
                *o = q as i8 as f32 * d;
            }
        }
        DType::F32 | DType::F16 => unreachable!("float types have no blocks"),
    }
}
