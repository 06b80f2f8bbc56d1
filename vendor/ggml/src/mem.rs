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
//! A model's tensors have an allocation of their own ([`alloc_tensor`]): on wasm32 they live
//! apart from everything else, with every other block of [`BIG_BLOCK`] bytes or more, so a model
//! loaded again finds the space it left.
//!
//! This crate installs the `#[global_allocator]`; the final program must not define another.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::alloc::{GlobalAlloc, Layout, System};

static USED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// usize::MAX means "no limit".
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
static LARGE: AtomicUsize = AtomicUsize::new(0);

/// The size from which [`large_blocks`] counts a block.
pub const LARGE_BLOCK: usize = 64 << 10;

/// How many blocks of at least [`LARGE_BLOCK`] bytes have been asked for (reallocations growing
/// to that size included, tensors not). Such blocks, freed and asked for again while small ones
/// come and go, fragment wasm memory, so a steady path should ask for none: tests count them.
pub fn large_blocks() -> usize {
    LARGE.load(Relaxed)
}

fn note_size(n: usize) {
    if n >= LARGE_BLOCK {
        LARGE.fetch_add(1, Relaxed);
    }
}

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

/// On wasm32, blocks of this many bytes or more go to the tensor space (`tensor_space` below)
/// rather than to Rust's allocator: a load's transient buffers (a 2 MiB vector of the tokenizer
/// file's vocabulary, say) and the grammar engine's tables, freed and asked for again on every
/// model load, found the room they left there cut up by small blocks, and memory grew.
pub const BIG_BLOCK: usize = 1 << 20;

/// The alignment the tensor space gives.
const TENSOR_ALIGN: usize = 64;

/// Whether a block of `layout` lives in the tensor space ([`alloc_tensor`]'s blocks aside).
fn in_tensor_space(layout: &Layout) -> bool {
    cfg!(target_arch = "wasm32") && layout.size() >= BIG_BLOCK && layout.align() <= TENSOR_ALIGN
}

/// The uncounted allocation: the tensor space for big blocks on wasm32, else `System`.
unsafe fn space_alloc(layout: Layout, zeroed: bool) -> *mut u8 {
    #[cfg(target_arch = "wasm32")]
    if in_tensor_space(&layout) {
        let p = tensor_space::alloc(layout.size());
        if zeroed && !p.is_null() {
            p.write_bytes(0, layout.size());
        }
        return p;
    }
    if zeroed {
        System.alloc_zeroed(layout)
    } else {
        System.alloc(layout)
    }
}

unsafe fn space_dealloc(ptr: *mut u8, layout: Layout) {
    #[cfg(target_arch = "wasm32")]
    if in_tensor_space(&layout) {
        return tensor_space::dealloc(ptr, layout.size());
    }
    System.dealloc(ptr, layout)
}

unsafe fn space_realloc(ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
    let new = Layout::from_size_align_unchecked(new_size, layout.align());
    if !in_tensor_space(&layout) && !in_tensor_space(&new) {
        return System.realloc(ptr, layout, new_size);
    }
    // Into, out of or within the tensor space: a move.
    let p = space_alloc(new, false);
    if !p.is_null() {
        core::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size));
        space_dealloc(ptr, layout);
    }
    p
}

/// `alloc()` for `size` bytes, counted: null without calling it when the limit refuses.
unsafe fn counted(size: usize, alloc: impl FnOnce() -> *mut u8) -> *mut u8 {
    if !reserve(size) {
        return core::ptr::null_mut();
    }
    let p = alloc();
    if p.is_null() {
        release(size);
    }
    p
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_size(layout.size());
        counted(layout.size(), || space_alloc(layout, false))
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_size(layout.size());
        counted(layout.size(), || space_alloc(layout, true))
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        space_dealloc(ptr, layout);
        release(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old {
            note_size(new_size);
            // Count the growth first so a failed limit check leaves the block untouched.
            if !reserve(new_size - old) {
                return core::ptr::null_mut();
            }
            let p = space_realloc(ptr, layout, new_size);
            if p.is_null() {
                release(new_size - old);
            }
            p
        } else {
            let p = space_realloc(ptr, layout, new_size);
            if !p.is_null() {
                release(old - new_size);
            }
            p
        }
    }
}

