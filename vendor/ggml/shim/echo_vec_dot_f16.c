/* The F16 dot product: F16 weights times F32 activations, on every target.
 *
 * ggml's own F16 path first rounds the activations to F16 (an error of up to 2^-11 each; the
 * tiny FP16 fixtures' logits moved by up to 2e-3 from an exact F32 computation) and, in wasm,
 * converts them back for every weight row again: 65,536 times per token for a World head.
 * Here ggml leaves them in F32 (vec_dot_type F32, patched in build.rs) and only the weights are
 * converted. Native and wasm make the same products, so a seed gives the same tokens on both. */
#include <stddef.h>
#include <stdint.h>

extern float ggml_table_f32_f16[1 << 16]; /* ggml-cpu.c: the value of every half */

#if defined(__wasm_simd128__)
#include <wasm_simd128.h>

/* Through the table: in V8 that measured faster than any SIMD arithmetic conversion (wasm has
 * no f16 instruction). Four accumulators of four lanes, 16 elements per step. */
static inline v128_t halves_to_floats(const uint16_t * h) {
    const float f[4] = {
        ggml_table_f32_f16[h[0]], ggml_table_f32_f16[h[1]],
        ggml_table_f32_f16[h[2]], ggml_table_f32_f16[h[3]],
    };
    return wasm_v128_load(f);
}

static int dot_simd(int n, const uint16_t * x, const float * y, double * sumf) {
    v128_t sum[4] = { wasm_f32x4_splat(0.0f), wasm_f32x4_splat(0.0f), wasm_f32x4_splat(0.0f), wasm_f32x4_splat(0.0f) };
    const int np = n & ~15;
    for (int i = 0; i < np; i += 16) {
        for (int j = 0; j < 4; j++) {
            const v128_t p = wasm_f32x4_mul(halves_to_floats(x + i + 4 * j), wasm_v128_load(y + i + 4 * j));
            sum[j] = wasm_f32x4_add(sum[j], p);
        }
    }
    sum[0] = wasm_f32x4_add(wasm_f32x4_add(sum[0], sum[2]), wasm_f32x4_add(sum[1], sum[3]));
    *sumf = wasm_f32x4_extract_lane(sum[0], 0) + wasm_f32x4_extract_lane(sum[0], 1) +
            wasm_f32x4_extract_lane(sum[0], 2) + wasm_f32x4_extract_lane(sum[0], 3);
    return np;
}

#elif defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
#include <immintrin.h>

/* F16C converts eight halves at once; four accumulators of eight lanes, 32 per step. */
static int dot_simd(int n, const uint16_t * x, const float * y, double * sumf) {
    __m256 sum[4] = { _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps() };
    const int np = n & ~31;
    for (int i = 0; i < np; i += 32) {
        for (int j = 0; j < 4; j++) {
            const __m256 w = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (x + i + 8 * j)));
            sum[j] = _mm256_fmadd_ps(w, _mm256_loadu_ps(y + i + 8 * j), sum[j]);
        }
    }
    const __m256 s = _mm256_add_ps(_mm256_add_ps(sum[0], sum[2]), _mm256_add_ps(sum[1], sum[3]));
    float lanes[8];
    _mm256_storeu_ps(lanes, s);
    *sumf = 0.0;
    for (int k = 0; k < 8; k++) {
        *sumf += lanes[k];
    }
    return np;
}

#else
static int dot_simd(int n, const uint16_t * x, const float * y, double * sumf) {
    (void) n; (void) x; (void) y;
    *sumf = 0.0;
    return 0;
}
#endif

void echo_vec_dot_f16_f32(int n, float * restrict s, size_t bs, const void * restrict vx, size_t bx,
                          const void * restrict vy, size_t by, int nrc) {
    (void) bs; (void) bx; (void) by; (void) nrc; /* one row at a time (nrows = 1) */
    const uint16_t * x = vx;
    const float * y = vy;
    double sumf;
    for (int i = dot_simd(n, x, y, &sumf); i < n; i++) {
        sumf += (double) (ggml_table_f32_f16[x[i]] * y[i]);
    }
    *s = (float) sumf;
}
