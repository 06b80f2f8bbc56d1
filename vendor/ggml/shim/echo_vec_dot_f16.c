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

/* How the wasm kernel makes halves floats: exactly; or scaled (see halves_to_floats), with a
 * check for exponent 31 or, where the weights are known to have none, without. */
enum conversion { EXACT, SCALED_CHECKED, SCALED };

#if defined(__wasm_simd128__)
#include <wasm_simd128.h>

/* Eight halves to two vectors of four floats, in eight-lane integer steps (wasm has no f16
 * instruction; a table lookup per half took 2.4x as long). Each float's high 16 bits are the
 * half's sign, exponent and top seven mantissa bits (an arithmetic shift by 3 and a mask), its low
 * 16 bits the last three mantissa bits; the interleaving shuffle puts them together and a multiply
 * by 2^112 rebiases the exponent, which makes subnormals right too. Exponent 31 (infinities and
 * NaNs) gets the float's all-ones exponent first. Exact for every half; a signaling NaN comes out
 * quiet, as F16C's does.
 * Scaled: both steps are left out, for a caller that has scaled the other factor by 2^112
 * instead (each product then has the same bits: both are exact scalings) and, unless the halves
 * are known to be finite, checks afterwards that none had exponent 31: *top holds the largest
 * (half << 1), 0xf800 or more if one had. */
static inline __attribute__((always_inline)) void halves_to_floats(const uint16_t * h, v128_t f[2], enum conversion how, v128_t * top) {
    const v128_t v = wasm_v128_load(h);
    v128_t high = wasm_v128_and(wasm_i16x8_shr(v, 3), wasm_i16x8_splat((int16_t) 0x8fff));
    if (how == EXACT) {
        const v128_t inf_nan = wasm_i16x8_gt(wasm_v128_and(v, wasm_i16x8_splat(0x7fff)), wasm_i16x8_splat(0x7bff));
        high = wasm_v128_or(high, wasm_v128_and(inf_nan, wasm_i16x8_splat(0x7f80)));
    } else if (how == SCALED_CHECKED) {
        *top = wasm_u16x8_max(*top, wasm_i16x8_shl(v, 1));
    }
    const v128_t low = wasm_i16x8_shl(v, 13);
    f[0] = wasm_i16x8_shuffle(low, high, 0, 8, 1, 9, 2, 10, 3, 11);
    f[1] = wasm_i16x8_shuffle(low, high, 4, 12, 5, 13, 6, 14, 7, 15);
    if (how == EXACT) {
        const v128_t scale = wasm_f32x4_splat(0x1p112f);
        f[0] = wasm_f32x4_mul(f[0], scale);
        f[1] = wasm_f32x4_mul(f[1], scale);
    }
}

static double reduce(v128_t sum[4]) {
    const v128_t s = wasm_f32x4_add(wasm_f32x4_add(sum[0], sum[2]), wasm_f32x4_add(sum[1], sum[3]));
    /* Summed in float, then widened. */
    return wasm_f32x4_extract_lane(s, 0) + wasm_f32x4_extract_lane(s, 1) +
           wasm_f32x4_extract_lane(s, 2) + wasm_f32x4_extract_lane(s, 3);
}

/* Rows x[0..r) times columns y[0..c) (r, c <= 2): each weight converted once for every column,
 * each product summed in the same order whatever r and c, so a 2x2 tile gives a single dot
 * product's bits. sumf[ci * 2 + ri] = x[ri] . y[ci]. Scaled: the columns are y times 2^112; -1
 * is returned if the check found an infinity or NaN (the caller then goes the exact way). */
