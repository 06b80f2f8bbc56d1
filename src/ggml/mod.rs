//! The ggml backend: RWKV forward passes as ggml graphs, computed by ggml's CPU kernels (AVX2
//! natively, SIMD128 in wasm).
//!
//! - [`GgmlModel`]: ggml tensor headers over a loaded [`Model`]'s weights. Matrices are used in
//!   place, in their stored type (no copy); the small vectors are converted to f32 once, because
//!   ggml's element-wise kernels want f32 operands. One `GgmlModel` can serve many contexts.
//! - [`GgmlContext`]: one evaluation context — a pool for the graph, a graph allocator and a work
//!   buffer, all kept from one evaluation to the next. Each `eval` builds the graph for up to
//!   [`SEQ_CHUNK`] tokens (`graph.rs`) in the reset pool, lets ggml-alloc place the intermediate
//!   tensors in one reused buffer, and computes it. The state is read and written
//!   in place; logits, when asked for, are copied straight into the caller's slice.

mod graph;
mod wkv4;

use std::collections::HashMap;
use std::sync::Arc;

use echo_ggml_sys as sys;
use sys::{ggml_gallocr, ggml_tensor, Context};

use crate::error::{Error, ErrorCode, Result};
use crate::model::{schema, Arch, Hparams, Model};

/// Tokens per graph when evaluating a sequence: longer inputs go chunk by chunk, which bounds
/// the compute memory while keeping the matrix products batched.
pub const SEQ_CHUNK: usize = 32;

/// Most threads one context computes with: [`compute_memory`]'s work bound has room for a cache
/// line per thread up to this many.
pub const MAX_THREADS: usize = 64;

/// Whether this build can compute on more than one thread: natively, and in the wasm build with
/// shared memory and atomics (`pkg-threads/`), whose threads are the JS host's workers.
pub const HAS_THREADS: bool = cfg!(any(not(target_arch = "wasm32"), target_feature = "atomics"));

/// Upper bound of graph nodes per layer (v7, the largest graph, needs about 110).
const NODES_PER_LAYER: usize = 192;

/// The matrices are used by `ggml_mul_mat`/`ggml_get_rows` in their stored type; every other
/// tensor is a small vector, converted to f32.
fn is_matrix(name: &str) -> bool {
    schema::store(name).is_some_and(schema::Store::is_matrix)
}

/// Whether F16 data has no infinity or NaN (no half with exponent 31): the largest half shifted
/// left once (its sign out) is below 0xf800. A max over all, not an early exit, so it vectorizes.
/// Weights without (all trained models') are flagged for the wasm F16 kernel.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn finite_halves(data: &[u8]) -> bool {
    data.chunks_exact(2).map(|h| u16::from_le_bytes([h[0], h[1]]) << 1).max().unwrap_or(0) < 0xf800
}

/// A model's weights as ggml tensors.
pub struct GgmlModel {
    model: Arc<Model>,
    tensors: HashMap<String, *mut ggml_tensor>,
    /// The f32 copies of the vectors (the tensors above point into them).
    _vectors: Vec<Vec<f32>>,
    /// Holds the tensor headers; must outlive nothing but `tensors`.
    _ctx: Context,
    /// Bytes of `_vectors` and of `_ctx`'s pool: what the model takes besides its weights.
    own_bytes: usize,
}

// SAFETY: the tensors are read-only after construction, and the memory they point to (the
// model's buffers, `_vectors`) is owned by this struct and never mutated.
unsafe impl Send for GgmlModel {}
unsafe impl Sync for GgmlModel {}

