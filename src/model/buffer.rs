//! Tensor memory: one fallible, 64-byte aligned allocation per tensor, so a load that does not
//! fit fails with an error (never an abort), and ggml can use the bytes in place. It comes from
//! `alloc_tensor` (on wasm32, a space only tensors use, so a model loaded again fits where it was).
//!
//! The memory starts uninitialised (zeroing it first cost a fifth of a wasm load): the loader
//! writes every byte through `write`/`spare` before the buffer becomes a `Tensor`'s data, and only
//! then is it read (`as_slice`).

use echo_ggml_sys::mem::{alloc_tensor, dealloc_tensor};
use std::alloc::Layout;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

const ALIGN: usize = 64;

pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// The buffer is plain bytes owned by this value.
unsafe impl Send for AlignedBuf {}
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// An unwritten buffer, or None when the allocator (and its memory limit) refuses.
    pub fn try_new(len: usize) -> Option<AlignedBuf> {
        if len == 0 {
            return Some(AlignedBuf { ptr: NonNull::<u64>::dangling().cast(), len: 0 });
        }
        let layout = Layout::from_size_align(len, ALIGN).ok()?;
        // SAFETY: layout has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc_tensor(layout) })?;
        Some(AlignedBuf { ptr, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `bytes` in at `at`.
    pub fn write(&mut self, at: usize, bytes: &[u8]) {
        assert!(at.checked_add(bytes.len()).is_some_and(|end| end <= self.len), "write past the end");
        // SAFETY: in bounds (checked), and `bytes` cannot alias memory owned by self.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.as_ptr().add(at), bytes.len()) }
    }

    /// The bytes from `at` to the end, to be written in place.
    pub fn spare(&mut self, at: usize) -> &mut [MaybeUninit<u8>] {
        assert!(at <= self.len, "spare past the end");
        // SAFETY: in bounds; MaybeUninit makes no claim about the contents.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(at).cast(), self.len - at) }
    }

    /// The bytes; all of them must have been written.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for len bytes (or dangling with len 0) and owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: allocated in try_new with this exact layout.
            unsafe { dealloc_tensor(self.ptr.as_ptr(), Layout::from_size_align_unchecked(self.len, ALIGN)) }
        }
    }
}
