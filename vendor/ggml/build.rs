//! Builds ggml (CPU backend only) for the host and for wasm32-unknown-unknown.
//!
//! ggml's sources are never committed: they come from the pinned crates.io package
//! `llama-cpp-sys-2` (declared as a never-enabled optional dependency, so `cargo fetch`
//! downloads it and Cargo.lock pins its checksum). We unpack its `llama.cpp/ggml/`
//! folder into OUT_DIR, apply our documented patches, and compile it with `cc`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const PKG: &str = "llama-cpp-sys-2-0.1.161";

/// The wasm SIMD quantizers of the activations (Q8_0 for Q4_0/Q5_0/Q8_0 weights, Q8_1 for
/// Q4_1/Q5_1) differ from ggml's x86 AVX/AVX2 versions in two ways:
/// 1. they truncate toward zero (`wasm_i32x4_trunc_sat_f32x4`) where x86 rounds to nearest,
///    ties to even (`_mm256_round_ps(.., _MM_ROUND_NEAREST)`), which biases every quantized
///    activation toward zero (less accurate, and not the same numbers as native);
/// 2. they scale by `1.0f/d` with `d = amax/127`, where x86 uses `127.f/amax` (can differ
///    by one ulp, which flips values sitting on a rounding boundary).
///
/// `wasm_f32x4_nearest` is IEEE roundeven, the same as `_MM_ROUND_NEAREST`, so after both
/// replacements the wasm quantizers produce the same bytes as native x86 AVX2 (the native
/// generic code uses roundf, ties away from zero, which is what x86 does *not* do).
/// Each (from, to, expected count) must match exactly, or the build fails.
const WASM_QUANTS_PATCHES: &[(&str, &str, usize)] = &[
    (
        "wasm_i32x4_trunc_sat_f32x4(v);",
        "wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(v)); /* echo: round like x86 */",
        2, // quantize_row_q8_0 and quantize_row_q8_1
    ),
    (
        "const float id = d ? 1.0f/d : 0.0f;",
        "const float id = amax != 0.0f ? 127.f/amax : 0.0f; /* echo: scale like x86 */",
        2, // same two functions
    ),
];

