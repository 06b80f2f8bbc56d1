//! rwkv.cpp's model file format: data types, headers, a streaming parser and a writer.
//!
//! All little-endian. File header: `magic, version, n_vocab, n_embed, n_layer, data_type` (i32 each).
//! Then tensors until the end of the file: `dim_count, key_length, data_type, shape[dim_count]`
//! (i32 each, shape in ggml order: `ne0` first), the UTF-8 name, then the data.

mod dtype;
mod parser;
mod writer;

pub use dtype::{DType, QK};
pub use parser::{Parser, Sink};
pub use writer::{write_file_header, write_tensor_header};

pub const MAGIC: i32 = 0x6767_6d66;
/// Version 100 files use an older block layout for quantized data; 101 is current.
pub const VERSION_LEGACY: i32 = 100;
pub const VERSION: i32 = 101;
pub const FILE_HEADER_BYTES: usize = 24;

/// Sanity bounds that reject absurd headers before any arithmetic can overflow.
pub(crate) const MAX_N_EMBED: u32 = 1 << 16;
pub(crate) const MAX_N_LAYER: u32 = 1 << 12;
pub(crate) const MAX_N_VOCAB: u32 = 1 << 22;
const MAX_DIMS: usize = 4;
const MAX_KEY_LEN: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub version: i32,
    pub n_vocab: u32,
    pub n_embed: u32,
    pub n_layer: u32,
    pub dtype: DType,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: DType,
    /// ggml order: `shape[0]` is the row length (contiguous dimension).
    pub shape: Vec<usize>,
    /// Bytes of data that follow the header.
    pub n_bytes: usize,
}

impl TensorInfo {
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }
    /// `ne[i]`, with 1 for dimensions beyond `shape.len()`, as ggml does.
    pub fn ne(&self, i: usize) -> usize {
        self.shape.get(i).copied().unwrap_or(1)
    }
    /// Bytes of the tensor header as written in a file.
    pub fn header_bytes(&self) -> usize {
        12 + 4 * self.shape.len() + self.name.len()
    }
}
