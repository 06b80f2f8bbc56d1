//! `Conversion`: the checkpoint converter (`crate::convert`) driven from the worker, which reads
//! the byte ranges it asks for from the source (a Blob slice, a file range) and collects the output.

use js_sys::{Float64Array, Uint8Array};
use wasm_bindgen::prelude::*;

use super::js::{num, object};
use crate::convert::{Converter, Need};
use crate::format::DType;

#[wasm_bindgen]
pub struct Conversion {
    inner: Converter,
}

#[wasm_bindgen]
impl Conversion {
    /// A conversion of a checkpoint of `file_bytes` bytes to `dtype` (FP32, FP16, Q4_0 … Q8_0).
    #[wasm_bindgen(constructor)]
    pub fn new(file_bytes: f64, dtype: &str) -> Result<Conversion, JsValue> {
        if !(file_bytes >= 0.0 && file_bytes <= 2f64.powi(53)) {
            return Err(crate::Error::invalid_options("the checkpoint's size must be a number of bytes").into());
        }
        Ok(Conversion { inner: Converter::new(file_bytes as u64, DType::from_name(dtype)?)? })
    }

    /// `[offset, length]` of the bytes to read next, or undefined when the conversion is done.
    pub fn need(&mut self) -> Result<Option<Float64Array>, JsValue> {
        Ok(match self.inner.need()? {
            Need::Read { offset, len } => Some(Float64Array::from(&[offset as f64, len as f64][..])),
            Need::Done => None,
        })
    }

    /// The bytes asked for by the last `need`.
    pub fn give(&mut self, bytes: &[u8]) -> Result<(), JsValue> {
        Ok(self.inner.give(bytes)?)
    }

    /// Output produced so far and not yet taken (possibly empty).
    #[wasm_bindgen(js_name = takeOutput)]
    pub fn take_output(&mut self) -> Uint8Array {
        let out = self.inner.take_output();
        Uint8Array::from(&out[..])
    }

    /// `{ loaded, total }`: tensor bytes read so far, and in all (0 until the index is read).
    pub fn progress(&self) -> JsValue {
        let (done, total) = self.inner.progress();
        object(&[("loaded", num(done as f64)), ("total", num(total as f64))])
    }

    /// `{ arch, nVocab, nEmbed, nLayer, dataType, tensors, quantized }` once done; undefined before.
    pub fn summary(&self) -> JsValue {
        match self.inner.summary() {
            None => JsValue::UNDEFINED,
            Some(s) => object(&[
                ("arch", JsValue::from_str(s.arch.name())),
                ("nVocab", num(s.n_vocab as f64)),
                ("nEmbed", num(s.n_embed as f64)),
                ("nLayer", num(s.n_layer as f64)),
                ("dataType", JsValue::from_str(s.dtype.name())),
                ("tensors", num(s.tensors as f64)),
                ("quantized", num(s.quantized as f64)),
            ]),
        }
    }
}
