//! Hand-written declarations for the parts of ggml 0.26.0 (from llama-cpp-sys-2 0.1.161)
//! that the engine uses. Signatures follow `ggml.h` / `ggml-cpu.h` of that exact version;
//! the struct mirrors are checked against the C compiler by `echo_ggml_tensor_layout`
//! (see the tests).
#![allow(non_camel_case_types, non_upper_case_globals)]

use core::ffi::{c_char, c_int, c_void};

// ---------------------------------------------------------------- constants & enums

pub const GGML_MAX_DIMS: usize = 4;
pub const GGML_MAX_SRC: usize = 10;
pub const GGML_MAX_OP_PARAMS: usize = 64;
pub const GGML_MAX_NAME: usize = 64;
/// Our flag on an F16 weight tensor without infinities or NaNs: the wasm F16 matrix-vector
/// kernel then skips its check for them (`shim/echo_vec_dot_q.c` defines the same bit).
pub const ECHO_TENSOR_FLAG_FINITE_HALVES: i32 = 1 << 30;

/// `enum ggml_type` (a C enum is an `int` on every target we build for). Kept as a plain
/// integer so a value read back from C can never be an invalid Rust enum.
pub type ggml_type = c_int;
pub const GGML_TYPE_F32: ggml_type = 0;
pub const GGML_TYPE_F16: ggml_type = 1;
pub const GGML_TYPE_Q4_0: ggml_type = 2;
pub const GGML_TYPE_Q4_1: ggml_type = 3;
pub const GGML_TYPE_Q5_0: ggml_type = 6;
pub const GGML_TYPE_Q5_1: ggml_type = 7;
pub const GGML_TYPE_Q8_0: ggml_type = 8;
pub const GGML_TYPE_Q8_1: ggml_type = 9;
pub const GGML_TYPE_I32: ggml_type = 26;

/// `enum ggml_op` (ggml.h lists the values).
pub type ggml_op = c_int;

/// `enum ggml_status`
pub type ggml_status = c_int;
pub const GGML_STATUS_SUCCESS: ggml_status = 0;

/// `enum ggml_log_level`
pub type ggml_log_level = c_int;
pub const GGML_LOG_LEVEL_WARN: ggml_log_level = 3;
pub const GGML_LOG_LEVEL_ERROR: ggml_log_level = 4;

/// `enum ggml_tensor_flag`
pub const GGML_TENSOR_FLAG_INPUT: i32 = 1;

pub type ggml_fp16_t = u16;

// ---------------------------------------------------------------- structs

/// Opaque handles.
#[repr(C)]
pub struct ggml_context {
    _private: [u8; 0],
}
#[repr(C)]
pub struct ggml_cgraph {
    _private: [u8; 0],
}
#[repr(C)]
pub struct ggml_backend_buffer {
    _private: [u8; 0],
}
#[repr(C)]
pub struct ggml_threadpool {
    _private: [u8; 0],
}
#[repr(C)]
pub struct ggml_backend_buffer_type {
    _private: [u8; 0],
}
/// A graph allocator (`ggml-alloc.h`): places a graph's intermediate tensors in one buffer,
/// reusing memory of tensors no longer needed.
#[repr(C)]
pub struct ggml_gallocr {
    _private: [u8; 0],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ggml_init_params {
    /// bytes
    pub mem_size: usize,
    /// if NULL, ggml allocates the pool itself (with malloc)
    pub mem_buffer: *mut c_void,
    /// don't allocate memory for the tensor data
    pub no_alloc: bool,
}

/// `struct ggml_tensor` of ggml 0.26.0 (336 bytes on 64-bit targets, 256 on wasm32).
///
/// On wasm32 ggml places objects in its pools with 4-byte alignment (`GGML_MEM_ALIGN`), less
/// than the 8 that the `i64` fields ask for; `packed(4)` gives the same layout there (checked by
/// the layout test) with an alignment that makes field access through such pointers sound.
#[repr(C)]
#[cfg_attr(target_arch = "wasm32", repr(packed(4)))]
pub struct ggml_tensor {
    pub type_: ggml_type,
    pub buffer: *mut ggml_backend_buffer,
    /// number of elements per dimension
    pub ne: [i64; GGML_MAX_DIMS],
    /// stride in bytes per dimension
    pub nb: [usize; GGML_MAX_DIMS],
    pub op: ggml_op,
    pub op_params: [i32; GGML_MAX_OP_PARAMS / 4],
    pub flags: i32,
    pub src: [*mut ggml_tensor; GGML_MAX_SRC],
    /// source tensor and byte offset for views
    pub view_src: *mut ggml_tensor,
    pub view_offs: usize,
    pub data: *mut c_void,
    pub name: [c_char; GGML_MAX_NAME],
    pub extra: *mut c_void,
    pub padding: [c_char; 8],
}

pub type ggml_abort_callback = Option<unsafe extern "C" fn(data: *mut c_void) -> bool>;
pub type ggml_abort_callback_t = Option<unsafe extern "C" fn(error_message: *const c_char)>;
pub type ggml_log_callback =
    Option<unsafe extern "C" fn(level: ggml_log_level, text: *const c_char, user_data: *mut c_void)>;

/// Compute plan (`ggml-cpu.h`); get one with [`echo_ggml_graph_plan`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ggml_cplan {
    /// size of the work buffer the caller must provide in `work_data`
    pub work_size: usize,
    pub work_data: *mut u8,
    pub n_threads: c_int,
    pub threadpool: *mut ggml_threadpool,
    pub abort_callback: ggml_abort_callback,
    pub abort_callback_data: *mut c_void,
    /// use only reference implementations
    pub use_ref: bool,
}