/// Memory for a model's tensor (null when refused), counted and capped like any allocation.
/// On wasm32 it comes from the tensor space (`tensor_space` below) whatever its size, elsewhere
/// from the global allocator. Free it with [`dealloc_tensor`] and the same layout.
///
/// # Safety
/// `layout` has a non-zero size.
pub unsafe fn alloc_tensor(layout: Layout) -> *mut u8 {
    #[cfg(target_arch = "wasm32")]
    if layout.align() <= TENSOR_ALIGN {
        return counted(layout.size(), || tensor_space::alloc(layout.size()));
    }
    std::alloc::alloc(layout)
}

/// Frees a block of [`alloc_tensor`].
///
/// # Safety
/// `ptr` came from `alloc_tensor(layout)` and is not used after.
pub unsafe fn dealloc_tensor(ptr: *mut u8, layout: Layout) {
    #[cfg(target_arch = "wasm32")]
    if layout.align() <= TENSOR_ALIGN {
        tensor_space::dealloc(ptr, layout.size());
        release(layout.size());
        return;
    }
    std::alloc::dealloc(ptr, layout)
}

/// Grows memory once so that `bytes` of tensors fit in the tensor space's free ranges, before a
/// load asks for them one by one: in V8 every growth of unshared memory replaces the `ArrayBuffer`
/// and can start a garbage collection, and a 169M model's 200 growths cost 130 ms in Node. Not
/// counted (nothing is allocated); a failed growth is left to the allocations to report.
pub fn reserve_tensor_space(bytes: usize) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: grows memory and adds the new range to the free list, under the lock.
    unsafe {
        tensor_space::reserve(bytes)
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = bytes;
}

/// Bytes free in the tensor space's ranges (wasm32; elsewhere tensors come from the allocator).
#[cfg(target_arch = "wasm32")]
pub fn free_tensor_space() -> usize {
    tensor_space::free_bytes()
}

/// Tensors on wasm32, in ranges of linear memory nothing else enters. Wasm memory never
/// shrinks, and Rust's wasm allocator (dlmalloc) serves a small request from any free chunk when
/// its bins are empty: the space an unloaded model left was cut up by the next load's small
/// allocations (its tokenizer, made first), and the model's largest tensor no longer fit — memory
/// grew by that tensor on reload (73.7 MiB for a 169M model's head). Here only tensors and blocks
/// of [`BIG_BLOCK`] bytes or more come and go.
///
/// A block is the start of the lowest free range that holds it (first fit by address). So the same
/// sizes asked for again in the same order, once all of them were freed, land exactly where they
/// were, and memory does not grow: each lower range was too small then and is the same now (blocks
/// that came and went in between leave the same free ranges). Best fit has no such guarantee (a
/// test shows it moving).
#[cfg(target_arch = "wasm32")]
mod tensor_space {
    use core::arch::wasm32::{memory_grow, memory_size};
    use core::cell::UnsafeCell;
    use core::ptr::null_mut;
    use core::sync::atomic::{AtomicBool, Ordering::{Acquire, Relaxed, Release}};

    /// Sizes are rounded to it and blocks start on it (wasm pages, 64 KiB, are multiples).
    const ALIGN: usize = super::TENSOR_ALIGN;
    const PAGE: usize = 65536;

    /// A free range, written at its own start. The list is sorted by address.
    struct Free {
        len: usize,
        next: *mut Free,
    }

    struct List(UnsafeCell<*mut Free>);
    // SAFETY: only touched under LOCK.
    unsafe impl Sync for List {}
    static HEAD: List = List(UnsafeCell::new(null_mut()));
    /// A spin lock (pool threads could allocate too), held for a walk of a short list.
    static LOCK: AtomicBool = AtomicBool::new(false);

