//! Quantization of FP32/FP16 models to Q4_0, Q4_1, Q5_0, Q5_1 or Q8_0, streaming: the input file
//! goes in as chunks, the output comes out as chunks, and only one row is ever buffered. Which
//! tensors are quantized follows rwkv.cpp ([`schema::Store`]); the block encoding is ggml's
//! own, so files are bit-identical to what rwkv.cpp would write. Optionally the head is quantized
//! too ([`Quantizer::with_head`]), which rwkv.cpp does not do: in wasm the FP16 head is about half
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
pub(crate) fn decode_float_row(dtype: DType, bytes: &[u8], out: &mut Vec<f32>) {
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

struct QuantSink {
    target: DType,
    /// The head's type when it is quantized too.
    head: Option<DType>,
    out: Vec<u8>,
    /// The tensor being copied: its input type, the type it is quantized to (if it is), and the
    /// pending row bytes.
    current: Option<(DType, Option<DType>, usize)>,
    row: Vec<u8>,
    floats: Vec<f32>,
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
                current: None,
                row: Vec::new(),
                floats: Vec::new(),
                tensors: 0,
                quantized: 0,
            },
        })
    }

    /// Quantizes the head (`head.weight`) to `head` as well; its rows must be whole blocks.
    pub fn with_head(mut self, head: DType) -> Result<Quantizer> {
        if !head.is_quantized() {
            return Err(Error::invalid_options(format!(
                "cannot quantize the head to {}; use Q4_0, Q4_1, Q5_0, Q5_1 or Q8_0",
                head.name()
            )));
        }
        self.sink.head = Some(head);
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
        let to = match self.head {
            Some(head) if info.name == "head.weight" && !info.dtype.is_quantized() => {
                if info.shape[0] % head.block_len() != 0 {
                    return Err(Error::invalid_options(format!(
                        "cannot quantize the head to {}: its rows of {} are not whole blocks of {}",
                        head.name(),
                        info.shape[0],
                        head.block_len()
                    )));
                }
                Some(head)
            }
            _ => Some(self.target).filter(|&t| {
                !info.dtype.is_quantized() && schema::store(&info.name).is_some_and(|s| s.quantizes(t, info.shape[0]))
            }),
        };
        let mut out_info = info.clone();
        if let Some(to) = to {
            out_info.dtype = to;
            out_info.n_bytes = to.row_bytes(info.shape[0]).expect("checked") * info.shape[1];
            self.quantized += 1;
        }
        write_tensor_header(&mut self.out, &out_info);
        let row_bytes = info.dtype.row_bytes(info.shape[0]).expect("the parser checked it");
        self.current = Some((info.dtype, to, row_bytes));
        Ok(())
    }

    fn tensor_data(&mut self, mut bytes: &[u8]) -> Result<()> {
        let (dtype, to, row_bytes) = self.current.expect("data follows a header");
        let Some(to) = to else {
            self.out.extend_from_slice(bytes);
            return Ok(());
        };
        while !bytes.is_empty() {
            let n = (row_bytes - self.row.len()).min(bytes.len());
            self.row.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.row.len() == row_bytes {
                decode_float_row(dtype, &self.row, &mut self.floats);
                encode_row(to, &self.floats, &mut self.out);
                self.row.clear();
            }
        }
        Ok(())
    }

    fn end_tensor(&mut self) -> Result<()> {
        self.current = None;
        self.tensors += 1;
        Ok(())
    }
}
