//! Our build of ggml (CPU backend, from the pinned `llama-cpp-sys-2` 0.1.161 sources) for the
//! host and for `wasm32-unknown-unknown` with SIMD128.
//!
//! - [`ffi`] items (re-exported at the root): raw `extern "C"` declarations and struct mirrors.
//! - [`mem`]: the counting global allocator with a hard limit.
//! - [`wasm`] (wasm32 only): WASI imports, C allocator and constructor glue.
//! - [`threads`] (threaded wasm build only): the pool of JS workers behind `pthread_create`.
//! - [`Context`]: a ggml context whose memory pool is allocated (fallibly) from Rust.
//!
//! Call [`init`] once at start-up (on wasm32 before any other ggml use).

pub mod ffi;
pub mod mem;
#[cfg(target_arch = "wasm32")]
pub mod wasm;
#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
pub mod threads;

pub use ffi::*;

use core::ptr::NonNull;
use std::alloc::Layout;
use std::sync::Once;

/// Start-up: on wasm32 runs the C/C++ constructors ([`wasm::init`]); on every target
/// initialises ggml-cpu's tables (`ggml_cpu_init`). Idempotent; [`Context::new`] calls it.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(target_arch = "wasm32")]
        wasm::init();
        unsafe {
            ggml_log_set(Some(log), core::ptr::null_mut());
            ggml_cpu_init();
        }
    });
}

/// ggml's log: warnings and errors go to stderr (the console in wasm); its debug and info
/// messages (e.g. the graph allocator's on every reallocation) are dropped.
unsafe extern "C" fn log(level: ggml_log_level, text: *const core::ffi::c_char, _: *mut core::ffi::c_void) {
    if !(level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR) || text.is_null() {
        return;
    }
    let text = core::ffi::CStr::from_ptr(text).to_string_lossy();
    #[cfg(target_arch = "wasm32")]
    wasm::console_error(text.trim_end());
    #[cfg(not(target_arch = "wasm32"))]
    eprint!("{text}");
}

/// A memory allocation that could not be made (over the `mem` limit or out of memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocError {
    pub bytes: usize,
}

impl core::fmt::Display for AllocError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "could not allocate {} bytes", self.bytes)
    }
}

impl std::error::Error for AllocError {}

/// Alignment of the pool: ggml aligns its own pools to 64 bytes (cache line, SIMD loads).
const POOL_ALIGN: usize = 64;

/// An owned `ggml_context` whose pool comes from Rust's (counted, limited) allocator, so
/// that a too-large pool is an `Err` here instead of an abort inside ggml.
///
/// ggml does not free pools it did not allocate; `Drop` frees the context, then the pool.
/// Tensors and graphs created in the context are raw pointers valid while it lives.
pub struct Context {
    ctx: NonNull<ggml_context>,
    pool: NonNull<u8>,
    layout: Layout,
}

impl Context {
    /// A context with a `mem_size`-byte pool. With `no_alloc`, tensors get no data in the
    /// pool (only their headers), e.g. for views of memory owned elsewhere.
    pub fn new(mem_size: usize, no_alloc: bool) -> Result<Self, AllocError> {
        init();
        let err = AllocError { bytes: mem_size };
        let layout = Layout::from_size_align(mem_size.max(1), POOL_ALIGN).map_err(|_| err)?;
        let pool = NonNull::new(unsafe { std::alloc::alloc(layout) }).ok_or(err)?;
        let params = ggml_init_params { mem_size: layout.size(), mem_buffer: pool.as_ptr().cast(), no_alloc };
        match NonNull::new(unsafe { echo_ggml_init(&params) }) {
            Some(ctx) => Ok(Context { ctx, pool, layout }),
            None => {
                unsafe { std::alloc::dealloc(pool.as_ptr(), layout) };
                Err(AllocError { bytes: 0 })
            }
        }
    }

    pub fn as_ptr(&self) -> *mut ggml_context {
        self.ctx.as_ptr()
    }

    /// Empties the context for reuse: the tensors made in it before are gone.
    pub fn reset(&mut self) {
        unsafe { ggml_reset(self.ctx.as_ptr()) }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        unsafe {
            ggml_free(self.ctx.as_ptr());
            std::alloc::dealloc(self.pool.as_ptr(), self.layout);
        }
    }
}

/// Rough pool size for a graph: tensor headers + graph bookkeeping, plus `data_bytes`.
pub fn context_size(n_tensors: usize, graph_nodes: usize, data_bytes: usize) -> usize {
    unsafe {
        n_tensors * ggml_tensor_overhead() + ggml_graph_overhead_custom(graph_nodes, false) + data_bytes + POOL_ALIGN
    }
}
