//! Echo Engine: RWKV language models on the CPU, in WebAssembly and natively, on top of ggml.
//!
//! Layers, bottom up: `format` (rwkv.cpp files: parse, write), `model` (loaded weights, architecture,
//! validation), the backends (`ggml` — the engine; `reference` — plain Rust f32, the oracle),
//! `quantize`, and the JS API in `wasm` (wasm32 only).

pub mod backend;
pub mod cli;
pub mod cognition;
pub mod convert;
pub mod error;
pub mod format;
pub mod generate;
pub mod ggml;
pub mod grammar;
pub mod memory;
pub mod model;
pub mod quantize;
pub mod reference;
pub mod rng;
pub mod sampler;
pub mod synth;
pub mod tokenizer;
#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use error::{Error, ErrorCode, Result};
