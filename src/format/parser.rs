//! A push parser: feed it the file as byte chunks of any size (one byte at a time works); it calls
//! a `Sink` with the header, each tensor's header and its data, so the data can be copied once,
//! straight into its final place. It never holds more than a tensor header in its own buffer.

use super::*;
use crate::error::{Error, ErrorCode, Result};

pub trait Sink {
    fn header(&mut self, header: &FileHeader) -> Result<()>;
    fn begin_tensor(&mut self, info: &TensorInfo) -> Result<()>;
    /// A piece of the current tensor's data; pieces arrive in order and add up to `info.n_bytes`.
    fn tensor_data(&mut self, bytes: &[u8]) -> Result<()>;
    fn end_tensor(&mut self) -> Result<()>;
}

enum State {
    FileHeader,
    /// Waiting for `dim_count, key_length, data_type`.
    TensorPrefix,
    /// Waiting for the shape and the name.
    TensorRest { dims: usize, key_len: usize, dtype: DType },
    Data { remaining: usize },
    /// An earlier error; the parser accepts nothing more.
    Failed,
}

pub struct Parser {
    state: State,
    pending: Vec<u8>,
    header: Option<FileHeader>,
    consumed: u64,
    tensors: usize,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    pub fn new() -> Self {
        Parser { state: State::FileHeader, pending: Vec::new(), header: None, consumed: 0, tensors: 0 }
    }

    pub fn header(&self) -> Option<&FileHeader> {
        self.header.as_ref()
    }

    /// Bytes accepted so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    pub fn push(&mut self, chunk: &[u8], sink: &mut dyn Sink) -> Result<()> {
        let result = self.push_inner(chunk, sink);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    /// The input has ended: it must end at a tensor boundary, after at least one tensor.
    pub fn finish(&self) -> Result<()> {
        match &self.state {
            State::TensorPrefix if self.pending.is_empty() && self.tensors > 0 => Ok(()),
            State::Failed => Err(Error::invalid_model("the model could not be parsed (see the earlier error)")),
            State::FileHeader => Err(Error::invalid_model(format!(
                "the file ends after {} bytes, inside the {FILE_HEADER_BYTES}-byte file header",
                self.consumed
            ))),
            State::TensorPrefix if self.tensors == 0 && self.pending.is_empty() => {
                Err(Error::invalid_model("the file has a header but no tensors"))
            }
            State::Data { remaining } => Err(Error::invalid_model(format!(
                "the file is truncated: it ends {remaining} bytes before the end of tensor #{}",
                self.tensors + 1
            ))),
            _ => Err(Error::invalid_model(format!(
                "the file is truncated inside the header of tensor #{}",
                self.tensors + 1
            ))),
        }
    }

