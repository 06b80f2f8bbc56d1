/* The Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 dot products in wasm, in ggml's 2x2 tiles (type traits
 * nrows 2, patched in build.rs).
 *
 * A prompt's chunk multiplies every weight row by many activation columns; ggml's wasm kernels
 * take one row and one column at a time, so each block of weights is unpacked (nibbles, fifth
 * bits, widening to i16) once per column, and each column's block is widened once per row. Here a
 * 2x2 tile does each once per two, and the fifth bits are loaded from a table straight into the
 * vectors (ggml's kernels store them to memory and load them again). Each i32 lane sums the same eight products as ggml's kernel and the
 * floats are added in ggml's order, so every result has the bits of ggml's own kernel, whatever
 * the tile. (i16x8.extmul + extadd_pairwise, fewer wasm operations, measured slower in Chromium:
 * 57-62 prompt tokens/s against 65-72 here, v4 169M Q5_1.) Native builds keep ggml's kernels. */
#if defined(__wasm_simd128__)
#include <stddef.h>
#include <stdint.h>
#include <wasm_simd128.h>

#define GGML_COMMON_DECL_C
#include "ggml-common.h"
#include "ggml.h"

typedef void (*echo_vec_dot_rows_t)(int n, float * s, const void * vx, size_t bx, const void * vy, int64_t nr);
typedef void (*echo_vec_dot_chunk_t)(int n, float * s, const void * vx, size_t bx, const void * vy, size_t by, int nr, int nc);
void echo_vec_dot_f16_f32_rows(int n, float * s, const void * vx, size_t bx, const void * vy, int64_t nr); /* echo_vec_dot_f16.c */
void echo_vec_dot_f16_f32_rows_finite(int n, float * s, const void * vx, size_t bx, const void * vy, int64_t nr);

/* A weight tensor's flag: an F16 tensor without infinities or NaNs (src/ffi.rs, set at load). */
#define ECHO_TENSOR_FLAG_FINITE_HALVES (1 << 30)

extern float ggml_table_f32_f16[1 << 16]; /* ggml-cpu.c: the value of every half */
#define HALF(h) ggml_table_f32_f16[(h)]

enum kind { Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 };

/* FIFTH[b]: byte j is 0x10 where bit j of b is set. */
#define FIFTH1(b, j) ((uint64_t) (((b) >> (j)) & 1) << (8 * (j) + 4))
#define FIFTH(b) (FIFTH1(b, 0) | FIFTH1(b, 1) | FIFTH1(b, 2) | FIFTH1(b, 3) | FIFTH1(b, 4) | FIFTH1(b, 5) | FIFTH1(b, 6) | FIFTH1(b, 7))
#define FIFTH4(b) FIFTH(b), FIFTH((b) + 1), FIFTH((b) + 2), FIFTH((b) + 3)
#define FIFTH16(b) FIFTH4(b), FIFTH4((b) + 4), FIFTH4((b) + 8), FIFTH4((b) + 12)
#define FIFTH64(b) FIFTH16(b), FIFTH16((b) + 16), FIFTH16((b) + 32), FIFTH16((b) + 48)
static const uint64_t FIFTH[256] = { FIFTH64(0), FIFTH64(64), FIFTH64(128), FIFTH64(192) };

/* 0x10 in lane j of each half where bit j (lo) or bit 16 + j (hi) of qh is set: a table entry per
 * byte of qh, loaded straight into its half of the vector (17% less time per Q5_1 row than
 * comparing against a splat of qh, measured in V8). */
static inline void fifth_bits(uint32_t qh, v128_t * lo, v128_t * hi) {
    *lo = wasm_v128_load64_lane(&FIFTH[(qh >> 8) & 255], wasm_v128_load64_zero(&FIFTH[qh & 255]), 1);
    *hi = wasm_v128_load64_lane(&FIFTH[qh >> 24], wasm_v128_load64_zero(&FIFTH[(qh >> 16) & 255]), 1);
}

