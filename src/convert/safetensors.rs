//! `.safetensors`: an 8-byte little-endian header length, a JSON header
//! (`{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`),
//! then the data, offsets relative to its start. The header is read with the crate's JSON reader
//! (bounded depth; numbers as f64, exact for every size a file can have).

use super::pickle::{Elem, TensorRef};
use crate::error::{Error, ErrorCode, Result};
use crate::tokenizer::json::Json;

/// A header larger than this is refused (real ones are a few hundred bytes per tensor).
pub const MAX_HEADER_BYTES: u64 = 64 << 20;

fn bad(msg: impl std::fmt::Display) -> Error {
    Error::invalid_model(format!("the safetensors header is malformed: {msg}"))
}

/// The tensors of a header, in the header's order, with offsets made absolute (`data_start` is
/// 8 + the header length) and checked against `file_len`: each tensor is its own storage (named
/// as the tensor), returned with the file offset of its data.
pub fn tensors(header: &[u8], data_start: u64, file_len: u64) -> Result<Vec<(String, TensorRef, u64)>> {
    let Json::Object(items) = Json::parse_as(header, "safetensors header", ErrorCode::InvalidModel)? else {
        return Err(bad("it is not an object"));
    };
    let mut out = Vec::new();
    for (name, v) in items {
        if name == "__metadata__" {
            continue;
        }
        let get = |k: &str| v.get(k);
        let elem = match get("dtype").and_then(Json::as_str) {
            Some("F32") => Elem::F32,
            Some("F16") => Elem::F16,
            Some("BF16") => Elem::BF16,
            Some(s) => {
                return Err(Error::invalid_model(format!(
                    "tensor '{name}' is {s}; RWKV weights are F32, F16 or BF16"
                )))
            }
            _ => return Err(bad(format!("'{name}' has no dtype"))),
        };
        let nums = |k: &str| -> Result<Vec<u64>> {
            match get(k) {
                Some(Json::Array(a)) if a.len() <= 8 => a
                    .iter()
                    .map(|x| match *x {
                        Json::Number(n) if n >= 0.0 && n.fract() == 0.0 && n <= (1u64 << 53) as f64 => Ok(n as u64),
                        _ => Err(bad(format!("'{name}' has a value in {k} that is not a size"))),
                    })
                    .collect(),
                _ => Err(bad(format!("'{name}' has no {k}"))),
            }
        };
        let shape = nums("shape")?;
        let offs = nums("data_offsets")?;
        let [begin, end] = offs[..] else { return Err(bad(format!("'{name}' needs two data_offsets"))) };
        let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).ok_or_else(|| bad(format!("'{name}' is too large")))?;
        let bytes = numel.checked_mul(elem.bytes() as u64).ok_or_else(|| bad(format!("'{name}' is too large")))?;
        if end < begin || end - begin != bytes {
            return Err(Error::invalid_model(format!(
                "tensor '{name}' has {} bytes of data but its shape {shape:?} needs {bytes}",
                end.wrapping_sub(begin)
            )));
        }
        let abs = data_start.checked_add(begin).filter(|a| a.checked_add(bytes).is_some_and(|e| e <= file_len));
        let abs = abs.ok_or_else(|| Error::invalid_model(format!("tensor '{name}' lies past the end of the file (truncated?)")))?;
        // Row-major strides.
        let mut stride = vec![1u64; shape.len()];
        for d in (0..shape.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * shape[d + 1];
        }
        out.push((
            name.clone(),
            TensorRef { storage: name, elem, storage_numel: numel, offset: 0, shape, stride },
            abs,
        ));
    }
    Ok(out)
}
