//! Writing rwkv.cpp files (used by quantization and by the synthetic-model generator).

use super::{FileHeader, TensorInfo, MAGIC};

pub fn write_file_header(out: &mut Vec<u8>, h: &FileHeader) {
    for v in [MAGIC, h.version, h.n_vocab as i32, h.n_embed as i32, h.n_layer as i32, h.dtype.code()] {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Writes the tensor header; the caller writes `info.n_bytes` of data after it.
pub fn write_tensor_header(out: &mut Vec<u8>, info: &TensorInfo) {
    for v in [info.shape.len() as i32, info.name.len() as i32, info.dtype.code()] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for &d in &info.shape {
        out.extend_from_slice(&(d as i32).to_le_bytes());
    }
    out.extend_from_slice(info.name.as_bytes());
}
