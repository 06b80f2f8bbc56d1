//! Memory accounting: the program's global allocator counts live bytes and can refuse to
//! go over a hard limit.
//!
//! Every Rust allocation goes through it; on wasm32 so does every C allocation (ggml's
//! malloc & co. are implemented on Rust's allocator in `wasm.rs`). On native targets ggml's
//! own small mallocs use the system libc and are not counted, but the big buffers
//! (`Context` pools) are allocated from Rust and are.
//!
//! An allocation that would take the count over the limit returns null: `Vec::try_reserve`
//! reports an error, C `malloc` returns NULL, and an infallible Rust allocation aborts via
//! `handle_alloc_error`. So large allocations must be fallible and checked.
//!
//! This crate installs the `#[global_allocator]`; the final program must not define another.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::alloc::{GlobalAlloc, Layout, System};

static USED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// usize::MAX means "no limit".
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// `System` plus byte counters and a limit.
pub struct CountingAlloc;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Adds `n` to the count unless that would exceed the limit.
fn reserve(n: usize) -> bool {
    let limit = LIMIT.load(Relaxed);
    let mut cur = USED.load(Relaxed);
    loop {
        let new = match cur.checked_add(n) {
            Some(new) if new <= limit => new,
            _ => return false,
        };
        match USED.compare_exchange_weak(cur, new, Relaxed, Relaxed) {
            Ok(_) => {
                PEAK.fetch_max(new, Relaxed);
                return true;
            }
            Err(actual) => cur = actual,
        }
    }
}

fn release(n: usize) {
    USED.fetch_sub(n, Relaxed);
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !reserve(layout.size()) {
            return core::ptr::null_mut();
        }
        let p = System.alloc(layout);
        if p.is_null() {
            release(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !reserve(layout.size()) {
            return core::ptr::null_mut();
        }
        let p = System.alloc_zeroed(layout);
        if p.is_null() {
            release(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        release(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old {
            // Count the growth first so a failed limit check leaves the block untouched.
            if !reserve(new_size - old) {
                return core::ptr::null_mut();
            }
            let p = System.realloc(ptr, layout, new_size);
            if p.is_null() {
                release(new_size - old);
            }
            p
        } else {
            let p = System.realloc(ptr, layout, new_size);
            if !p.is_null() {
                release(old - new_size);
            }
            p
        }
    }
}

/// Bytes currently allocated through the global allocator.
pub fn used_bytes() -> usize {
    USED.load(Relaxed)
}

/// Highest `used_bytes()` since start or the last `reset_peak()`.
pub fn peak_bytes() -> usize {
    PEAK.load(Relaxed)
}

/// Restarts peak tracking from the current usage.
pub fn reset_peak() {
    PEAK.store(USED.load(Relaxed), Relaxed);
}

/// Sets (or with `None` removes) the hard cap on `used_bytes()`. A limit below the current
/// usage is allowed: it only makes further allocations fail until usage drops.
pub fn set_limit(bytes: Option<usize>) {
    LIMIT.store(bytes.unwrap_or(usize::MAX), Relaxed);
}

/// The current cap, if any.
pub fn limit() -> Option<usize> {
    match LIMIT.load(Relaxed) {
        usize::MAX => None,
        n => Some(n),
    }
}

/// Size of the wasm linear memory (it only grows; includes allocator slack and the stack).
#[cfg(target_arch = "wasm32")]
pub fn wasm_memory_bytes() -> usize {
    core::arch::wasm32::memory_size(0) * 65536
}