/* Block ib of a row as 32 signed bytes, elements 0..15 and 16..31 (of the 4- and 5-bit kinds, the
 * low nibbles and the high), with the block's scale d and (for the _1 kinds) its minimum m. */
static inline __attribute__((always_inline)) void unpack(enum kind k, const void * row, int ib, v128_t * lo, v128_t * hi, float * d, float * m) {
    if (k == Q8_0) {
        const block_q8_0 * b = (const block_q8_0 *) row + ib;
        *lo = wasm_v128_load(b->qs), *hi = wasm_v128_load(b->qs + 16), *d = HALF(b->d), *m = 0.0f;
        return;
    }
    const v128_t m4b = wasm_i8x16_splat(0x0F);
    const uint8_t * qs;
    uint32_t qh = 0;
    if (k == Q4_0) {
        const block_q4_0 * b = (const block_q4_0 *) row + ib;
        qs = b->qs, *d = HALF(b->d), *m = 0.0f;
    } else if (k == Q4_1) {
        const block_q4_1 * b = (const block_q4_1 *) row + ib;
        qs = b->qs, *d = HALF(b->d), *m = HALF(b->m);
    } else if (k == Q5_0) {
        const block_q5_0 * b = (const block_q5_0 *) row + ib;
        qs = b->qs, *d = HALF(b->d), *m = 0.0f;
        __builtin_memcpy(&qh, b->qh, 4);
    } else {
        const block_q5_1 * b = (const block_q5_1 *) row + ib;
        qs = b->qs, *d = HALF(b->d), *m = HALF(b->m);
        __builtin_memcpy(&qh, b->qh, 4);
    }
    const v128_t v = wasm_v128_load(qs);
    *lo = wasm_v128_and(v, m4b);
    *hi = wasm_v128_and(wasm_u16x8_shr(v, 4), m4b); /* V8 makes u8x16.shr's mask again every time */
    if (k == Q4_0) { /* values -8..7 */
        *lo = wasm_i8x16_sub(*lo, wasm_i8x16_splat(8));
        *hi = wasm_i8x16_sub(*hi, wasm_i8x16_splat(8));
    } else if (k != Q4_1) {
        v128_t bl, bh;
        fifth_bits(qh, &bl, &bh);
        *lo = wasm_v128_or(*lo, bl);
        *hi = wasm_v128_or(*hi, bh);
        if (k == Q5_0) { /* values -16..15 */
            *lo = wasm_i8x16_sub(*lo, wasm_i8x16_splat(0x10));
            *hi = wasm_i8x16_sub(*hi, wasm_i8x16_splat(0x10));
        }
    }
}

/* 16 signed bytes as two i16x8 halves. */
static inline void widen(v128_t v, v128_t w[2]) {
    w[0] = wasm_i16x8_extend_low_i8x16(v);
    w[1] = wasm_i16x8_extend_high_i8x16(v);
}

/* 16 bytes of 0..127 as two i16x8 halves: the same values, but V8 makes the high half with an
 * interleave and a zeroing it need not execute, not an interleave and a shift. */
static inline void widen_unsigned(v128_t v, v128_t w[2]) {
    w[0] = wasm_u16x8_extend_low_u8x16(v);
    w[1] = wasm_u16x8_extend_high_u8x16(v);
}

/* The 32 products of a block with a column's block (both widened, elements 0..31 in order),
 * summed in i32 lane k over elements 2k, 2k+1 of each group of eight, as ggml's kernels do. */
static inline v128_t dot_block(const v128_t x[4], const v128_t y[4]) {
    return wasm_i32x4_add(wasm_i32x4_add(wasm_i32x4_dot_i16x8(x[0], y[0]), wasm_i32x4_dot_i16x8(x[1], y[1])),
                          wasm_i32x4_add(wasm_i32x4_dot_i16x8(x[2], y[2]), wasm_i32x4_dot_i16x8(x[3], y[3])));
}