/// F16 weights multiply F32 activations (`shim/echo_vec_dot_f16.c`): ggml's own path rounds the
/// activations to F16 first and, in wasm, converts them back for every weight row. FP16 fixture
/// logits are now within 4e-6 of the F32 reference backend (were 3e-3). v7 0.1B in Node, best of
/// five decode ms/token: FP16 115 -> 81, Q5_1 (FP16 head) 71.5 -> 59. In wasm the weights are
/// converted eight at a time in integer lanes, not through ggml's table: Node v4 169M, 1 thread,
/// decode ms/token FP16 59.5-68.8 -> 33.3-44.0, Q5_1 (FP16 head) 35.5-49.6 -> 26.1-26.4; FP16
/// prompt 36-37 -> 54-64 tokens/s (alternating runs). With `nrows` 2, a
/// prompt's chunk goes in 2x2 tiles, each weight converted once per two columns, with the bits of
/// single products: FP16 prompt tokens/s, native v7 0.1B 115 -> 134; Node v7 0.1B 23.1-23.5 ->
/// 26.7-34.1, v4 169M 20.8-25.1 -> 27.7-36.4 (alternating runs); decode unchanged.
const F16_DOT_PATCHES: &[(&str, &str, usize)] = &[
    (
        "static const struct ggml_type_traits_cpu type_traits_cpu[GGML_TYPE_COUNT] = {",
        "/* echo: F16 x F32 dot product */
void echo_vec_dot_f16_f32(int n, float * s, size_t bs, const void * x, size_t bx, const void * y, size_t by, int nrc);
static const struct ggml_type_traits_cpu type_traits_cpu[GGML_TYPE_COUNT] = {",
        1,
    ),
    (
        "        .vec_dot                  = (ggml_vec_dot_t) ggml_vec_dot_f16,
        .vec_dot_type             = GGML_TYPE_F16,
        .nrows                    = 1,",
        "        .vec_dot                  = (ggml_vec_dot_t) echo_vec_dot_f16_f32, /* echo */
        .vec_dot_type             = GGML_TYPE_F32,
        .nrows                    = 2, /* echo: 2x2 tiles when a chunk has two columns or more */",
        1,
    ),
];

/// Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 weights in wasm go in ggml's 2x2 tiles
/// (`shim/echo_vec_dot_q.c`), so a prompt's chunk unpacks and widens each block once per two
/// columns; results keep the bits of ggml's own wasm kernels. v4 169M Q5_1, prompt tokens/s on
/// 1 thread, alternating runs: Chromium 41.5-44.3 -> 65.2-71.6; Node 48.9-57.6 -> 45.9-72.0
/// (noisy); Q8_0 in Chromium 43.0-46.0 -> 55.5-59.0. Decode unchanged or faster.
/// A one-column product (decode) goes a whole chunk of rows per call (`echo_vec_dot_rows`, these
/// types and F16), straight into dst: the quantized column widened once for the chunk, the F16
/// column scaled by 2^112 once (four at a time): same bits. v4 169M in Node, 1 thread, decode
/// ms/token: Q5_1 60-62 -> 41, FP16 90 -> 67 (a Xeon, two rows at a time); a row at a time, on an
/// EPYC, Q5_1 33 -> 22.6, FP16 53 -> 32-35 (the weights read as one stream, not two); a chunk per
/// call, not 16 rows (the column was prepared again for every 16), Q5_1 23.3-25.1 -> 19.3-21.9,
/// FP16 31.7-37.6 -> 23.4-25.3, and on 2 threads Q5_1 19.0-24.1 -> 13.1-16.6. The kernel is
/// chosen by the weight tensor's flags too: F16 weights checked at load for infinities and NaNs
/// (`ECHO_TENSOR_FLAG_FINITE_HALVES`) skip the check per row, v7 0.1B Q5_1 decode about 3% less.
/// A block of a plain 2-D product (a prompt's; up to 16 rows by 16 columns, odd counts too) goes
/// in one call (`echo_vec_dot_chunk`), each row pair unpacked and widened once for all the block's
/// columns, not once per column pair: same tiles, same bits; v4 169M Q5_1 in Node, 1 thread,
/// 128-token prompt 78-95 -> 105-116 tokens/s, v7 0.1B 76-97 -> 90-110. A block with an odd number
/// of columns (a prompt's last chunk) went one row and column at a time in ggml's loop: a 15-token
/// prompt 66-78 -> 100-116 tokens/s.
const WASM_QUANT_TILE_PATCHES: &[(&str, &str, usize)] = &[
    (
        "static const struct ggml_type_traits_cpu type_traits_cpu[GGML_TYPE_COUNT] = {",
        "#if defined(__wasm_simd128__) /* echo: wasm 2x2 tiles */
void echo_vec_dot_q4_0_q8_0(int n, float * s, size_t bs, const void * x, size_t bx, const void * y, size_t by, int nrc);
void echo_vec_dot_q4_1_q8_1(int n, float * s, size_t bs, const void * x, size_t bx, const void * y, size_t by, int nrc);
void echo_vec_dot_q5_0_q8_0(int n, float * s, size_t bs, const void * x, size_t bx, const void * y, size_t by, int nrc);
void echo_vec_dot_q5_1_q8_1(int n, float * s, size_t bs, const void * x, size_t bx, const void * y, size_t by, int nrc);
void echo_vec_dot_q8_0_q8_0(int n, float * s, size_t bs, const void * x, size_t bx, const void * y, size_t by, int nrc);
#define ECHO_TILE(ggml_kernel, echo_kernel) echo_kernel
#define ECHO_TILE_ROWS 2
typedef void (*echo_vec_dot_rows_t)(int n, float * s, const void * x, size_t bx, const void * y, int64_t nr);
echo_vec_dot_rows_t echo_vec_dot_rows(enum ggml_type type, int32_t flags);
typedef void (*echo_vec_dot_chunk_t)(int n, float * s, const void * x, size_t bx, const void * y, size_t by, int nr, int nc);
echo_vec_dot_chunk_t echo_vec_dot_chunk(enum ggml_type type);
#else
#define ECHO_TILE(ggml_kernel, echo_kernel) ggml_kernel
#define ECHO_TILE_ROWS 1
#endif
static const struct ggml_type_traits_cpu type_traits_cpu[GGML_TYPE_COUNT] = {",
        1,
    ),
    (
        "        .vec_dot                  = ggml_vec_dot_q4_0_q8_0,
        .vec_dot_type             = GGML_TYPE_Q8_0,
#if defined (__ARM_FEATURE_MATMUL_INT8)",
        "        .vec_dot                  = ECHO_TILE(ggml_vec_dot_q4_0_q8_0, echo_vec_dot_q4_0_q8_0),
        .vec_dot_type             = GGML_TYPE_Q8_0,
#if defined (__ARM_FEATURE_MATMUL_INT8) || defined(__wasm_simd128__) /* echo */",
        1,
    ),
    (
        "        .vec_dot                  = ggml_vec_dot_q4_1_q8_1,
        .vec_dot_type             = GGML_TYPE_Q8_1,
#if defined (__ARM_FEATURE_MATMUL_INT8)",
        "        .vec_dot                  = ECHO_TILE(ggml_vec_dot_q4_1_q8_1, echo_vec_dot_q4_1_q8_1),
        .vec_dot_type             = GGML_TYPE_Q8_1,
#if defined (__ARM_FEATURE_MATMUL_INT8) || defined(__wasm_simd128__) /* echo */",
        1,
    ),
    (
        "        .vec_dot                  = ggml_vec_dot_q5_0_q8_0,
        .vec_dot_type             = GGML_TYPE_Q8_0,
        .nrows                    = 1,",
        "        .vec_dot                  = ECHO_TILE(ggml_vec_dot_q5_0_q8_0, echo_vec_dot_q5_0_q8_0),
        .vec_dot_type             = GGML_TYPE_Q8_0,
        .nrows                    = ECHO_TILE_ROWS,",
        1,
    ),
    (
        "        .vec_dot                  = ggml_vec_dot_q5_1_q8_1,
        .vec_dot_type             = GGML_TYPE_Q8_1,
        .nrows                    = 1,",
        "        .vec_dot                  = ECHO_TILE(ggml_vec_dot_q5_1_q8_1, echo_vec_dot_q5_1_q8_1),
        .vec_dot_type             = GGML_TYPE_Q8_1,
        .nrows                    = ECHO_TILE_ROWS,",
        1,
    ),
    (
        "        .vec_dot                  = ggml_vec_dot_q8_0_q8_0,
        .vec_dot_type             = GGML_TYPE_Q8_0,
#if defined (__ARM_FEATURE_MATMUL_INT8)",
        "        .vec_dot                  = ECHO_TILE(ggml_vec_dot_q8_0_q8_0, echo_vec_dot_q8_0_q8_0),
        .vec_dot_type             = GGML_TYPE_Q8_0,
#if defined (__ARM_FEATURE_MATMUL_INT8) || defined(__wasm_simd128__) /* echo */",
        1,
    ),
    (
        "    ggml_vec_dot_t const vec_dot      = type_traits_cpu[type].vec_dot;
    enum ggml_type const vec_dot_type = type_traits_cpu[type].vec_dot_type;
",
        "    ggml_vec_dot_t const vec_dot      = type_traits_cpu[type].vec_dot;
    enum ggml_type const vec_dot_type = type_traits_cpu[type].vec_dot_type;
#if defined(__wasm_simd128__) /* echo: a block of a plain 2-D product in one call (odd counts too); else a column's whole chunk of rows */
    echo_vec_dot_chunk_t const chunk_dot = ir1_end - ir1_start > 1 && ne02 == 1 && ne03 == 1 && ne12 == 1 && ne13 == 1 &&
        (ggml_is_contiguous(src1) || src1->type != vec_dot_type) ? echo_vec_dot_chunk(type) : NULL;
    echo_vec_dot_rows_t const rows_dot = !chunk_dot && num_rows_per_vec_dot == 1 ? echo_vec_dot_rows(type, src0->flags) : NULL;
    float chunk_tmp[16 * 16];
#endif
",
        1,
    ),
    (
        "    // block-tiling attempt
    const int64_t blck_0 = 16;",
        "    // block-tiling attempt
#if defined(__wasm_simd128__) /* echo */
    const int64_t blck_0 = rows_dot ? ir0_end - ir0_start : 16;
#else
    const int64_t blck_0 = 16;
#endif",
        1,
    ),
    (
        "        for (int64_t iir0 = ir0_start; iir0 < ir0_end; iir0 += blck_0) {
            for (int64_t ir1 = iir1; ir1 < iir1 + blck_1 && ir1 < ir1_end; ir1 += num_rows_per_vec_dot) {",
        "        for (int64_t iir0 = ir0_start; iir0 < ir0_end; iir0 += blck_0) {
#if defined(__wasm_simd128__) /* echo */
            if (chunk_dot) {
                const int nr = (int) (MIN(iir0 + blck_0, ir0_end) - iir0), nc = (int) (MIN(iir1 + blck_1, ir1_end) - iir1);
                chunk_dot(ne00, chunk_tmp, (const char *) src0->data + iir0 * nb01, nb01, (const char *) wdata + iir1 * row_size, row_size, nr, nc);
                for (int cn = 0; cn < nc; ++cn) {
                    memcpy((char *) dst->data + (iir1 + cn) * nb1 + iir0 * nb0, chunk_tmp + cn * 16, nr * sizeof(float));
                }
                continue;
            }
#endif
            for (int64_t ir1 = iir1; ir1 < iir1 + blck_1 && ir1 < ir1_end; ir1 += num_rows_per_vec_dot) {",
        1,
    ),
    (
        "                for (int64_t ir0 = iir0; ir0 < iir0 + blck_0 && ir0 < ir0_end; ir0 += num_rows_per_vec_dot) {
                    vec_dot(",
        "#if defined(__wasm_simd128__) /* echo */
                if (rows_dot) {
                    rows_dot(ne00, dst_col + iir0, src0_row + iir0 * nb01, nb01, src1_col, MIN(iir0 + blck_0, ir0_end) - iir0);
                    continue;
                }
#endif
                for (int64_t ir0 = iir0; ir0 < iir0 + blck_0 && ir0 < ir0_end; ir0 += num_rows_per_vec_dot) {
                    vec_dot(",
        1,
    ),
];

/// The threaded wasm build (`ECHO_WASM_THREADS`, see `shim/wasm/pthread.h`):
/// - `ggml_graph_plan` computes on one thread under `__wasi__` (we compile as wasm32-wasi);
/// - ggml's barrier spins, then sleeps (`shim/wasm/echo_barrier.h`). v7 0.1B Q5_1 in Node on 2
///   threads, decode ms/token, spinning only → 2^16 polls then sleeping: idle machine 28.3, 24.7
///   → 29.2, 27.2 (unchanged within noise); one busy process beside it 46–48 → 73–121 (worse);
///   two 104, 3,832 → 54, 70: pure spinning can collapse 40-fold when the cores are taken, which
///   in a browser they may be by any tab. 2^12, 2^14, 2^18 and 2^20 polls measured no better.
/// - a one-column product (decode) hands out its rows in shrinking chunks (a 1/(2 nth) share of
///   what is left, at least 16 rows), not ggml's fixed 64: with 64, the thread that finished
///   first waited for the other's last chunk at every product (v4 169M on 2 threads: about 90
///   waits of 4-30 µs and 36 sleeps per token, counted at the barrier). Node, 2 threads,
///   alternating runs, decode ms/token: v4 169M Q5_1 12.2-14.6 → 12.0-13.3, v7 0.1B Q5_1
///   14.6-15.8 → 12.4-14.7. Each row is one call's, whatever the chunk, so the bits are the same.
/// - unary operators and sub run on every thread, not on one (`UNARY_THREAD_PATCHES`,
///   `BINARY_THREAD_PATCHES`).
const GGML_CPU_THREAD_PATCHES: &[(&str, &str, usize)] = &[
    (
        "        case GGML_OP_FILL:
            {
                n_tasks = n_threads;
            } break;
        case GGML_OP_SUB:
",
        "        case GGML_OP_FILL:
#ifdef ECHO_WASM_THREADS
        case GGML_OP_SUB: /* echo: every thread takes its share (binary-ops.cpp) */
#endif
            {
                n_tasks = n_threads;
            } break;
#ifndef ECHO_WASM_THREADS
        case GGML_OP_SUB:
#endif
",
        1,
    ),
    (
        "                case GGML_UNARY_OP_TRUNC:
                    {
                        n_tasks = 1;
                    } break;",
        "                case GGML_UNARY_OP_TRUNC:
                    {
#ifdef ECHO_WASM_THREADS /* echo: every thread takes its share (unary-ops.cpp) */
                        n_tasks = n_threads;
#else
                        n_tasks = 1;
#endif
                    } break;",
        1,
    ),
    (
        "    // The first chunk comes from our thread_id, the rest will get auto-assigned.",
        "#ifdef ECHO_WASM_THREADS /* echo: decode's rows in shrinking chunks */
    if (nr1 == 1 && nth > 1 && echo_vec_dot_rows(src0->type, src0->flags)) {
        /* Rows are handed out from the shared counter (which starts at nth, set above), each
         * time a 1/(2 nth) share of those left and at least 16: big chunks first, small ones
         * last, so the threads finish together. */
        atomic_int * const next = &params->threadpool->current_chunk;
        int c = atomic_load_explicit(next, memory_order_relaxed);
        for (;;) {
            const int64_t start = c - nth;
            if (start >= nr0) break;
            const int64_t end = MIN(nr0, start + MAX(16, (nr0 - start) / (2 * nth)));
            if (!atomic_compare_exchange_weak_explicit(next, &c, (int) (end + nth), memory_order_relaxed, memory_order_relaxed)) continue;
            ggml_compute_forward_mul_mat_one_chunk(params, dst, src0->type, 1, start, end, 0, 1);
            c = atomic_load_explicit(next, memory_order_relaxed);
        }
        return;
    }
#endif
    // The first chunk comes from our thread_id, the rest will get auto-assigned.",
        1,
    ),
    (
        "#if defined(__wasi__)\n    // WASI doesn't support parallelism yet",
        "#if defined(__wasi__) && !defined(ECHO_WASM_THREADS) /* echo: threaded wasm build */\n    // WASI doesn't support parallelism yet",
        1,
    ),
    (
        "void ggml_barrier(struct ggml_threadpool * tp) {",
        "#ifdef ECHO_WASM_THREADS /* echo: spin, then sleep */\n#include \"echo_barrier.h\"\n#endif\nvoid ggml_barrier(struct ggml_threadpool * tp) {",
        1,
    ),
    (
        "        atomic_fetch_add_explicit(&tp->n_barrier_passed, 1, memory_order_seq_cst);\n",
        "        atomic_fetch_add_explicit(&tp->n_barrier_passed, 1, memory_order_seq_cst);\n#ifdef ECHO_WASM_THREADS\n        echo_barrier_open(&tp->n_barrier_passed);\n#endif\n",
        1,
    ),
    (
        "    while (atomic_load_explicit(&tp->n_barrier_passed, memory_order_relaxed) == n_passed) {",
        "#ifdef ECHO_WASM_THREADS\n    echo_barrier_wait(&tp->n_barrier_passed, n_passed);\n#endif\n    while (atomic_load_explicit(&tp->n_barrier_passed, memory_order_relaxed) == n_passed) {",
        1,
    ),
];

/// The threaded wasm build: unary operators (sigmoid, exp, tanh, relu, ...) run on every thread,
/// each on its share of the rows, and a lone row (decode's) is split by elements; ggml gave them
/// one task, so the other threads waited at the next barrier (v4 169M on 2 threads: about 35 waits
/// of over 4 µs per token, and the most polls of any operator, were at unary nodes). The same
/// function on each element, so the same bits. Node, 2 threads, alternating runs, decode
/// ms/token: v7 0.1B Q5_1 13.0-15.1 → 12.1-12.5 (v7 has seven per layer); v4 169M unchanged.
const UNARY_THREAD_PATCHES: &[(&str, &str, usize)] = &[(
    "static void apply_unary_op(const ggml_compute_params * params, ggml_tensor * dst) {
    const ggml_tensor * src0 = dst->src[0];
",
    "static void apply_unary_op(const ggml_compute_params * params, ggml_tensor * dst) {
    const ggml_tensor * src0 = dst->src[0];
#ifdef ECHO_WASM_THREADS /* echo: a lone row is split by elements */
    if (ggml_nrows(src0) == 1 && params->nth > 1 && ggml_is_contiguous(src0) && ggml_is_contiguous(dst)) {
        const int64_t n = src0->ne[0], per = (n + params->nth - 1) / params->nth;
        const int64_t i0 = MIN(n, per * params->ith), i1 = MIN(n, i0 + per);
        vec_unary_op<op>(i1 - i0, (dst_t *) dst->data + i0, (const src0_t *) src0->data + i0);
        return;
    }
#endif
",
    1,
)];

/// The threaded wasm build: a lone row (decode's) of an element-wise add, sub, mul or div is split
/// by elements between the threads, not left to the first while the others wait at the next
/// barrier; sub gets every thread, as add and mul have. The same operation on each element, so
/// the same bits. Node, 2 threads, alternating runs, decode ms/token: v7 0.1B Q5_1 13.9-17.2 →
/// 12.3-16.3, v4 169M Q5_1 10.0-12.7 → 10.4-11.4 (noisy; no slower).
const BINARY_THREAD_PATCHES: &[(&str, &str, usize)] = &[(
    "    const auto [ir0, ir1] = get_thread_range(params, src0);
    const bool is_src1_contiguous_rows = ggml_is_contiguous_rows(src1);
",
    "#ifdef ECHO_WASM_THREADS /* echo: a lone row is split by elements */
    if (ggml_nrows(src0) == 1 && params->nth > 1 && ne10 == ne00 && ggml_is_contiguous_rows(src1)) {
        const int64_t per = (ne0 + params->nth - 1) / params->nth;
        const int64_t i0 = MIN(ne0, per * params->ith), i1 = MIN(ne0, i0 + per);
        vec_binary_op_contiguous<op>(i1 - i0, (dst_t *) dst->data + i0, (const src0_t *) src0->data + i0,
                                     (const src1_t *) src1->data + i0);
        return;
    }
#endif
    const auto [ir0, ir1] = get_thread_range(params, src0);
    const bool is_src1_contiguous_rows = ggml_is_contiguous_rows(src1);
",
    1,
)];

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let wasm = env::var("CARGO_CFG_TARGET_ARCH").unwrap() == "wasm32";
    // The threaded wasm build: shared memory and atomics (RUSTFLAGS `-C target-feature=+atomics`).
    let wasm_threads = wasm && env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default().split(',').any(|f| f == "atomics");
    let shim = manifest.join("shim");

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=shim");
    println!("cargo:rerun-if-env-changed=CARGO_HOME");
    println!("cargo:rerun-if-env-changed=ECHO_GGML_HOST_CFLAGS");

    let crate_file = find_crate_archive();
    println!("cargo:rerun-if-changed={}", crate_file.display());
    let ggml = unpack(&crate_file, &out);
    let src = ggml.join("src");

    let mut c_files: Vec<PathBuf> = ["ggml.c", "ggml-alloc.c", "ggml-quants.c", "ggml-cpu/ggml-cpu.c", "ggml-cpu/quants.c"]
        .iter()
        .map(|f| src.join(f))
        .collect();
    let mut cpp_files: Vec<PathBuf> = [
        "ggml-backend.cpp",
        "ggml-backend-meta.cpp",
        "ggml-cpu/ggml-cpu.cpp",
        "ggml-cpu/repack.cpp",
        "ggml-cpu/traits.cpp",
        "ggml-cpu/binary-ops.cpp",
        "ggml-cpu/unary-ops.cpp",
        "ggml-cpu/vec.cpp",
        "ggml-cpu/ops.cpp",
        "ggml-cpu/hbm.cpp",
        "ggml-cpu/tiled/tiled.cpp",
        "ggml-cpu/tiled/tiled-kernel.cpp",
    ]
    .iter()
    .map(|f| src.join(f))
    .collect();
    // Our own small C helpers (by-pointer wrappers, layout probe), all targets.
    c_files.push(shim.join("echo_ggml.c"));
    // Our dot product kernels, all targets (echo_vec_dot_q.c is empty outside wasm).
    let kernel_files = [shim.join("echo_vec_dot_f16.c"), shim.join("echo_vec_dot_q.c")];

    let target_arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap();
    if wasm {
        c_files.push(src.join("ggml-cpu/arch/wasm/quants.c"));
        // ggml-threading.cpp needs std::mutex; ours locks with the pthread shim.
        c_files.push(shim.join("critical_section.c"));
    } else {
        cpp_files.push(src.join("ggml-threading.cpp"));
        match target_arch.as_str() {
            "x86_64" | "x86" => {
                c_files.push(src.join("ggml-cpu/arch/x86/quants.c"));
                cpp_files.push(src.join("ggml-cpu/arch/x86/repack.cpp"));
                // Compiled to nothing unless the CPU flags include AMX-INT8 + AVX512-VNNI.
                cpp_files.push(src.join("ggml-cpu/amx/amx.cpp"));
                cpp_files.push(src.join("ggml-cpu/amx/mmq.cpp"));
            }
            "aarch64" | "arm" => {
                c_files.push(src.join("ggml-cpu/arch/arm/quants.c"));
                cpp_files.push(src.join("ggml-cpu/arch/arm/repack.cpp"));
            }
            _ => {} // generic scalar code, see GGML_CPU_GENERIC below
        }
    }

    let base = |cpp: bool| {
        let mut b = cc::Build::new();
        b.cpp(cpp)
            .opt_level(3) // always: a debug-profile ggml is unusably slow
            .debug(false)
            .warnings(false)
            .flag("-w") // third-party code; its warnings are not ours to fix
            .include(&shim)
            .include(ggml.join("include"))
            .include(&src)
            .include(src.join("ggml-cpu"))
            .define("NDEBUG", None)
            .define("GGML_SCHED_MAX_COPIES", "4")
            .define("_XOPEN_SOURCE", "600")
            .flag("-fno-math-errno");
        if cpp {
            b.std("c++17");
        } else {
            b.std("c11");
        }
        if wasm {
            // clang-19 from Debian with wasi-libc headers; libc++ for the C++ parts.
            if env::var_os("CC_wasm32_unknown_unknown").is_none() {
                b.compiler(if cpp { "clang++-19" } else { "clang-19" });
            }
            if env::var_os("AR_wasm32_unknown_unknown").is_none() {
                b.archiver("llvm-ar-19");
            }
            // Added after cc's own --target=wasm32-unknown-unknown: the last one wins, and
            // wasm32-wasi makes clang use the wasi-libc headers.
            b.flag("--target=wasm32-wasi")
                .flag("-msimd128")
                .include(shim.join("wasm")) // our pthread.h
                .define("_WASI_EMULATED_SIGNAL", None);
            if wasm_threads {
                b.flag("-matomics").flag("-mbulk-memory").define("ECHO_WASM_THREADS", None);
            }
            if cpp {
                b.flag("-fno-exceptions").flag("-fno-rtti").cpp_link_stdlib(None);
            }
        } else {
            b.define("_GNU_SOURCE", None);
            if !matches!(target_arch.as_str(), "x86_64" | "x86" | "aarch64" | "arm") {
                b.define("GGML_CPU_GENERIC", None);
            }
            // Host CPU flags: native by default (fastest for tests and the CLI);
            // ECHO_GGML_HOST_CFLAGS overrides, e.g. "-march=x86-64-v3" for portable builds.
            match env::var("ECHO_GGML_HOST_CFLAGS") {
                Ok(flags) => {
                    for f in flags.split_whitespace() {
                        b.flag(f);
                    }
                }
                Err(_) => {
                    b.flag_if_supported("-march=native");
                }
            }
        }
        b
    };

    // One archive for C and C++ objects: they reference each other both ways, which
    // GNU ld cannot resolve across two separate static libraries.
    let mut c_objects = base(false).files(&c_files).compile_intermediates();
    // In wasm, without LLVM's loop strength reduction: it turns a block loop's field addresses
    // into a pointer stepped by the block plus an add per field, and an add that may wrap cannot
    // be folded into a wasm load's offset; so V8 computed each address with an instruction of
    // its own. Without it, a Q5_1 block takes 66 x86 instructions instead of 77, 16 F16 weights
    // 30 instead of 33. With the unsigned widening of Q4_1/Q5_1 blocks, Node, 1 thread, best of
    // 8-10 alternating runs, decode ms/token: v4 169M Q5_1 18.65 -> 18.05, v7 0.1B 21.42 -> 20.39
    // (medians 22.05 -> 21.56); prompts the same or faster.
    let mut kernels = base(false);
    if wasm {
        kernels.flag("-mllvm").flag("-disable-lsr");
    }
    c_objects.extend(kernels.files(&kernel_files).compile_intermediates());
    base(true).files(&cpp_files).objects(&c_objects).compile("echo_ggml");

    if wasm {
        // libc++/libc++abi for ggml's C++ parts and wasi-libc for the C library; our Rust
        // code provides malloc & co. and the WASI imports (see src/wasm.rs).
        // `rustc-link-lib` (unlike `rustc-link-arg`) propagates from this dependency to
        // the final cdylib/test binary. Unbundled: the final link finds them via -L.
        // /usr/lib/wasm32-wasi/libc++{,abi}.a are links to LLVM 19's wasm32-wasi libc++.
        let libdir = env::var("ECHO_WASI_LIBDIR").unwrap_or_else(|_| "/usr/lib/wasm32-wasi".into());
        println!("cargo:rerun-if-env-changed=ECHO_WASI_LIBDIR");
        for lib in ["c++", "c++abi", "c"] {
            let path = Path::new(&libdir).join(format!("lib{lib}.a"));
            if !path.exists() {
                panic!(
                    "{} not found: install wasi-libc, libc++-19-dev-wasm32 and libc++abi-19-dev-wasm32 \
                     (or set ECHO_WASI_LIBDIR to a folder with libc.a, libc++.a and libc++abi.a)",
                    path.display()
                );
            }
        }
        println!("cargo:rustc-link-search=native={libdir}");
        println!("cargo:rustc-link-lib=static:-bundle=c++");
        println!("cargo:rustc-link-lib=static:-bundle=c++abi");
        println!("cargo:rustc-link-lib=static:-bundle=c");
    }
}

/// `$CARGO_HOME/registry/cache/*/llama-cpp-sys-2-0.1.161.crate` (a .tar.gz).
fn find_crate_archive() -> PathBuf {
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("neither CARGO_HOME nor HOME is set");
    let cache = cargo_home.join("registry").join("cache");
    let name = format!("{PKG}.crate");
    let found = fs::read_dir(&cache)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join(&name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "ggml sources not found: {name} is not in {}/*/.\n\
             Run `cargo fetch` in the workspace (it downloads the pinned package listed in Cargo.lock).",
            cache.display()
        )
    })
}

/// Unpacks `llama.cpp/ggml/{include,src}` into `out/ggml` once (stamp file) and patches it.
fn unpack(crate_file: &Path, out: &Path) -> PathBuf {
    let ggml = out.join("ggml");
    // The stamp names the package and the patches, so changed patches replace an unpacked tree.
    let stamp = out.join("ggml.stamp");
    let patches = [WASM_QUANTS_PATCHES, F16_DOT_PATCHES, WASM_QUANT_TILE_PATCHES, GGML_CPU_THREAD_PATCHES, UNARY_THREAD_PATCHES, BINARY_THREAD_PATCHES];
    let stamp_text = format!("{PKG} {:?}", patches);
    if fs::read_to_string(&stamp).ok().as_deref() == Some(stamp_text.as_str()) && ggml.is_dir() {
        return ggml;
    }
    let tmp = out.join("ggml-unpack");
    let _ = fs::remove_dir_all(&tmp);
    let _ = fs::remove_dir_all(&ggml);
    fs::create_dir_all(&tmp).unwrap();
    let inner = format!("{PKG}/llama.cpp/ggml");
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(crate_file)
        .arg("-C")
        .arg(&tmp)
        .arg(format!("{inner}/include"))
        .arg(format!("{inner}/src"))
        .status()
        .expect("failed to run `tar` (needed to unpack the ggml sources)");
    assert!(status.success(), "tar failed to unpack {}", crate_file.display());
    fs::rename(tmp.join(&inner), &ggml).unwrap();
    let _ = fs::remove_dir_all(&tmp);

    patch(&ggml.join("src/ggml-cpu/arch/wasm/quants.c"), WASM_QUANTS_PATCHES);
    patch(&ggml.join("src/ggml-cpu/ggml-cpu.c"), F16_DOT_PATCHES);
    patch(&ggml.join("src/ggml-cpu/ggml-cpu.c"), WASM_QUANT_TILE_PATCHES);
    patch(&ggml.join("src/ggml-cpu/ggml-cpu.c"), GGML_CPU_THREAD_PATCHES);
    patch(&ggml.join("src/ggml-cpu/unary-ops.cpp"), UNARY_THREAD_PATCHES);
    patch(&ggml.join("src/ggml-cpu/binary-ops.cpp"), BINARY_THREAD_PATCHES);
    fs::write(&stamp, stamp_text).unwrap();
    ggml
}

fn patch(file: &Path, patches: &[(&str, &str, usize)]) {
    let mut text = fs::read_to_string(file).unwrap();
    for (from, to, count) in patches {
        let found = text.matches(from).count();
        assert!(
            found == *count,
            "patching {}: expected {count} occurrence(s) of `{from}`, found {found}. \
             The pinned ggml sources changed; review the patch in build.rs.",
            file.display()
        );
        text = text.replace(from, to);
    }
    fs::write(file, text).unwrap();
}