impl GgmlModel {
    pub fn new(model: Arc<Model>) -> Result<GgmlModel> {
        let n = model.tensors().len();
        let header_bytes = sys::context_size(n, 0, 0);
        let ctx = Context::new(header_bytes, true).map_err(|e| Error::out_of_memory("ggml tensor headers", e.bytes))?;
        let mut tensors = HashMap::with_capacity(n);
        let mut vectors = Vec::new();
        for t in model.tensors() {
            let mut ne = [1i64; 4];
            for (i, &d) in t.info.shape.iter().enumerate() {
                ne[i] = d as i64;
            }
            let matrix = is_matrix(&t.info.name);
            let ty = if matrix { t.info.dtype.ggml_type() } else { sys::GGML_TYPE_F32 };
            // SAFETY: `ctx` has room for one header per model tensor (no data: no_alloc).
            let tensor = unsafe { sys::ggml_new_tensor(ctx.as_ptr(), ty, t.info.shape.len() as i32, ne.as_ptr()) };
            if tensor.is_null() {
                return Err(Error::out_of_memory("ggml tensor headers", 0));
            }
            let data: *const u8 = if matrix {
                t.data.as_ptr()
            } else {
                let v = crate::reference::tensor_to_f32(t);
                let p = v.as_ptr().cast();
                vectors.push(v);
                p
            };
            // Checked once here so that the kernel need not check each row at every token
            // (3% of a v7 0.1B decode step in Node; 100 MB of head in about 10 ms).
            #[cfg(target_arch = "wasm32")]
            if ty == sys::GGML_TYPE_F16 && t.info.name != "emb.weight" && finite_halves(t.data.as_slice()) {
                // SAFETY: a valid header, ours alone.
                unsafe { (*tensor).flags |= sys::ECHO_TENSOR_FLAG_FINITE_HALVES };
            }
            let bytes = if matrix { t.data.len() } else { t.info.n_elements() * 4 };
            // SAFETY: `tensor` is a valid header; `data` holds `bytes` bytes that live as long as `self`.
            unsafe {
                if sys::ggml_nbytes(tensor) != bytes {
                    return Err(Error::invalid_model(format!("tensor '{}': size does not match its shape", t.info.name)));
                }
                (*tensor).data = data as *mut _;
            }
            tensors.insert(t.info.name.clone(), tensor);
        }
        let own_bytes = header_bytes + vectors.iter().map(|v| 4 * v.len()).sum::<usize>();
        Ok(GgmlModel { model, tensors, _vectors: vectors, _ctx: ctx, own_bytes })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// A global tensor. The loader validated the tensor set against the architecture, so every
    /// name the graphs ask for exists.
    fn get(&self, name: &str) -> *mut ggml_tensor {
        self.tensors[name]
    }

    fn layer(&self, layer: usize, leaf: &str) -> *mut ggml_tensor {
        self.get(&format!("blocks.{layer}.{leaf}"))
    }
}

/// One evaluation context over a shared [`GgmlModel`].
pub struct GgmlContext {
    model: Arc<GgmlModel>,
    /// The graph's tensor headers and bookkeeping, rebuilt per chunk. Kept rather than allocated
    /// per token: a megabyte block freed and asked for again as other allocations come and go
    /// fragments the heap, and wasm memory never shrinks.
    graph: Context,
    galloc: *mut ggml_gallocr,
    work: Vec<u8>,
    /// Whether the compute buffers were sized for a full chunk (see `reserve`).
    reserved: bool,
    threads: usize,
    /// With more than one thread: ggml's threadpool, started once here, so no token pays for
    /// starting and joining threads (which ggml does per graph when given none).
    pool: *mut sys::ggml_threadpool,
}

// SAFETY: the graph allocator and the threadpool are owned and only used through `&mut self`.
unsafe impl Send for GgmlContext {}

impl GgmlContext {
    /// A context computing on `threads` threads (1 to [`MAX_THREADS`]; more than 1 only where
    /// [`HAS_THREADS`]). Its logits do not depend on the count: ggml splits every operation by
    /// rows, and each row is computed by one thread the same way.
    pub fn new(model: Arc<GgmlModel>, threads: usize) -> Result<GgmlContext> {
        if !(1..=MAX_THREADS).contains(&threads) {
            return Err(Error::invalid_options(format!("threads must be from 1 to {MAX_THREADS}, got {threads}")));
        }
        if threads > 1 && !HAS_THREADS {
            return Err(Error::invalid_options("this build computes on one thread only (use the threaded wasm build)"));
        }
        // ggml aborts when a thread cannot start; in wasm the threads are the host's parked workers.
        #[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
        if threads - 1 > sys::threads::idle() {
            let idle = sys::threads::idle();
            return Err(Error::invalid_options(format!("{threads} threads need {} parked pool workers; {idle} are idle", threads - 1)));
        }
        sys::init();
        let nodes = graph_nodes(&model.model.hparams);
        let graph = Context::new(sys::context_size(nodes, nodes, 0), true).map_err(|e| Error::out_of_memory("the ggml graph", e.bytes))?;
        // SAFETY: plain constructor; null on allocation failure.
        let galloc = unsafe { sys::ggml_gallocr_new(sys::ggml_backend_cpu_buffer_type()) };
        if galloc.is_null() {
            return Err(Error::out_of_memory("the ggml graph allocator", 0));
        }
        // SAFETY: 1 < threads <= MAX_THREADS, within ggml's limit; ggml aborts if a thread cannot start.
        let pool = if threads > 1 { unsafe { sys::echo_ggml_threadpool_new(threads as i32) } } else { std::ptr::null_mut() };
        Ok(GgmlContext { model, graph, galloc, work: Vec::new(), threads, pool, reserved: false })
    }

