//! The memory membrane's substance: text embeddings from the loaded model (`embed`), a store of
//! memories recalled by embedding similarity and BM25 together (`store`, `lexical`), and the
//! engine's named stores with the memory file that holds them (`stores`).

pub mod embed;
pub mod lexical;
pub mod store;
pub mod stores;

pub use embed::{Embedder, Pooling};
pub use store::{Hit, Memory, MemoryStore};
pub use stores::{Imported, Stores, DEFAULT_STORE};
