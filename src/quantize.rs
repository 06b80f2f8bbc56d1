//! Quantization of FP32/FP16 models to Q4_0, Q4_1, Q5_0, Q5_1 or Q8_0, streaming: the input file
//! goes in as chunks, the output comes out as chunks, and only one row is ever buffered. Which
//! tensors are quantized follows rwkv.cpp ([`schema::Store`]); the block encoding is ggml's
//! own, so files are bit-identical to what rwkv.cpp would write. Optionally the head is quantized
//! too ([`Quantizer::with_head`]), which rwkv.cpp does not do: in wasm the FP16 head is about a third
//! of a decode step.

use half::f16;

use crate::error::{Error, ErrorCode, Result};
use crate::format::{write_file_header, write_tensor_header, DType, FileHeader, Parser, Sink, TensorInfo, VERSION};
use crate::model::schema;

/// Appends `row` encoded as `dtype`.
pub fn encode_row(dtype: DType, row: &[f32], out: &mut Vec<u8>) {
    match dtype {
        DType::F32 => row.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        DType::F16 => row.iter().for_each(|v| out.extend_from_slice(&f16::from_f32(*v).to_le_bytes())),
        _ => {
            let n = dtype.row_bytes(row.len()).expect("caller checked the row length");
            let start = out.len();
            out.resize(start + n, 0);
            // SAFETY: `row` holds one row of `row.len()` floats and `out[start..]` has room for its
            // `n` encoded bytes; ggml needs no importance matrix for these types.
            let written = unsafe {
                echo_ggml_sys::ggml_quantize_chunk(
                    dtype.ggml_type(),
                    row.as_ptr(),
                    out[start..].as_mut_ptr().cast(),
                    0,
                    1,
                    row.len() as i64,
                    std::ptr::null(),
                )
            };
            debug_assert_eq!(written, n);
        }
    }
}

/// Decodes FP32 or FP16 bytes into floats.
fn decode_float_row(dtype: DType, bytes: &[u8], out: &mut Vec<f32>) {
    out.clear();
    match dtype {
        DType::F32 => out.extend(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        DType::F16 => out.extend(bytes.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())),
        _ => unreachable!("only float tensors are quantized"),
    }
}

/// A streaming quantizer: `push` input chunks, collect output with `take_output` as you go.
pub struct Quantizer {
    parser: Parser,
    sink: QuantSink,
}

/// Re-encodes the rows of a float tensor as its bytes arrive, in chunks of any size: only the
/// pending row is buffered. The quantizer and the loader's `head` option use it.
pub(crate) struct Recoder {
    from: DType,
    to: DType,
    row_bytes: usize,
    row: Vec<u8>,
    floats: Vec<f32>,
}

impl Recoder {
    /// The float tensor `info`'s rows to `to`, which takes whole rows; also `info` in `to`.
    pub fn new(info: &TensorInfo, to: DType) -> (Recoder, TensorInfo) {
        let row_len = info.shape[0];
        let row_bytes = info.dtype.row_bytes(row_len).expect("the parser checked the rows");
        let n_bytes = to.row_bytes(row_len).expect("the caller checked the rows") * info.shape[1];
        let recoder = Recoder { from: info.dtype, to, row_bytes, row: Vec::with_capacity(row_bytes), floats: Vec::new() };
        (recoder, TensorInfo { dtype: to, n_bytes, ..info.clone() })
    }

    /// Appends to `out` the encoding of every row that `bytes` completes.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<u8>) {
        while !bytes.is_empty() {
            let n = (self.row_bytes - self.row.len()).min(bytes.len());
            self.row.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.row.len() == self.row_bytes {
                decode_float_row(self.from, &self.row, &mut self.floats);
                encode_row(self.to, &self.floats, out);
                self.row.clear();
            }
        }
    }
}