    fn push_inner(&mut self, mut chunk: &[u8], sink: &mut dyn Sink) -> Result<()> {
        while !chunk.is_empty() {
            match self.state {
                State::Failed => return Err(Error::invalid_model("the parser already failed; start a new load")),
                State::Data { remaining } => {
                    let n = remaining.min(chunk.len());
                    sink.tensor_data(&chunk[..n])?;
                    chunk = &chunk[n..];
                    self.data_delivered(n, sink)?;
                }
                _ => {
                    let need = self.needed() - self.pending.len();
                    let n = need.min(chunk.len());
                    self.pending.extend_from_slice(&chunk[..n]);
                    chunk = &chunk[n..];
                    self.consumed += n as u64;
                    if n == need {
                        self.advance(sink)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Bytes of the current tensor's data still to come; 0 outside tensor data.
    pub fn data_remaining(&self) -> usize {
        match self.state {
            State::Data { remaining } => remaining,
            _ => 0,
        }
    }

    /// `n` bytes of the current tensor's data reached the sink some other way (written in place
    /// by the caller): counts them as consumed, like `push` would.
    pub fn skip_data(&mut self, n: usize, sink: &mut dyn Sink) -> Result<()> {
        assert!(n <= self.data_remaining(), "skip_data past the end of the tensor's data");
        let result = self.data_delivered(n, sink);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    fn data_delivered(&mut self, n: usize, sink: &mut dyn Sink) -> Result<()> {
        let State::Data { remaining } = self.state else { unreachable!("only called in tensor data") };
        self.consumed += n as u64;
        if n == remaining {
            sink.end_tensor()?;
            self.tensors += 1;
            self.state = State::TensorPrefix;
        } else {
            self.state = State::Data { remaining: remaining - n };
        }
        Ok(())
    }

    /// Bytes the current header state needs in `pending`.
    fn needed(&self) -> usize {
        match self.state {
            State::FileHeader => FILE_HEADER_BYTES,
            State::TensorPrefix => 12,
            State::TensorRest { dims, key_len, .. } => 4 * dims + key_len,
            State::Data { .. } | State::Failed => 0,
        }
    }

    /// `pending` holds a complete header piece: parse it and move on.
    fn advance(&mut self, sink: &mut dyn Sink) -> Result<()> {
        let words: Vec<i32> =
            self.pending.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        match self.state {
            State::FileHeader => {
                let header = parse_file_header(&words)?;
                sink.header(&header)?;
                self.header = Some(header);
                self.state = State::TensorPrefix;
            }
            State::TensorPrefix => {
                let (dims, key_len, code) = (words[0], words[1], words[2]);
                if dims < 1 || dims as usize > MAX_DIMS {
                    return Err(self.bad_tensor(format!("it has {dims} dimensions (1 to {MAX_DIMS} allowed)")));
                }
                if key_len < 1 || key_len as usize > MAX_KEY_LEN {
                    return Err(self.bad_tensor(format!("its name is {key_len} bytes long (1 to {MAX_KEY_LEN})")));
                }
                let dtype = DType::from_code(code).map_err(|e| Error {
                    message: format!("tensor #{}: {}", self.tensors + 1, e.message),
                    ..e
                })?;
                let version = self.header.as_ref().map_or(VERSION, |h| h.version);
                if dtype.is_quantized() && version == VERSION_LEGACY {
                    return Err(legacy_quantized());
                }
                self.state = State::TensorRest { dims: dims as usize, key_len: key_len as usize, dtype };
            }
            State::TensorRest { dims, dtype, .. } => {
                let shape_words = &words[..dims];
                let name = std::str::from_utf8(&self.pending[4 * dims..])
                    .map_err(|_| self.bad_tensor("its name is not UTF-8".into()))?
                    .to_string();
                let info = tensor_info(name, dtype, shape_words)?;
                sink.begin_tensor(&info)?;
                self.state = State::Data { remaining: info.n_bytes };
                if info.n_bytes == 0 {
                    sink.end_tensor()?;
                    self.tensors += 1;
                    self.state = State::TensorPrefix;
                }
            }
            State::Data { .. } | State::Failed => unreachable!("advance is only called in header states"),
        }
        self.pending.clear();
        Ok(())
    }

    fn bad_tensor(&self, what: String) -> Error {
        Error::invalid_model(format!("tensor #{} is malformed: {what}", self.tensors + 1))
    }
}

fn legacy_quantized() -> Error {
    Error::new(
        ErrorCode::UnsupportedVersion,
        "this is a version-100 quantized file, whose block layout is obsolete; quantize the FP32 or FP16 \
         model again with a current rwkv.cpp or with `echo-engine quantize`",
    )
}

fn parse_file_header(w: &[i32]) -> Result<FileHeader> {
    if w[0] != MAGIC {
        return Err(Error::invalid_model(format!(
            "not an rwkv.cpp model file: magic is {:#010x}, expected {MAGIC:#010x}",
            w[0] as u32
        )));
    }
    let version = w[1];
    if version != VERSION && version != VERSION_LEGACY {
        return Err(Error::new(
            ErrorCode::UnsupportedVersion,
            format!("unknown rwkv.cpp file version {version}; this engine reads versions 100 and 101"),
        ));
    }
    let dim = |v: i32, what: &str, max: u32| -> Result<u32> {
        if v < 1 || v as u32 > max {
            Err(Error::invalid_model(format!("the header's {what} is {v}, outside 1..={max}")))
        } else {
            Ok(v as u32)
        }
    };
    let header = FileHeader {
        version,
        n_vocab: dim(w[2], "n_vocab", MAX_N_VOCAB)?,
        n_embed: dim(w[3], "n_embed", MAX_N_EMBED)?,
        n_layer: dim(w[4], "n_layer", MAX_N_LAYER)?,
        dtype: DType::from_code(w[5])?,
    };
    if header.dtype.is_quantized() && version == VERSION_LEGACY {
        return Err(legacy_quantized());
    }
    Ok(header)
}

fn tensor_info(name: String, dtype: DType, shape_words: &[i32]) -> Result<TensorInfo> {
    let bad = |what: String| Error::invalid_model(format!("tensor '{name}': {what}"));
    let mut shape = Vec::with_capacity(shape_words.len());
    for &d in shape_words {
        if d < 1 {
            return Err(bad(format!("dimension {d} is not positive")));
        }
        shape.push(d as usize);
    }
    if dtype.is_quantized() && shape.len() != 2 {
        return Err(bad(format!("{} data needs a 2-D tensor, found {} dimensions", dtype.name(), shape.len())));
    }
    let row = dtype
        .row_bytes(shape[0])
        .ok_or_else(|| bad(format!("row length {} is not a multiple of {} for {}", shape[0], QK, dtype.name())))?;
    let n_bytes = shape[1..]
        .iter()
        .try_fold(row, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= isize::MAX as usize)
        .ok_or_else(|| bad(format!("shape {shape:?} is too large to address")))?;
    Ok(TensorInfo { name, dtype, shape, n_bytes })
}
