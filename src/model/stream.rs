//! A model arriving in chunks (a download, a file stream). The first 24 bytes — the file header —
//! are held back until the memory needed besides the weights can be worked out from them (the
//! caller's `reserve`); only then is the loader created with the full budget, so a model that
//! does not fit is refused before a single tensor is allocated. From then on every byte goes
//! straight from the chunk into its tensor: the file is never held whole, in JS or in wasm.

use std::mem::MaybeUninit;

use super::{LoadOptions, Model, ModelLoader};
use crate::error::{Error, Result};
use crate::format::{DType, FileHeader, Parser, Sink, TensorInfo, FILE_HEADER_BYTES};

pub struct StreamingLoad {
    limit_bytes: u64,
    total_bytes: Option<u64>,
    quantize_head: Option<DType>,
    head: Vec<u8>,
    loader: Option<ModelLoader>,
}

impl StreamingLoad {
    pub fn new(limit_bytes: u64, total_bytes: Option<u64>) -> StreamingLoad {
        StreamingLoad { limit_bytes, total_bytes, quantize_head: None, head: Vec::with_capacity(FILE_HEADER_BYTES), loader: None }
    }

    /// Quantizes a float head to `to` as it arrives (`LoadOptions::head`).
    pub fn with_head(self, to: Option<DType>) -> StreamingLoad {
        StreamingLoad { quantize_head: to, ..self }
    }

    /// Feeds the next chunk. `reserve` runs once, when the header is complete, and returns the
    /// bytes needed besides the weights (it may allocate; what it allocates counts as used).
    pub fn push(&mut self, mut chunk: &[u8], reserve: impl FnOnce(&FileHeader) -> Result<u64>) -> Result<()> {
        if self.loader.is_none() {
            let take = (FILE_HEADER_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.head.len() < FILE_HEADER_BYTES {
                return Ok(());
            }
            let header = read_header(&self.head)?;
            let reserve_bytes = reserve(&header)?;
            let opts = LoadOptions {
                limit_bytes: Some(self.limit_bytes),
                file_bytes: self.total_bytes,
                reserve_bytes,
                head: self.quantize_head,
            };
            let mut loader = ModelLoader::new(opts);
            loader.push(&self.head)?;
            self.loader = Some(loader);
        }
        match &mut self.loader {
            Some(loader) if !chunk.is_empty() => loader.push(chunk),
            _ => Ok(()),
        }
    }

    /// See `ModelLoader::window`: empty until the header has been pushed.
    pub fn window(&mut self) -> &mut [MaybeUninit<u8>] {
        match &mut self.loader {
            Some(loader) => loader.window(),
            None => &mut [],
        }
    }

    /// See `ModelLoader::advance`.
    pub fn advance(&mut self, n: usize) -> Result<()> {
        match &mut self.loader {
            Some(loader) => loader.advance(n),
            None => Err(Error::invalid_options("advance before the file header")),
        }
    }

    /// The source has ended: the file must be a complete, valid model.
    pub fn finish(self) -> Result<Model> {
        match self.loader {
            Some(loader) => loader.finish(),
            None => Err(Error::invalid_model(format!(
                "the source ended after {} bytes, inside the {FILE_HEADER_BYTES}-byte file header: this is not an rwkv.cpp model file",
                self.head.len()
            ))),
        }
    }
}

/// Parses the file header alone (magic, version, sizes, data type — all validated by the parser).
fn read_header(head: &[u8]) -> Result<FileHeader> {
    struct HeaderOnly(Option<FileHeader>);
    impl Sink for HeaderOnly {
        fn header(&mut self, header: &FileHeader) -> Result<()> {
            self.0 = Some(*header);
            Ok(())
        }
        // Never called: the parser is given the file header's bytes only.
        fn begin_tensor(&mut self, _: &TensorInfo) -> Result<()> {
            Ok(())
        }
        fn tensor_data(&mut self, _: &[u8]) -> Result<()> {
            Ok(())
        }
        fn end_tensor(&mut self) -> Result<()> {
            Ok(())
        }
    }
    let mut sink = HeaderOnly(None);
    Parser::new().push(head, &mut sink)?;
    sink.0.ok_or_else(|| Error::invalid_model("the file header could not be read"))
}