/* Block ib of a column: its quants, scale and (Q8_1) d * sum(quants). */
static inline __attribute__((always_inline)) void column_block(enum kind k, const char * col, int ib, const int8_t ** q, float * d, float * s) {
    if (k == Q4_0 || k == Q5_0 || k == Q8_0) {
        const block_q8_0 * b = (const block_q8_0 *) col + ib;
        *q = b->qs, *d = HALF(b->d), *s = 0.0f;
    } else {
        const block_q8_1 * b = (const block_q8_1 *) col + ib;
        *q = b->qs, *d = HALF(b->d), *s = HALF(b->s);
    }
}

/* A block unpacked and widened, ready for dot_block: its 32 values as i16, its scale d, and m:
 * a row's minimum (the _1 kinds), a column's d * sum(quants) (Q8_1). Made once per block for
 * all the rows a column meets (decode) or all the columns a row pair meets (prompt). */
struct wide_block {
    v128_t q[4];
    float d, m;
};

static inline __attribute__((always_inline)) void widen_row_block(enum kind k, const char * row, int ib, struct wide_block * b) {
    v128_t lo, hi;
    unpack(k, row, ib, &lo, &hi, &b->d, &b->m);
    if (k == Q4_1 || k == Q5_1) widen_unsigned(lo, b->q), widen_unsigned(hi, b->q + 2); /* 0..31 */
    else widen(lo, b->q), widen(hi, b->q + 2);
}

static inline __attribute__((always_inline)) void widen_column_block(enum kind k, const char * col, int ib, struct wide_block * b) {
    const int8_t * q;
    column_block(k, col, ib, &q, &b->d, &b->m);
    widen(wasm_v128_load(q), b->q), widen(wasm_v128_load(q + 16), b->q + 2);
}

/* Rows x[0..r) times columns y[0..c) (r, c <= 2), result x[ri] . y[ci] at s[ci * bs + ri].
 * The columns are Q8_1 blocks for the _1 kinds (scale d, sum s = d * sum(qs)), Q8_0 for the _0.
 * xwide, if not NULL, holds the rows' blocks widened, ywide the one column's (c 1). ggml's Q4_0
 * kernel takes blocks in pairs and an odd last block in scalar code: so here. */
static inline __attribute__((always_inline)) void dot_tile(enum kind k, int n, int r, int c, float * s, size_t bs,
                                                           const char * vx, size_t bx, const char * vy, size_t by,
                                                           const struct wide_block * const * xwide, const struct wide_block * ywide) {
    const int nb = n / 32;
    const int nv = k == Q4_0 ? nb & ~1 : nb;
    v128_t acc[2][2];
    float mins[2][2];
    for (int ci = 0; ci < 2; ci++) {
        for (int ri = 0; ri < 2; ri++) acc[ci][ri] = wasm_f32x4_splat(0.0f), mins[ci][ri] = 0.0f;
    }
    for (int ib = 0; ib < nv; ib++) {
        struct wide_block x[2];
        for (int ri = 0; ri < r; ri++) {
            if (xwide) x[ri] = xwide[ri][ib];
            else widen_row_block(k, vx + ri * bx, ib, &x[ri]);
        }
        for (int ci = 0; ci < c; ci++) {
            struct wide_block y;
            if (ywide) y = ywide[ib];
            else widen_column_block(k, vy + ci * by, ib, &y);
            for (int ri = 0; ri < r; ri++) {
                if (k == Q4_1 || k == Q5_1) mins[ci][ri] += x[ri].m * y.m;
                const v128_t d = wasm_f32x4_convert_i32x4(dot_block(x[ri].q, y.q));
                acc[ci][ri] = wasm_f32x4_add(acc[ci][ri], wasm_f32x4_mul(d, wasm_f32x4_splat(x[ri].d * y.d)));
            }
        }
    }
    for (int ci = 0; ci < c; ci++) {
        for (int ri = 0; ri < r; ri++) {
            const v128_t a = acc[ci][ri];
            float sumf = wasm_f32x4_extract_lane(a, 0) + wasm_f32x4_extract_lane(a, 1) +
                         wasm_f32x4_extract_lane(a, 2) + wasm_f32x4_extract_lane(a, 3);
            if (k == Q4_1 || k == Q5_1) sumf += mins[ci][ri];
            if (nv < nb) {
                struct wide_block x, y;
                widen_row_block(k, vx + ri * bx, nv, &x);
                widen_column_block(k, vy + ci * by, nv, &y);
                const v128_t d = dot_block(x.q, y.q);
                const int sumi = wasm_i32x4_extract_lane(d, 0) + wasm_i32x4_extract_lane(d, 1) +
                                 wasm_i32x4_extract_lane(d, 2) + wasm_i32x4_extract_lane(d, 3);
                sumf += sumi * x.d * y.d;
            }
            s[ci * bs + ri] = sumf;
        }
    }
}