/// A type for the head (`quantize --head`, `loadModel`'s `head`): a quantized one.
pub fn head_type(name: &str) -> Result<DType> {
    let to = DType::from_name(name)?;
    if !to.is_quantized() {
        return Err(Error::invalid_options(format!(
            "cannot quantize the head to {}; use Q4_0, Q4_1, Q5_0, Q5_1 or Q8_0",
            to.name()
        )));
    }
    Ok(to)
}

/// The type `info` becomes if it is the float head and the head is quantized to `head`; an
/// error if its rows are not whole blocks of it.
pub(crate) fn head_target(head: Option<DType>, info: &TensorInfo) -> Result<Option<DType>> {
    match head {
        Some(to) if info.name == "head.weight" && !info.dtype.is_quantized() && info.shape.len() == 2 => {
            if info.shape[0] % to.block_len() != 0 {
                return Err(Error::invalid_options(format!(
                    "cannot quantize the head to {}: its rows of {} are not whole blocks of {}",
                    to.name(),
                    info.shape[0],
                    to.block_len()
                )));
            }
            Ok(Some(to))
        }
        _ => Ok(None),
    }
}

struct QuantSink {
    target: DType,
    /// The head's type when it is quantized too.
    head: Option<DType>,
    out: Vec<u8>,
    /// The current tensor's rows being quantized; None while a tensor is copied as it is.
    recoder: Option<Recoder>,
    tensors: usize,
    quantized: usize,
}

impl Quantizer {
    pub fn new(target: DType) -> Result<Quantizer> {
        if !target.is_quantized() {
            return Err(Error::invalid_options(format!(
                "cannot quantize to {}; use Q4_0, Q4_1, Q5_0, Q5_1 or Q8_0",
                target.name()
            )));
        }
        Ok(Quantizer {
            parser: Parser::new(),
            sink: QuantSink {
                target,
                head: None,
                out: Vec::new(),
                recoder: None,
                tensors: 0,
                quantized: 0,
            },
        })
    }

    /// Quantizes the head (`head.weight`) to `head` as well (a name for [`head_type`]); its rows
    /// must be whole blocks.
    pub fn with_head(mut self, head: &str) -> Result<Quantizer> {
        self.sink.head = Some(head_type(head)?);
        Ok(self)
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        self.parser.push(chunk, &mut self.sink)
    }

    /// Output produced so far (and not yet taken).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.sink.out)
    }

    /// Ends the input; returns the last output and (tensors, tensors quantized).
    pub fn finish(mut self) -> Result<(Vec<u8>, usize, usize)> {
        self.parser.finish()?;
        Ok((self.take_output(), self.sink.tensors, self.sink.quantized))
    }
}

impl Sink for QuantSink {
    fn header(&mut self, h: &FileHeader) -> Result<()> {
        if h.dtype.is_quantized() {
            return Err(Error::new(
                ErrorCode::InvalidOptions,
                format!("the model is already {}; quantize an FP32 or FP16 model", h.dtype.name()),
            ));
        }
        write_file_header(&mut self.out, &FileHeader { version: VERSION, dtype: self.target, ..*h });
        Ok(())
    }

    fn begin_tensor(&mut self, info: &TensorInfo) -> Result<()> {
        let to = head_target(self.head, info)?.or(Some(self.target).filter(|&t| {
            !info.dtype.is_quantized() && schema::store(&info.name).is_some_and(|s| s.quantizes(t, info.shape[0]))
        }));
        let (recoder, out_info) = match to {
            Some(to) => {
                self.quantized += 1;
                let (r, out_info) = Recoder::new(info, to);
                (Some(r), out_info)
            }
            None => (None, info.clone()),
        };
        write_tensor_header(&mut self.out, &out_info);
        self.recoder = recoder;
        Ok(())
    }

    fn tensor_data(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.recoder {
            Some(r) => r.push(bytes, &mut self.out),
            None => self.out.extend_from_slice(bytes),
        }
        Ok(())
    }

    fn end_tensor(&mut self) -> Result<()> {
        self.recoder = None;
        self.tensors += 1;
        Ok(())
    }
}
