//! Text generation: a [`Session`] turns a prompt into streamed text with the sampler, stop
//! strings and stop tokens, and reuses RNN states through a prefix cache.
//!
//! - `utf8`: token bytes → complete UTF-8 text; `stop`: stop strings across token boundaries;
//! - `cache`: the prefix (state) and response caches; `conversation`: tokens + state, saved as bytes;
//! - `options`: what a generation is asked and what it returns; `session`: the loop.

pub mod cache;
mod conversation;
mod options;
mod session;
pub mod stop;
pub mod utf8;

pub use options::{Completion, GenerateOptions, Stats, Step, StopReason};
pub use session::Session;