/* Rows x[0..nr) (bx bytes apart) times one column: s[ri] = x[ri] . y, a matrix-vector product
 * (decode). ggml calls the 1x1 kernel once per row, which widens the column's blocks again for
 * every row: here they are widened once, on the stack, for all nr rows. The same operations on the
 * same values as the 1x1 kernel, so the same bits. Columns longer than ROWS_MAX_BLOCKS blocks
 * (20 KiB widened) are widened for each row. A row at a time: the weights are read as one stream
 * (two rows at a time, two streams, took 15% longer, v4 169M Q5_1 in Node on an EPYC; on an
 * earlier Xeon, 15% less). */
#define ROWS_MAX_BLOCKS 256
static inline __attribute__((always_inline)) void dot_rows(enum kind k, int n, float * s, const char * vx, size_t bx,
                                                           const char * vy, int64_t nr) {
    const int nb = n / 32;
    if (nb > ROWS_MAX_BLOCKS) {
        for (int64_t ri = 0; ri < nr; ri++) dot_tile(k, n, 1, 1, s + ri, 0, vx + ri * bx, 0, vy, 0, NULL, NULL);
        return;
    }
    struct wide_block y[nb];
    for (int ib = 0; ib < nb; ib++) widen_column_block(k, vy, ib, &y[ib]);
    for (int64_t ri = 0; ri < nr; ri++) dot_tile(k, n, 1, 1, s + ri, 0, vx + ri * bx, 0, vy, 0, NULL, y);
}

/* Rows x[0..nr) (bx bytes apart) times columns y[0..nc) (by apart), nr, nc <= 16: s[ci * 16 + ri]
 * = x[ri] . y[ci], a block of a prompt's product (mul_mat's chunks, patched in build.rs). ggml
 * takes the block column pair by column pair, each in 2x2 tiles down the rows, so every row pair
 * is unpacked and widened once per column pair; here each row pair is widened once, on the stack,
 * for all the columns. The tiles are ggml's, so the bits are. Rows longer than ROWS_MAX_BLOCKS
 * blocks are unpacked for each tile. */
static inline __attribute__((always_inline)) void dot_chunk(enum kind k, int n, float * s, const char * vx, size_t bx,
                                                            const char * vy, size_t by, int nr, int nc) {
    const int nb = n / 32;
    const int wide = nb <= ROWS_MAX_BLOCKS;
    struct wide_block xw[2][wide ? nb : 1];
    const struct wide_block * const xwide[2] = { xw[0], xw[1] };
    for (int ri = 0; ri < nr; ri += 2) {
        const int r = nr - ri < 2 ? 1 : 2;
        for (int i = 0; i < r && wide; i++) {
            for (int ib = 0; ib < nb; ib++) widen_row_block(k, vx + (ri + i) * bx, ib, &xw[i][ib]);
        }
        const struct wide_block * const * xp = wide ? xwide : NULL;
        for (int ci = 0; ci < nc; ci += 2) {
            const char * x = vx + ri * bx, * y = vy + ci * by;
            float * o = s + ci * 16 + ri;
            if (r == 2 && nc - ci >= 2) dot_tile(k, n, 2, 2, o, 16, x, bx, y, by, xp, NULL);
            else if (r == 2) dot_tile(k, n, 2, 1, o, 16, x, bx, y, by, xp, NULL);
            else if (nc - ci >= 2) dot_tile(k, n, 1, 2, o, 16, x, bx, y, by, xp, NULL);
            else dot_tile(k, n, 1, 1, o, 16, x, bx, y, by, xp, NULL);
        }
    }
}