pub type ggml_from_float_t = Option<unsafe extern "C" fn(x: *const f32, y: *mut c_void, k: i64)>;
pub type ggml_vec_dot_t = Option<
    unsafe extern "C" fn(
        n: c_int,
        s: *mut f32,
        bs: usize,
        x: *const c_void,
        bx: usize,
        y: *const c_void,
        by: usize,
        nrc: c_int,
    ),
>;

#[repr(C)]
pub struct ggml_type_traits_cpu {
    /// SIMD quantizer ggml-cpu uses for mul_mat activations (`vec_dot_type`)
    pub from_float: ggml_from_float_t,
    pub vec_dot: ggml_vec_dot_t,
    pub vec_dot_type: ggml_type,
    pub nrows: i64,
}

/// Custom op callbacks: `ith` of `nth` tasks computes its share of `dst`.
pub type ggml_custom2_op_t = Option<
    unsafe extern "C" fn(
        dst: *mut ggml_tensor,
        a: *const ggml_tensor,
        b: *const ggml_tensor,
        ith: c_int,
        nth: c_int,
        userdata: *mut c_void,
    ),
>;
pub type ggml_custom_op_t =
    Option<unsafe extern "C" fn(dst: *mut ggml_tensor, ith: c_int, nth: c_int, userdata: *mut c_void)>;

// ---------------------------------------------------------------- functions

type Ctx = *mut ggml_context;
type T = *mut ggml_tensor;