    /// What evaluating has really allocated besides the weights, at its largest so far: a full
    /// chunk's from the first evaluation with logits on (the graph's part without ggml-alloc's
    /// bookkeeping, which ggml does not report); each part is bounded by [`compute_memory`]'s.
    pub fn allocated(&self) -> ComputeMemory {
        let nodes = graph_nodes(&self.model.model.hparams);
        ComputeMemory {
            model: self.model.own_bytes,
            graph: sys::context_size(nodes, nodes, 0),
            // SAFETY: `galloc` is valid; buffer 0 is the only one (one backend buffer type).
            buffer: unsafe { sys::ggml_gallocr_get_buffer_size(self.galloc, 0) },
            work: self.work.capacity(),
        }
    }

    /// Feeds `tokens` in order from `state` (updated in place) and writes the last token's
    /// logits when asked. Same contract and errors as [`crate::reference::eval`].
    pub fn eval(&mut self, tokens: &[u32], state: &mut [f32], mut logits: Option<&mut [f32]>) -> Result<()> {
        self.model.model.check_eval(tokens, state, logits.as_deref())?;
        if !self.reserved {
            if let Some(logits) = logits.as_deref_mut() {
                self.reserved = true;
                // Out of memory is all that can fail it: then the buffers grow as inputs come, and
                // what fits still evaluates (a header may understate what a full chunk needs).
                let _ = self.reserve(state, logits);
            }
        }
        let chunks = tokens.len().div_ceil(SEQ_CHUNK);
        for (i, chunk) in tokens.chunks(SEQ_CHUNK).enumerate() {
            let out = if i + 1 == chunks { logits.take().map(Output::Logits) } else { None };
            self.eval_chunk(chunk, state, out)?;
        }
        Ok(())
    }

    /// Feeds `tokens` like [`GgmlContext::eval`] and writes every token's hidden state after
    /// `ln_out`. Same contract and errors as [`crate::reference::eval_hidden`].
    pub fn eval_hidden(&mut self, tokens: &[u32], state: &mut [f32], hidden: &mut [f32]) -> Result<()> {
        self.model.model.check_hidden(tokens, state, hidden)?;
        let rows = SEQ_CHUNK * self.model.model.hparams.n_embed;
        for (chunk, out) in tokens.chunks(SEQ_CHUNK).zip(hidden.chunks_mut(rows)) {
            self.eval_chunk(chunk, state, Some(Output::Hidden(out)))?;
        }
        Ok(())
    }

    fn eval_chunk(&mut self, tokens: &[u32], state: &mut [f32], output: Option<Output>) -> Result<()> {
        // SAFETY: the graph's input tensors point at the caller's slices, valid and exclusively
        // ours for this call; its other tensors live in `self.graph` until the next chunk.
        unsafe {
            let graph = self.build(tokens, state, output);
            if !sys::ggml_gallocr_alloc_graph(self.galloc, graph) {
                return Err(Error::out_of_memory("ggml compute buffers", 0));
            }
            let mut plan = self.plan(graph)?;
            compute_status(sys::ggml_graph_compute(graph, &mut plan))
        }
    }

    /// Sizes the compute buffers for the largest graph, a full chunk with logits, before the first
    /// evaluation with logits (with its state and logits buffers, so it allocates nothing else),
    /// so that later graphs fit. Grown as larger inputs came, each buffer would leave its smaller
    /// self behind as a hole in the heap, and wasm memory never shrinks.
    fn reserve(&mut self, state: &mut [f32], logits: &mut [f32]) -> Result<()> {
        let tokens = [0u32; SEQ_CHUNK];
        // SAFETY: as in `eval_chunk`; nothing is computed, nothing read or written.
        unsafe {
            let graph = self.build(&tokens, state, Some(Output::Logits(logits)));
            if !sys::ggml_gallocr_reserve(self.galloc, graph) {
                return Err(Error::out_of_memory("ggml compute buffers", 0));
            }
            self.plan(graph)?;
        }
        Ok(())
    }