/* ggml's vec_dot signature; nrc 2 is a 2x2 tile: rows bx bytes apart, columns by. Constant
 * tile sizes, so each call is its own loop with its accumulators in registers. */
#define ECHO_VEC_DOT(name, kind)                                                                   \
    void name(int n, float * restrict s, size_t bs, const void * restrict vx, size_t bx,           \
              const void * restrict vy, size_t by, int nrc) {                                      \
        if (nrc == 2) dot_tile(kind, n, 2, 2, s, bs, vx, bx, vy, by, NULL, NULL);                  \
        else dot_tile(kind, n, 1, 1, s, bs, vx, bx, vy, by, NULL, NULL);                           \
    }                                                                                              \
    static void name##_rows(int n, float * restrict s, const void * restrict vx, size_t bx,        \
                            const void * restrict vy, int64_t nr) {                                \
        dot_rows(kind, n, s, vx, bx, vy, nr);                                                      \
    }                                                                                              \
    static void name##_chunk(int n, float * restrict s, const void * restrict vx, size_t bx,       \
                             const void * restrict vy, size_t by, int nr, int nc) {                \
        dot_chunk(kind, n, s, vx, bx, vy, by, nr, nc);                                             \
    }
ECHO_VEC_DOT(echo_vec_dot_q4_0_q8_0, Q4_0)
ECHO_VEC_DOT(echo_vec_dot_q4_1_q8_1, Q4_1)
ECHO_VEC_DOT(echo_vec_dot_q5_0_q8_0, Q5_0)
ECHO_VEC_DOT(echo_vec_dot_q5_1_q8_1, Q5_1)
ECHO_VEC_DOT(echo_vec_dot_q8_0_q8_0, Q8_0)

/* The block kernel of a quantized weight type, or NULL: mul_mat's chunks of many columns
 * (patched in build.rs). */
echo_vec_dot_chunk_t echo_vec_dot_chunk(enum ggml_type type) {
    switch (type) {
    case GGML_TYPE_Q4_0: return echo_vec_dot_q4_0_q8_0_chunk;
    case GGML_TYPE_Q4_1: return echo_vec_dot_q4_1_q8_1_chunk;
    case GGML_TYPE_Q5_0: return echo_vec_dot_q5_0_q8_0_chunk;
    case GGML_TYPE_Q5_1: return echo_vec_dot_q5_1_q8_1_chunk;
    case GGML_TYPE_Q8_0: return echo_vec_dot_q8_0_q8_0_chunk;
    default: return NULL;
    }
}

/* The matrix-vector kernel of a weight tensor's type (and flags), or NULL: mul_mat's one-column
 * chunks (patched in build.rs). */
echo_vec_dot_rows_t echo_vec_dot_rows(enum ggml_type type, int32_t flags) {
    switch (type) {
    case GGML_TYPE_Q4_0: return echo_vec_dot_q4_0_q8_0_rows;
    case GGML_TYPE_Q4_1: return echo_vec_dot_q4_1_q8_1_rows;
    case GGML_TYPE_Q5_0: return echo_vec_dot_q5_0_q8_0_rows;
    case GGML_TYPE_Q5_1: return echo_vec_dot_q5_1_q8_1_rows;
    case GGML_TYPE_Q8_0: return echo_vec_dot_q8_0_q8_0_rows;
    case GGML_TYPE_F16: return flags & ECHO_TENSOR_FLAG_FINITE_HALVES ? echo_vec_dot_f16_f32_rows_finite : echo_vec_dot_f16_f32_rows;
    default: return NULL;
    }
}
#endif
