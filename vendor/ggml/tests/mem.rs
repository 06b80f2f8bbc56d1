//! The memory limit changes global state, so natively it gets its own test process.
#![cfg(not(target_arch = "wasm32"))]

mod common;

#[test]
fn memory_limit() {
    common::memory_limit();
}