    struct Locked;
    fn lock() -> Locked {
        while LOCK.compare_exchange_weak(false, true, Acquire, Relaxed).is_err() {
            core::hint::spin_loop();
        }
        Locked
    }
    impl Drop for Locked {
        fn drop(&mut self) {
            LOCK.store(false, Release);
        }
    }

    fn round(n: usize) -> usize {
        // n ≤ isize::MAX (a Layout's size): no overflow
        (n + ALIGN - 1) & !(ALIGN - 1)
    }

    pub unsafe fn alloc(size: usize) -> *mut u8 {
        let n = round(size);
        let _locked = lock();
        // At most two growths: if another grow came between, the second is big enough alone.
        for _ in 0..3 {
            if let Some(p) = take_first_fit(n) {
                return p;
            }
            // Grow memory, counting the free range at its end when there is one.
            let end = memory_size(0).wrapping_mul(PAGE); // 0 at 4 GiB: then nothing counts
            let tail = last_free().filter(|&(start, len)| start + len == end).map_or(0, |(_, len)| len);
            let pages = (n - tail).div_ceil(PAGE);
            let prev = memory_grow(0, pages);
            if prev == usize::MAX {
                return null_mut();
            }
            insert(prev * PAGE, pages * PAGE);
        }
        null_mut()
    }

    /// See [`super::reserve_tensor_space`]: the growth is what the free ranges lack in all (a
    /// load whose tensors fit in them, one by one, would not have grown memory either).
    pub unsafe fn reserve(bytes: usize) {
        let _locked = lock();
        let free = free_bytes_locked();
        if bytes > free {
            let pages = (bytes - free).div_ceil(PAGE);
            let prev = memory_grow(0, pages);
            if prev != usize::MAX {
                insert(prev * PAGE, pages * PAGE);
            }
        }
    }

    pub fn free_bytes() -> usize {
        let _locked = lock();
        // SAFETY: the list is only read, under the lock.
        unsafe { free_bytes_locked() }
    }

    unsafe fn free_bytes_locked() -> usize {
        let mut free = 0;
        let mut f = *HEAD.0.get();
        while !f.is_null() {
            free += (*f).len;
            f = (*f).next;
        }
        free
    }

    pub unsafe fn dealloc(p: *mut u8, size: usize) {
        let _locked = lock();
        insert(p as usize, round(size));
    }

    /// The lowest free range of at least `n` bytes gives its first `n` bytes.
    unsafe fn take_first_fit(n: usize) -> Option<*mut u8> {
        let mut link: *mut *mut Free = HEAD.0.get();
        while !(*link).is_null() && (**link).len < n {
            link = &mut (**link).next;
        }
        let f = *link;
        if f.is_null() {
            return None;
        }
        if (*f).len == n {
            *link = (*f).next;
        } else {
            let rest = (f as *mut u8).add(n) as *mut Free;
            rest.write(Free { len: (*f).len - n, next: (*f).next });
            *link = rest;
        }
        Some(f as *mut u8)
    }

    unsafe fn last_free() -> Option<(usize, usize)> {
        let mut f = *HEAD.0.get();
        let mut last = None;
        while !f.is_null() {
            last = Some((f as usize, (*f).len));
            f = (*f).next;
        }
        last
    }

    /// Adds `[start, start + len)` to the list, merged with the free ranges it touches.
    unsafe fn insert(start: usize, len: usize) {
        let mut prev: *mut Free = null_mut();
        let mut next = *HEAD.0.get();
        while !next.is_null() && (next as usize) < start {
            prev = next;
            next = (*next).next;
        }
        let node = if !prev.is_null() && prev as usize + (*prev).len == start {
            (*prev).len += len;
            prev
        } else {
            let node = start as *mut Free;
            node.write(Free { len, next });
            if prev.is_null() {
                *HEAD.0.get() = node;
            } else {
                (*prev).next = node;
            }
            node
        };
        if !next.is_null() && node as usize + (*node).len == next as usize {
            (*node).len += (*next).len;
            (*node).next = (*next).next;
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
