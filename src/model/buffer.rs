//! Tensor memory: one fallible, 64-byte aligned allocation per tensor, so a load that does not
//! fit fails with an error (never an abort), and ggml can use the bytes in place. It comes from
//! `alloc_tensor` (on wasm32, a space apart from small blocks, so a model loaded again fits where it was).
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

/// Equal slots of floats in tensor memory: one buffer asked for whole, written a slot at a time
/// and freed whole (the prefix cache's states and logits). In wasm, smaller blocks cut into the
/// room such buffers leave in Rust's allocator, and memory (which never shrinks) grew each time
/// the cache filled again after a model load; tensor memory gives it back in the same place.
pub struct FloatSlots {
    buf: AlignedBuf,
    slot_len: usize,
}

impl FloatSlots {
    /// `slots` unwritten slots of `slot_len` floats, or None when the allocator (and its memory
    /// limit) refuses.
    pub fn try_new(slots: usize, slot_len: usize) -> Option<FloatSlots> {
        let bytes = slots.checked_mul(slot_len)?.checked_mul(4)?;
        Some(FloatSlots { buf: AlignedBuf::try_new(bytes)?, slot_len })
    }

    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Byte offset of floats `at..at + len` of slot `slot`, checked to lie in the slot.
    fn offset(&self, slot: usize, at: usize, len: usize) -> usize {
        assert!(at + len <= self.slot_len && (slot + 1) * self.slot_len * 4 <= self.buf.len(), "outside the slot");
        4 * (slot * self.slot_len + at)
    }

    /// Copies `values` into slot `slot` from its float `at`.
    pub fn write(&mut self, slot: usize, at: usize, values: &[f32]) {
        let offset = self.offset(slot, at, values.len());
        // SAFETY: f32 has no padding; the same memory as its 4 × len bytes.
        let bytes = unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), 4 * values.len()) };
        self.buf.write(offset, bytes);
    }

    /// Floats `at..at + len` of slot `slot`, which `write` must have written.
    pub fn read(&self, slot: usize, at: usize, len: usize) -> &[f32] {
        let offset = self.offset(slot, at, len);
        // SAFETY: in bounds (checked), 4-byte aligned (the buffer is 64-byte aligned), written.
        unsafe { std::slice::from_raw_parts(self.buf.as_ptr().add(offset).cast(), len) }
    }
}

impl std::fmt::Debug for FloatSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FloatSlots({} × {})", self.buf.len() / (4 * self.slot_len.max(1)), self.slot_len)
    }
}