    /// The graph for `tokens` from `state`, with `output`, built in the reset graph pool.
    ///
    /// # Safety
    /// The graph points at the slices: they must outlive its use, unmoved, and nothing else may
    /// touch them meanwhile; it lives until the next `build`.
    unsafe fn build(&mut self, tokens: &[u32], state: &mut [f32], output: Option<Output>) -> *mut sys::ggml_cgraph {
        let nodes = graph_nodes(&self.model.model.hparams);
        self.graph.reset();
        let c = self.graph.as_ptr();
        let graph = sys::ggml_new_graph_custom(c, nodes, false);
        let tok = sys::ggml_new_tensor_1d(c, sys::GGML_TYPE_I32, tokens.len() as i64);
        (*tok).data = tokens.as_ptr() as *mut _; // token ids < n_vocab fit in i32
        let st = sys::ggml_new_tensor_1d(c, sys::GGML_TYPE_F32, state.len() as i64);
        (*st).data = state.as_mut_ptr().cast();
        let over = |buf: &mut [f32]| {
            let t = sys::ggml_new_tensor_1d(c, sys::GGML_TYPE_F32, buf.len() as i64);
            (*t).data = buf.as_mut_ptr().cast();
            t
        };
        let out = output.map(|o| match o {
            Output::Logits(l) => graph::Out::Logits(over(l)),
            Output::Hidden(h) => graph::Out::Hidden(over(h)),
        });
        graph::build(&self.model, c, graph, tok, st, out);
        graph
    }

