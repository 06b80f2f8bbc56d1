//! Streams a model file into tensor memory: each chunk goes through the parser and each tensor's
//! data is copied once, into its own allocation (or written there by the source: `window`). The
//! memory budget is checked from the header (before any tensor memory exists) and again before
//! every tensor is allocated. Optionally the head is quantized as it arrives (`LoadOptions::head`).

use std::collections::HashMap;
use std::mem::MaybeUninit;

use super::{AlignedBuf, Model, Tensor};
use crate::error::{Error, Result};
use crate::format::{DType, FileHeader, Parser, Sink, TensorInfo, FILE_HEADER_BYTES};
use crate::quantize::{head_target, Recoder};

#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Bytes the weights plus `reserve_bytes` may take; None = no limit.
    pub limit_bytes: Option<u64>,
    /// The file's size, when the source knows it (Content-Length, File.size, stat): the weights
    /// then need at most this many bytes, and a model that cannot fit is refused after 24 bytes.
    pub file_bytes: Option<u64>,
    /// Memory the caller needs besides the weights (evaluation buffers, state).
    pub reserve_bytes: u64,
    /// Quantize a float head to this type while loading, as `quantize --head` does to a file.
    pub head: Option<DType>,
}

pub struct ModelLoader {
    parser: Parser,
    sink: Collect,
}

struct Collect {
    opts: LoadOptions,
    header: Option<FileHeader>,
    tensors: Vec<Tensor>,
    index: HashMap<String, usize>,
    allocated: u64,
    /// The tensor being read: its info as stored, its memory and the bytes written there.
    current: Option<(TensorInfo, AlignedBuf, usize)>,
    /// The head's rows being quantized on the way in (`LoadOptions::head`), and the buffer their
    /// encodings go through (reused from chunk to chunk).
    converting: Option<(Recoder, Vec<u8>)>,
}

impl ModelLoader {
    pub fn new(opts: LoadOptions) -> Self {
        ModelLoader {
            parser: Parser::new(),
            sink: Collect {
                opts,
                header: None,
                tensors: Vec::new(),
                index: HashMap::new(),
                allocated: 0,
                current: None,
                converting: None,
            },
        }
    }

    /// Feeds the next chunk. After an error the loader is spent: drop it (which frees everything).
    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        self.parser.push(chunk, &mut self.sink)
    }

    /// Where the next bytes of the current tensor's data belong, for a source that writes them
    /// there itself (one copy from the source instead of two through `push`); then `advance`.
    /// Empty outside tensor data: headers go through `push`.
    pub fn window(&mut self) -> &mut [MaybeUninit<u8>] {
        let remaining = self.parser.data_remaining();
        match self.sink.current.as_mut() {
            Some((_, buf, filled)) if remaining > 0 && self.sink.converting.is_none() => buf.spare(*filled),
            _ => &mut [],
        }
    }

    /// The first `n` bytes of `window()` were written.
    pub fn advance(&mut self, n: usize) -> Result<()> {
        let Some((_, _, filled)) = self.sink.current.as_mut().filter(|_| self.sink.converting.is_none()) else {
            return Err(Error::invalid_options("advance outside tensor data"));
        };
        if n > self.parser.data_remaining() {
            return Err(Error::invalid_options("advance past the end of the tensor's data"));
        }
        *filled += n;
        self.parser.skip_data(n, &mut self.sink)
    }

    pub fn header(&self) -> Option<&FileHeader> {
        self.sink.header.as_ref()
    }

    pub fn bytes_consumed(&self) -> u64 {
        self.parser.consumed()
    }

    /// The input has ended: checks that the file is complete and is a valid model.
    pub fn finish(self) -> Result<Model> {
        self.parser.finish()?;
        let Collect { header, tensors, index, .. } = self.sink;
        let header = header.expect("finish succeeded, so the header was read");
        Model::from_tensors(header, self.parser.consumed(), tensors, index)
    }
}

impl Collect {
    /// Weights + reserve: from the file size when known (an upper bound within a few KB), else a
    /// lower bound from the header (embedding, head and the four attention matrices per layer).
    fn estimate(&self, h: &FileHeader) -> u64 {
        let weights = match self.opts.file_bytes {
            Some(n) => n.saturating_sub(FILE_HEADER_BYTES as u64),
            None => {
                let (e, v, l) = (h.n_embed as u64, h.n_vocab as u64, h.n_layer as u64);
                let emb_elem = if h.dtype == DType::F32 { 4 } else { 2 };
                let matrix = h.dtype.row_bytes(h.n_embed as usize).map_or(0, |r| r as u64) * e;
                2 * e * v * emb_elem + 4 * l * matrix
            }
        };
        weights.max(self.allocated) + self.opts.reserve_bytes
    }

    fn check_budget(&self, needed: u64) -> Result<()> {
        match self.opts.limit_bytes {
            Some(limit) if needed > limit => Err(Error::too_large(needed, limit)),
            _ => Ok(()),
        }
    }
}

impl Sink for Collect {
    fn header(&mut self, header: &FileHeader) -> Result<()> {
        self.header = Some(*header);
        self.check_budget(self.estimate(header))?;
        // The tensors take the file's bytes but its headers, so memory grows once for all of them
        // (a head quantized on the way in takes less: then it grows as they come).
        if let (Some(n), None) = (self.opts.file_bytes, self.opts.head) {
            echo_ggml_sys::mem::reserve_tensor_space(usize::try_from(n.saturating_sub(FILE_HEADER_BYTES as u64)).unwrap_or(usize::MAX));
        }
        Ok(())
    }

    fn begin_tensor(&mut self, info: &TensorInfo) -> Result<()> {
        if self.index.contains_key(&info.name) {
            return Err(Error::invalid_model(format!("tensor '{}' appears twice", info.name)));
        }
        let header = self.header.expect("the parser reads the header first");
        let info = match head_target(self.opts.head, info)? {
            Some(to) => {
                let (recoder, info) = Recoder::new(info, to);
                self.converting = Some((recoder, Vec::new()));
                info
            }
            None => info.clone(),
        };
        let after = self.allocated + info.n_bytes as u64;
        self.check_budget(self.estimate(&header).max(after + self.opts.reserve_bytes))?;
        let buf = AlignedBuf::try_new(info.n_bytes).ok_or_else(|| Error::out_of_memory(&info.name, info.n_bytes))?;
        self.allocated = after;
        self.current = Some((info, buf, 0));
        Ok(())
    }

    fn tensor_data(&mut self, bytes: &[u8]) -> Result<()> {
        let (_, buf, filled) = self.current.as_mut().expect("data follows a tensor header");
        let bytes = match &mut self.converting {
            Some((r, recoded)) => {
                recoded.clear();
                r.push(bytes, recoded);
                &recoded[..]
            }
            None => bytes,
        };
        buf.write(*filled, bytes);
        *filled += bytes.len();
        Ok(())
    }

    fn end_tensor(&mut self) -> Result<()> {
        let (info, data, _) = self.current.take().expect("end follows a tensor header");
        self.converting = None;
        self.index.insert(info.name.clone(), self.tensors.len());
        self.tensors.push(Tensor { info, data });
        Ok(())
    }
}

/// Loads a whole model from memory (tests, the CLI).
pub fn load_bytes(bytes: &[u8], opts: LoadOptions) -> Result<Model> {
    let mut loader = ModelLoader::new(LoadOptions { file_bytes: Some(bytes.len() as u64), ..opts });
    loader.push(bytes)?;
    loader.finish()
}
