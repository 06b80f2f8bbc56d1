//! The cognitive loop on top of generation: the grammar membrane's analysis (`analysis`), the
//! context `process` takes (`context`), and `process` itself, which runs the memory, reasoning
//! and grammar membranes and integrates them into one answer (`process`).

pub mod analysis;
pub mod context;
pub mod process;

pub use context::{Context, ProcessOptions};
pub use process::{Event, Process};