static inline __attribute__((always_inline)) int dot_simd(int n, int r, int c, const uint16_t * const x[2], const float * const y[2], double sumf[4], enum conversion how) {
    v128_t sum[4][4];
    for (int k = 0; k < 4; k++) {
        for (int j = 0; j < 4; j++) sum[k][j] = wasm_f32x4_splat(0.0f);
    }
    v128_t top = wasm_i16x8_splat(0);
    const int np = n & ~15;
    for (int i = 0; i < np; i += 16) {
        for (int h = 0; h < 2; h++) {
            v128_t w[2][2];
            for (int ri = 0; ri < r; ri++) halves_to_floats(x[ri] + i + 8 * h, w[ri], how, &top);
            for (int ci = 0; ci < c; ci++) {
                for (int k = 0; k < 2; k++) {
                    const int j = 2 * h + k;
                    const v128_t a = wasm_v128_load(y[ci] + i + 4 * j);
                    for (int ri = 0; ri < r; ri++) sum[ci * 2 + ri][j] = wasm_f32x4_add(sum[ci * 2 + ri][j], wasm_f32x4_mul(w[ri][k], a));
                }
            }
        }
    }
    if (how == SCALED_CHECKED && wasm_v128_any_true(wasm_u16x8_ge(top, wasm_i16x8_splat((int16_t) 0xf800)))) return -1;
    for (int ci = 0; ci < c; ci++) {
        for (int ri = 0; ri < r; ri++) sumf[ci * 2 + ri] = reduce(sum[ci * 2 + ri]);
    }
    return np;
}

#elif defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
#include <immintrin.h>

static double reduce(__m256 sum[4]) {
    const __m256 s = _mm256_add_ps(_mm256_add_ps(sum[0], sum[2]), _mm256_add_ps(sum[1], sum[3]));
    float lanes[8];
    _mm256_storeu_ps(lanes, s);
    double sumf = 0.0;
    for (int k = 0; k < 8; k++) {
        sumf += lanes[k];
    }
    return sumf;
}

/* As the wasm kernel; F16C converts eight halves at once; four accumulators of eight lanes, 32
 * per step. */
static inline __attribute__((always_inline)) int dot_simd(int n, int r, int c, const uint16_t * const x[2], const float * const y[2], double sumf[4], enum conversion how) {
    (void) how;
    __m256 sum[4][4];
    for (int k = 0; k < 4; k++) {
        for (int j = 0; j < 4; j++) sum[k][j] = _mm256_setzero_ps();
    }
    const int np = n & ~31;
    for (int i = 0; i < np; i += 32) {
        for (int j = 0; j < 4; j++) {
            __m256 w[2];
            for (int ri = 0; ri < r; ri++) w[ri] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (x[ri] + i + 8 * j)));
            for (int ci = 0; ci < c; ci++) {
                const __m256 a = _mm256_loadu_ps(y[ci] + i + 8 * j);
                for (int ri = 0; ri < r; ri++) sum[ci * 2 + ri][j] = _mm256_fmadd_ps(w[ri], a, sum[ci * 2 + ri][j]);
            }
        }
    }
    for (int ci = 0; ci < c; ci++) {
        for (int ri = 0; ri < r; ri++) sumf[ci * 2 + ri] = reduce(sum[ci * 2 + ri]);
    }
    return np;
}

#else
static inline __attribute__((always_inline)) int dot_simd(int n, int r, int c, const uint16_t * const x[2], const float * const y[2], double sumf[4], enum conversion how) {
    (void) n; (void) r; (void) c; (void) x; (void) y; (void) how;
    for (int k = 0; k < 4; k++) sumf[k] = 0.0;
    return 0;
}
#endif

/* Rows x[0..r) times columns y[0..c) (r, c <= 2): s[ci * bs + ri] = x[ri] . y[ci], the tail past
 * the SIMD steps added in double, as ggml's F16 kernel does. ys, if not NULL, is the one column
 * times 2^112 (c 1), for SIMD steps without the exact conversion's two steps, taken again the
 * exact way if the check (unless `finite`: the weights have no exponent 31) found an infinity or
 * NaN. Constant tile sizes at each call, so each is its own loop with its accumulators in
 * registers. */
static inline __attribute__((always_inline)) void dot_tile(int n, int r, int c, float * s, size_t bs,
                                                           const uint16_t * const x[2], const float * const y[2],
                                                           const float * ys, int finite) {
    double sumf[4];
    const float * const yscaled[2] = { ys, ys };
    int np = ys ? dot_simd(n, r, c, x, yscaled, sumf, finite ? SCALED : SCALED_CHECKED) : -1;
    if (np < 0) np = dot_simd(n, r, c, x, y, sumf, EXACT);
    for (int ci = 0; ci < c; ci++) {
        for (int ri = 0; ri < r; ri++) {
            double d = sumf[ci * 2 + ri];
            for (int i = np; i < n; i++) {
                d += (double) (ggml_table_f32_f16[x[ri][i]] * y[ci][i]);
            }
            s[ci * bs + ri] = (float) d;
        }
    }
}