extern "C" {
    // --- our shim (shim/echo_ggml.c): by-pointer versions of by-value struct APIs
    /// `ggml_init(*params)`. Prefer this to `ggml_init` (no by-value struct across FFI).
    pub fn echo_ggml_init(params: *const ggml_init_params) -> Ctx;
    /// `*out = ggml_graph_plan(graph, n_threads, pool)`; `pool` may be null for one thread.
    pub fn echo_ggml_graph_plan(graph: *const ggml_cgraph, n_threads: c_int, pool: *mut ggml_threadpool, out: *mut ggml_cplan);
    /// `ggml_threadpool_new` with the default parameters: starts `n_threads - 1` threads
    /// (aborts if one cannot start). Free with [`ggml_threadpool_free`].
    pub fn echo_ggml_threadpool_new(n_threads: c_int) -> *mut ggml_threadpool;
    /// Stops and joins the pool's threads.
    pub fn ggml_threadpool_free(pool: *mut ggml_threadpool);
    /// sizeof/offsetof probe used by the layout test
    pub fn echo_ggml_tensor_layout(out: *mut usize, n: usize) -> usize;

    // --- context
    pub fn ggml_free(ctx: Ctx);
    /// Forgets every object in the context; its pool is reused from the start.
    pub fn ggml_reset(ctx: Ctx);
    /// bytes of context pool used per tensor besides its data
    pub fn ggml_tensor_overhead() -> usize;
    pub fn ggml_graph_overhead_custom(size: usize, grads: bool) -> usize;

    // --- types
    pub fn ggml_row_size(type_: ggml_type, ne: i64) -> usize;
    pub fn ggml_op_desc(t: *const ggml_tensor) -> *const c_char;
    pub fn ggml_get_type_traits_cpu(type_: ggml_type) -> *const ggml_type_traits_cpu;

    // --- tensor info
    pub fn ggml_nelements(t: *const ggml_tensor) -> i64;
    pub fn ggml_nbytes(t: *const ggml_tensor) -> usize;
    pub fn ggml_get_data(t: *const ggml_tensor) -> *mut c_void;
    pub fn ggml_set_name(t: T, name: *const c_char) -> T;
    pub fn ggml_set_input(t: T);

    // --- tensor creation
    pub fn ggml_new_tensor(ctx: Ctx, type_: ggml_type, n_dims: c_int, ne: *const i64) -> T;
    pub fn ggml_new_tensor_1d(ctx: Ctx, type_: ggml_type, ne0: i64) -> T;
    pub fn ggml_new_tensor_2d(ctx: Ctx, type_: ggml_type, ne0: i64, ne1: i64) -> T;
    pub fn ggml_new_tensor_3d(ctx: Ctx, type_: ggml_type, ne0: i64, ne1: i64, ne2: i64) -> T;
    pub fn ggml_new_tensor_4d(ctx: Ctx, type_: ggml_type, ne0: i64, ne1: i64, ne2: i64, ne3: i64) -> T;

    // --- shape & data movement (views share data; offsets/strides in bytes)
    pub fn ggml_view_1d(ctx: Ctx, a: T, ne0: i64, offset: usize) -> T;
    pub fn ggml_view_2d(ctx: Ctx, a: T, ne0: i64, ne1: i64, nb1: usize, offset: usize) -> T;
    pub fn ggml_reshape_1d(ctx: Ctx, a: T, ne0: i64) -> T;
    pub fn ggml_reshape_2d(ctx: Ctx, a: T, ne0: i64, ne1: i64) -> T;
    pub fn ggml_reshape_3d(ctx: Ctx, a: T, ne0: i64, ne1: i64, ne2: i64) -> T;
    pub fn ggml_reshape_4d(ctx: Ctx, a: T, ne0: i64, ne1: i64, ne2: i64, ne3: i64) -> T;
    pub fn ggml_permute(ctx: Ctx, a: T, axis0: c_int, axis1: c_int, axis2: c_int, axis3: c_int) -> T;
    pub fn ggml_cont(ctx: Ctx, a: T) -> T;
    /// a -> b, returns view(b)
    pub fn ggml_cpy(ctx: Ctx, a: T, b: T) -> T;
    /// rows of `a` selected by the I32 indices in `b`
    pub fn ggml_get_rows(ctx: Ctx, a: T, b: T) -> T;
    pub fn ggml_concat(ctx: Ctx, a: T, b: T, dim: c_int) -> T;
    pub fn ggml_repeat(ctx: Ctx, a: T, b: T) -> T;

    // --- element-wise binary (b broadcasts over a)
    pub fn ggml_add(ctx: Ctx, a: T, b: T) -> T;
    pub fn ggml_sub(ctx: Ctx, a: T, b: T) -> T;
    pub fn ggml_mul(ctx: Ctx, a: T, b: T) -> T;
    pub fn ggml_scale(ctx: Ctx, a: T, s: f32) -> T;

    // --- element-wise unary
    pub fn ggml_exp(ctx: Ctx, a: T) -> T;
    pub fn ggml_neg(ctx: Ctx, a: T) -> T;
    pub fn ggml_sqr(ctx: Ctx, a: T) -> T;
    pub fn ggml_sigmoid(ctx: Ctx, a: T) -> T;
    pub fn ggml_silu(ctx: Ctx, a: T) -> T;
    pub fn ggml_relu(ctx: Ctx, a: T) -> T;
    pub fn ggml_tanh(ctx: Ctx, a: T) -> T;

    // --- normalisation
    /// (x - mean) / sqrt(var + eps) along rows
    pub fn ggml_norm(ctx: Ctx, a: T, eps: f32) -> T;
    /// x / max(||x||, eps) along rows (RWKV v7)
    pub fn ggml_l2_norm(ctx: Ctx, a: T, eps: f32) -> T;

    // --- reductions, softmax, matmul
    pub fn ggml_sum_rows(ctx: Ctx, a: T) -> T;
    /// a: [k, n] (weights, any type), b: [k, m] (F32) -> [n, m] F32
    pub fn ggml_mul_mat(ctx: Ctx, a: T, b: T) -> T;

    // --- RWKV
    /// k, v, r, td: [S, H, T]; tf: [S, H]; state: [S*S*H, n_seqs]. Result [S*H, T + S*n_seqs]:
    /// T rows of output, then the new state.
    pub fn ggml_rwkv_wkv6(ctx: Ctx, k: T, v: T, r: T, tf: T, td: T, state: T) -> T;
    /// r, w, k, v, a, b: [S, H, T]; state: [S*S*H, n_seqs]. Result as for wkv6.
    pub fn ggml_rwkv_wkv7(ctx: Ctx, r: T, w: T, k: T, v: T, a: T, b: T, state: T) -> T;

    // --- custom ops (result has the shape/type of `a` for map_custom*)
    pub fn ggml_map_custom2(ctx: Ctx, a: T, b: T, fun: ggml_custom2_op_t, n_tasks: c_int, userdata: *mut c_void)
        -> T;
    /// new tensor of the given type/shape computed by `fun` from up to GGML_MAX_SRC `args`
    pub fn ggml_custom_4d(
        ctx: Ctx,
        type_: ggml_type,
        ne0: i64,
        ne1: i64,
        ne2: i64,
        ne3: i64,
        args: *mut T,
        n_args: c_int,
        fun: ggml_custom_op_t,
        n_tasks: c_int,
        userdata: *mut c_void,
    ) -> T;

    // --- graph allocation (ggml-alloc.h, ggml-backend.h)
    pub fn ggml_backend_cpu_buffer_type() -> *mut ggml_backend_buffer_type;
    pub fn ggml_gallocr_new(buft: *mut ggml_backend_buffer_type) -> *mut ggml_gallocr;
    pub fn ggml_gallocr_free(galloc: *mut ggml_gallocr);
    /// Sizes the allocator's buffer for `graph` (no tensor is placed); a later graph that needs no
    /// more is placed without reallocating. False when out of memory.
    pub fn ggml_gallocr_reserve(galloc: *mut ggml_gallocr, graph: *mut ggml_cgraph) -> bool;
    /// Allocates every tensor of `graph` that has no data yet; false when out of memory.
    pub fn ggml_gallocr_alloc_graph(galloc: *mut ggml_gallocr, graph: *mut ggml_cgraph) -> bool;
    pub fn ggml_gallocr_get_buffer_size(galloc: *mut ggml_gallocr, buffer_id: c_int) -> usize;

    // --- graphs
    pub fn ggml_new_graph_custom(ctx: Ctx, size: usize, grads: bool) -> *mut ggml_cgraph;
    pub fn ggml_build_forward_expand(graph: *mut ggml_cgraph, t: T);

    // --- compute (ggml-cpu.h)
    /// Initialises ggml-cpu's lookup tables; `crate::init()` calls it.
    pub fn ggml_cpu_init();
    /// The work buffer is taken from `ctx` (it must have room for it).
    pub fn ggml_graph_compute_with_ctx(ctx: Ctx, graph: *mut ggml_cgraph, n_threads: c_int) -> ggml_status;
    /// With a plan from [`echo_ggml_graph_plan`] whose `work_data` the caller allocated.
    pub fn ggml_graph_compute(graph: *mut ggml_cgraph, cplan: *mut ggml_cplan) -> ggml_status;

    // --- quantisation & conversion
    pub fn ggml_quantize_requires_imatrix(type_: ggml_type) -> bool;
    /// Quantises `nrows` rows of `n_per_row` floats starting at element `start`;
    /// returns the bytes written.
    pub fn ggml_quantize_chunk(
        type_: ggml_type,
        src: *const f32,
        dst: *mut c_void,
        start: i64,
        nrows: i64,
        n_per_row: i64,
        imatrix: *const f32,
    ) -> usize;
    pub fn ggml_fp16_to_fp32(x: ggml_fp16_t) -> f32;
    pub fn ggml_fp32_to_fp16(x: f32) -> ggml_fp16_t;

    // --- CPU features (compile-time flags of our build)
    pub fn ggml_cpu_has_wasm_simd() -> c_int;
    pub fn ggml_cpu_has_avx() -> c_int;
    pub fn ggml_cpu_has_avx2() -> c_int;
    pub fn ggml_cpu_has_avx512() -> c_int;
    pub fn ggml_cpu_has_neon() -> c_int;

    // --- misc
    pub fn ggml_log_set(callback: ggml_log_callback, user_data: *mut c_void);
    /// Called with the message before ggml aborts (GGML_ASSERT/GGML_ABORT); returns the old one.
    pub fn ggml_set_abort_callback(callback: ggml_abort_callback_t) -> ggml_abort_callback_t;
}
