//! Echo Engine: RWKV language models on the CPU, in WebAssembly and natively, on top of ggml.
//!
//! Layers, bottom up: `format` (rwkv.cpp files: parse, write), `model` (loaded weights, architecture,
//! validation), the backends (`ggml` — the engine; `reference` — plain Rust f32, the oracle),
//! `quantize`, and the JS API in `wasm` (wasm32 only).

pub mod error;
pub mod format;
pub mod model;

pub use error::{Error, ErrorCode, Result};
pub mod quantize;
pub mod synth;
pub mod backend;
pub mod cli;
#[cfg(target_arch = "wasm32")]
pub mod wasm;