/* nrc 1: s[0] = x . y; nrc 2 (ggml's 2x2 tile, type traits nrows = 2): s[0] = x0 . y0,
 * s[1] = x1 . y0, s[bs] = x0 . y1, s[bs + 1] = x1 . y1, rows bx bytes apart, columns by. A
 * prompt's chunk then converts each weight once per two columns instead of once per column. */
void echo_vec_dot_f16_f32(int n, float * restrict s, size_t bs, const void * restrict vx, size_t bx,
                          const void * restrict vy, size_t by, int nrc) {
    const uint16_t * const x[2] = { vx, (const uint16_t *) ((const char *) vx + bx) };
    const float * const y[2] = { vy, (const float *) ((const char *) vy + by) };
    if (nrc == 2) dot_tile(n, 2, 2, s, bs, x, y, NULL, 0);
    else dot_tile(n, 1, 1, s, bs, x, y, NULL, 0);
}

#if defined(__wasm_simd128__)
/* Rows x[0..nr) (bx bytes apart) times one column: s[ri] = x[ri] . y, a matrix-vector product
 * (decode; mul_mat's one-column chunks, patched in build.rs), a single product's bits. The column
 * is scaled by 2^112 once, on the stack, so each weight's conversion needs no multiply (a product
 * then has the same bits), nor a step for infinities and NaNs, which a check per row catches; a
 * column of over ROWS_MAX_SCALED floats, or with a value of 2^16 or more (or NaN), whose scaling
 * would not be exact, takes the exact conversion. A row at a time: the weights are read as one
 * stream (two rows at a time, two streams, took 25% longer, v4 169M in Node on an EPYC).
 * The _finite kernel is for weights known to have no infinity or NaN (the tensor's flag
 * ECHO_TENSOR_FLAG_FINITE_HALVES, set where the model was checked at load): no check. */
#define ROWS_MAX_SCALED 8192

/* out = y * 2^112, four at a time; 0 if that is not exact for some value (2^16 or more, NaN). */
static int scale_column(int n, const float * y, float * out) {
    v128_t ok = wasm_i32x4_splat(-1);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        const v128_t v = wasm_v128_load(y + i);
        ok = wasm_v128_and(ok, wasm_f32x4_lt(wasm_f32x4_abs(v), wasm_f32x4_splat(0x1p16f)));
        wasm_v128_store(out + i, wasm_f32x4_mul(v, wasm_f32x4_splat(0x1p112f)));
    }
    for (; i < n; i++) {
        if (!(__builtin_fabsf(y[i]) < 0x1p16f)) return 0;
        out[i] = y[i] * 0x1p112f;
    }
    return wasm_i32x4_all_true(ok);
}
static inline __attribute__((always_inline)) void dot_rows(int n, float * s, const void * vx, size_t bx, const void * vy,
                                                           int64_t nr, int finite) {
    const float * const y[2] = { vy, NULL };
    float scaled[n <= ROWS_MAX_SCALED ? n : 1];
    const float * ys = n <= ROWS_MAX_SCALED && scale_column(n, y[0], scaled) ? scaled : NULL;
    for (int64_t ri = 0; ri < nr; ri++) {
        const uint16_t * const x[2] = { (const uint16_t *) ((const char *) vx + ri * bx), NULL };
        dot_tile(n, 1, 1, s + ri, 0, x, y, ys, finite);
    }
}
void echo_vec_dot_f16_f32_rows(int n, float * restrict s, const void * restrict vx, size_t bx,
                               const void * restrict vy, int64_t nr) {
    dot_rows(n, s, vx, bx, vy, nr, 0);
}
void echo_vec_dot_f16_f32_rows_finite(int n, float * restrict s, const void * restrict vx, size_t bx,
                                      const void * restrict vy, int64_t nr) {
    dot_rows(n, s, vx, bx, vy, nr, 1);
}
#endif
