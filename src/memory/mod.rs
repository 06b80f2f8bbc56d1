//! The memory membrane's substance: text embeddings from the loaded model (`embed`) and a store
//! of memories recalled by embedding similarity and BM25 together (`store`, `lexical`).

pub mod embed;
pub mod lexical;
pub mod store;

pub use embed::{Embedder, Pooling};
pub use store::{Hit, Memory, MemoryStore};