    /// ggml's plan for computing `graph` on this context's threads, with the work buffer grown
    /// to what it needs.
    ///
    /// # Safety
    /// `graph` comes from `build`, and is still alive.
    unsafe fn plan(&mut self, graph: *mut sys::ggml_cgraph) -> Result<sys::ggml_cplan> {
        let mut plan: sys::ggml_cplan = std::mem::zeroed();
        sys::echo_ggml_graph_plan(graph, self.threads as i32, self.pool, &mut plan);
        if self.work.len() < plan.work_size {
            let extra = plan.work_size - self.work.len();
            self.work.try_reserve_exact(extra).map_err(|_| Error::out_of_memory("the ggml work buffer", plan.work_size))?;
            self.work.resize(plan.work_size, 0);
        }
        plan.work_data = self.work.as_mut_ptr();
        Ok(plan)
    }
}

/// What an evaluation writes besides the state, into the caller's buffer.
enum Output<'a> {
    /// The last token's logits.
    Logits(&'a mut [f32]),
    /// Every token's hidden state after `ln_out`.
    Hidden(&'a mut [f32]),
}

impl Drop for GgmlContext {
    fn drop(&mut self) {
        // SAFETY: created in `new`, freed once; the pool is idle between computations.
        unsafe {
            sys::ggml_gallocr_free(self.galloc);
            if !self.pool.is_null() {
                sys::ggml_threadpool_free(self.pool);
            }
        }
    }
}

/// The CPU computation allocates nothing (its buffers are ready before it starts): a failure
/// is never memory. It stops early only when aborted, which nothing here asks for.
fn compute_status(status: sys::ggml_status) -> Result<()> {
    if status == sys::GGML_STATUS_SUCCESS {
        return Ok(());
    }
    Err(Error::new(
        ErrorCode::ComputeFailed,
        format!("ggml's graph computation stopped (status {status}); the conversation's state may be partly updated: reset it"),
    ))
}

fn graph_nodes(hp: &Hparams) -> usize {
    64 + NODES_PER_LAYER * hp.n_layer
}

/// Memory an evaluation context takes besides the weights, by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComputeMemory {
    /// The model's f32 copies of its vectors, and its tensor headers.
    pub model: usize,
    /// One graph's headers (made and freed by every chunk), and ggml-alloc's bookkeeping for it.
    pub graph: usize,
    /// The graph allocator's buffer for the intermediate tensors.
    pub buffer: usize,
    /// The work buffer of the matrix products.
    pub work: usize,
}

impl ComputeMemory {
    pub fn total(&self) -> usize {
        self.model + self.graph + self.buffer + self.work
    }
}

/// An upper bound of what [`GgmlContext::allocated`] reaches, part by part (checked for every
/// fixture and 169M-class models of each architecture by `tests/memory.rs`, which prints the
/// margins):
/// - model: at most 16 vectors of `n_embed` per layer (v6 18, v7 24), 32 tensor headers per layer;
/// - graph: the headers exactly as allocated, plus ggml-alloc's hash table and per-node records
///   (C allocations, counted in wasm only, where they take under 256 bytes a node);
/// - buffer, for a [`SEQ_CHUNK`]-token graph: ggml-alloc reuses memory across layers, so it holds
///   one layer's live activations: one `[n_ffn, T]` tensor in the FFN plus, measured, at most 8
///   (v4, v5), 14 (v6) or 17 (v7) `[n_embed, T]` ones at any point, and the `head_size × n_embed`
///   head state. The factors below leave about 20% over those counts;
/// - work: the activations converted to the weights' dot-product type, at most f16 (2 bytes) for
///   a `[max(n_embed, n_ffn), T]` input, plus a cache line per thread (up to [`MAX_THREADS`]).
pub fn compute_memory(hp: &Hparams, arch: Arch) -> ComputeMemory {
    let (e, f, l, t) = (hp.n_embed, hp.n_ffn, hp.n_layer, SEQ_CHUNK);
    let (vectors, activations) = match arch {
        Arch::V4 | Arch::V5_1 | Arch::V5_2 => (16, 10),
        Arch::V6 => (18, 17),
        Arch::V7 => (24, 20),
    };
    let nodes = graph_nodes(hp);
    ComputeMemory {
        // SAFETY: a constant of the library.
        model: 4 * e * l * vectors + (8 + 32 * l) * unsafe { sys::ggml_tensor_overhead() },
        graph: sys::context_size(nodes, nodes, 0) + 256 * nodes,
        buffer: 4 * (t * (activations * e + f) + hp.head_size * e),
        work: 2 * t * e.max(f) + 4096,
    }
}

/// Memory an evaluation context needs beyond the weights, for the budget check before loading:
/// [`compute_memory`] and the logits.
pub fn compute_bytes(hp: &Hparams, arch: Arch) -> usize {
    compute_memory(hp, arch).total() + 4 * hp.n_vocab
}

/// The SIMD instruction set ggml's kernels were compiled for.
pub fn simd_info() -> &'static str {
    // SAFETY: feature queries without side effects.
    unsafe {
        if sys::ggml_cpu_has_wasm_simd() != 0 {
            "wasm-simd128"
        } else if sys::ggml_cpu_has_avx512() != 0 {
            "avx512"
        } else if sys::ggml_cpu_has_avx2() != 0 {
            "avx2"
        } else if sys::ggml_cpu_has_avx() != 0 {
            "avx"
        } else if sys::ggml_cpu_has_neon() != 0 {
            "neon"
        } else {
            "none"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_computation_is_not_out_of_memory() {
        assert_eq!(compute_status(sys::GGML_STATUS_SUCCESS), Ok(()));
        for status in [-1, 1] {
            assert_eq!(compute_status(status).unwrap_err().code, ErrorCode::ComputeFailed);
        }
    }

    #[test]
    fn finite_halves_are_told_from_infinities_and_nans() {
        let bytes = |halves: &[u16]| halves.iter().flat_map(|h| h.to_le_bytes()).collect::<Vec<u8>>();
        // The largest finite halves of both signs, subnormals, zeros: finite.
        assert!(finite_halves(&bytes(&[0x7bff, 0xfbff, 0x0001, 0x8001, 0x0000, 0x8000, 0x3c00])));
        assert!(finite_halves(&[]));
        // Each infinity and NaN, anywhere in a long row (the vectorized part and the tail).
        for bad in [0x7c00, 0xfc00, 0x7e00, 0xfe00, 0x7c01, 0xffff] {
            for at in [0, 37, 99] {
                let mut row = vec![0x3c00u16; 100];
                row[at] = bad;
                assert!(!finite_halves(&bytes(&row)), "{bad:#06x} at {at}");
            }
        }
    }
}
