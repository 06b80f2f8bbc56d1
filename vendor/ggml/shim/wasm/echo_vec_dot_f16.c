/* The F16 dot product of the wasm build: F16 weights times F32 activations.
 *
 * ggml's own F16 path first rounds the activations to F16 and then, for every weight row,
 * converts both operands back to F32, so the activations are converted again for each of the
 * 65,536 rows of a World head. Here ggml leaves them in F32 (vec_dot_type F32, patched in
 * build.rs) and only the weights are converted, each through ggml's table: in V8 that measured
 * faster than any SIMD arithmetic conversion (wasm has no f16 instruction). The sums run in
 * ggml's wasm order (four accumulators of four lanes, 16 per step, leftovers in double). */
#include <stddef.h>
#include <stdint.h>
#include <wasm_simd128.h>

extern float ggml_table_f32_f16[1 << 16]; /* ggml-cpu.c: the value of every half */

static inline v128_t halves_to_floats(const uint16_t * h) {
    const float f[4] = {
        ggml_table_f32_f16[h[0]], ggml_table_f32_f16[h[1]],
        ggml_table_f32_f16[h[2]], ggml_table_f32_f16[h[3]],
    };
    return wasm_v128_load(f);
}

void echo_vec_dot_f16_f32(int n, float * restrict s, size_t bs, const void * restrict vx, size_t bx,
                          const void * restrict vy, size_t by, int nrc) {
    (void) bs; (void) bx; (void) by; (void) nrc; /* one row at a time (nrows = 1) */
    const uint16_t * x = vx;
    const float * y = vy;
    v128_t sum[4] = { wasm_f32x4_splat(0.0f), wasm_f32x4_splat(0.0f), wasm_f32x4_splat(0.0f), wasm_f32x4_splat(0.0f) };
    const int np = n & ~15;
    for (int i = 0; i < np; i += 16) {
        for (int j = 0; j < 4; j++) {
            const v128_t p = wasm_f32x4_mul(halves_to_floats(x + i + 4 * j), wasm_v128_load(y + i + 4 * j));
            sum[j] = wasm_f32x4_add(sum[j], p);
        }
    }
    sum[0] = wasm_f32x4_add(sum[0], sum[2]);
    sum[1] = wasm_f32x4_add(sum[1], sum[3]);
    sum[0] = wasm_f32x4_add(sum[0], sum[1]);
    double sumf = wasm_f32x4_extract_lane(sum[0], 0) + wasm_f32x4_extract_lane(sum[0], 1) +
                  wasm_f32x4_extract_lane(sum[0], 2) + wasm_f32x4_extract_lane(sum[0], 3);
    for (int i = np; i < n; i++) {
        sumf += (double) (ggml_table_f32_f16[x[i]] * y[i]);
    }
    *s = (float) sumf;
}
