//! The data types of rwkv.cpp files and their byte layout (ggml's blocks of 32 for quantized types).

use echo_ggml_sys as sys;

use crate::error::{Error, ErrorCode, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
}

/// Elements per block of every quantized type.
pub const QK: usize = 32;

impl DType {
    pub const ALL: [DType; 7] =
        [DType::F32, DType::F16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0];
    pub const QUANTIZED: [DType; 5] = [DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0];

    /// The code stored in rwkv.cpp files (4–6 were formats that no longer exist).
    pub fn from_code(code: i32) -> Result<DType> {
        Ok(match code {
            0 => DType::F32,
            1 => DType::F16,
            2 => DType::Q4_0,
            3 => DType::Q4_1,
            7 => DType::Q5_0,
            8 => DType::Q5_1,
            9 => DType::Q8_0,
            _ => {
                return Err(Error::new(
                    ErrorCode::UnsupportedVersion,
                    format!("unknown data type {code}; supported: FP32, FP16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0"),
                ))
            }
        })
    }

    pub fn code(self) -> i32 {
        match self {
            DType::F32 => 0,
            DType::F16 => 1,
            DType::Q4_0 => 2,
            DType::Q4_1 => 3,
            DType::Q5_0 => 7,
            DType::Q5_1 => 8,
            DType::Q8_0 => 9,
        }
    }

    /// ggml's `enum ggml_type` value.
    pub fn ggml_type(self) -> sys::ggml_type {
        match self {
            DType::F32 => sys::GGML_TYPE_F32,
            DType::F16 => sys::GGML_TYPE_F16,
            DType::Q4_0 => sys::GGML_TYPE_Q4_0,
            DType::Q4_1 => sys::GGML_TYPE_Q4_1,
            DType::Q5_0 => sys::GGML_TYPE_Q5_0,
            DType::Q5_1 => sys::GGML_TYPE_Q5_1,
            DType::Q8_0 => sys::GGML_TYPE_Q8_0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "FP32",
            DType::F16 => "FP16",
            DType::Q4_0 => "Q4_0",
            DType::Q4_1 => "Q4_1",
            DType::Q5_0 => "Q5_0",
            DType::Q5_1 => "Q5_1",
            DType::Q8_0 => "Q8_0",
        }
    }

    pub fn from_name(name: &str) -> Result<DType> {
        let upper = name.to_ascii_uppercase();
        let upper = match upper.as_str() {
            "F32" => "FP32",
            "F16" => "FP16",
            other => other,
        };
        DType::ALL.into_iter().find(|t| t.name() == upper).ok_or_else(|| {
            Error::invalid_options(format!(
                "unknown data type '{name}'; use one of FP32, FP16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0"
            ))
        })
    }

    pub fn is_quantized(self) -> bool {
        !matches!(self, DType::F32 | DType::F16)
    }

    /// Elements per block (1 for float types).
    pub fn block_len(self) -> usize {
        if self.is_quantized() { QK } else { 1 }
    }

    /// Bytes per block: an f16 scale (and f16 min for the `_1` types), high bits for Q5, packed quants.
    pub fn block_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
            DType::Q4_0 => 2 + QK / 2,
            DType::Q4_1 => 4 + QK / 2,
            DType::Q5_0 => 2 + 4 + QK / 2,
            DType::Q5_1 => 4 + 4 + QK / 2,
            DType::Q8_0 => 2 + QK,
        }
    }

    /// Bytes for a row of `n` elements, or None when `n` is not a whole number of blocks.
    pub fn row_bytes(self, n: usize) -> Option<usize> {
        if n % self.block_len() != 0 {
            return None;
        }
        (n / self.block_len()).checked_mul(self.block_bytes())
    }
}
