//! Test bodies shared by tests/native.rs and tests/wasm.rs, so both targets run the
//! very same checks (and must agree with the same hard-coded native values).
#![allow(dead_code)]

use echo_ggml_sys::*;
use std::ffi::{c_int, c_void, CStr};

/// FNV-1a of the Q8_0 / Q8_1 activation bytes ggml-cpu produces for `activations(256)`,
/// recorded on native x86_64 (AVX2 path). wasm must produce the same bytes: this is what
/// the build.rs patch of the wasm quantizers guarantees.
pub const Q8_0_ACT_HASH: u64 = 0x1212_a0a4_8928_6111;
pub const Q8_1_ACT_HASH: u64 = 0xb02a_ead3_22b5_748f;

/// Deterministic values in [-1, 1) (xorshift64*).
pub fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let r = s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40; // 24 bits
            r as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Activation vector for the quantized checks, with some exact .5 cases after scaling
/// (ties are where round-half-even, roundf and truncation all differ).
pub fn activations(n: usize) -> Vec<f32> {
    let mut x = values(7, n);
    for b in 0..n / 32 {
        x[b * 32] = 1.0; // amax = 1 => scale 127 exactly
        x[b * 32 + 1] = 2.5 / 127.0;
        x[b * 32 + 2] = -3.5 / 127.0;
    }
    x
}

pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

fn f16(bits: u16) -> f32 {
    unsafe { ggml_fp16_to_fp32(bits) }
}

fn to_f16(x: f32) -> u16 {
    unsafe { ggml_fp32_to_fp16(x) }
}

fn le16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

fn assert_close(got: &[f32], want: &[f64], rel: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (*g as f64 - w).abs();
        assert!(err <= rel * scale, "{what}[{i}]: got {g}, want {w} (err {err:e}, scale {scale})");
    }
}

// ------------------------------------------------------------------ graph helpers

unsafe fn fill(t: *mut ggml_tensor, bytes: &[u8]) {
    assert_eq!(ggml_nbytes(t), bytes.len());
    core::ptr::copy_nonoverlapping(bytes.as_ptr(), (*t).data as *mut u8, bytes.len());
}

unsafe fn fill_f32(t: *mut ggml_tensor, v: &[f32]) {
    fill(t, core::slice::from_raw_parts(v.as_ptr() as *const u8, v.len() * 4));
}

unsafe fn read_f32(t: *const ggml_tensor) -> Vec<f32> {
    assert_eq!((*t).type_, GGML_TYPE_F32);
    core::slice::from_raw_parts((*t).data as *const f32, ggml_nelements(t) as usize).to_vec()
}

/// y = W x for W of type `ty` given as raw rows (`rows` x `cols`), computed by ggml; `x` may
/// hold several columns of `cols` (then y holds as many columns of `rows`).
pub fn ggml_mat_vec(ty: ggml_type, w: &[u8], rows: usize, cols: usize, x: &[f32]) -> Vec<f32> {
    ggml_mat_vec_flagged(ty, 0, w, rows, cols, x)
}

/// `ggml_mat_vec` with `flags` on the weight tensor.
pub fn ggml_mat_vec_flagged(ty: ggml_type, flags: i32, w: &[u8], rows: usize, cols: usize, x: &[f32]) -> Vec<f32> {
    let n = x.len() / cols;
    let ctx = Context::new(context_size(8, 16, w.len() + 8 * x.len() + 4 * rows * n + (1 << 20)), false).unwrap();
    let c = ctx.as_ptr();
    unsafe {
        let wt = ggml_new_tensor_2d(c, ty, cols as i64, rows as i64);
        (*wt).flags |= flags;
        fill(wt, w);
        let xt = ggml_new_tensor_2d(c, GGML_TYPE_F32, cols as i64, n as i64);
        fill_f32(xt, x);
        let y = ggml_mul_mat(c, wt, xt);
        let g = ggml_new_graph_custom(c, 16, false);
        ggml_build_forward_expand(g, y);
        assert_eq!(ggml_graph_compute_with_ctx(c, g, 1), GGML_STATUS_SUCCESS);
        read_f32(y)
    }
}

fn as_bytes(v: &[f32]) -> &[u8] {
    unsafe { core::slice::from_raw_parts(v.as_ptr() as *const u8, v.len() * 4) }
}

// ------------------------------------------------------------------ tests

/// The Rust mirrors of ggml_tensor / ggml_init_params / ggml_cplan match the C compiler's.
pub fn layout() {
    init();
    use core::mem::{offset_of, size_of};
    let mut c = [0usize; 32];
    let n = unsafe { echo_ggml_tensor_layout(c.as_mut_ptr(), c.len()) };
    let rust = [
        size_of::<ggml_tensor>(),
        offset_of!(ggml_tensor, type_),
        offset_of!(ggml_tensor, buffer),
        offset_of!(ggml_tensor, ne),
        offset_of!(ggml_tensor, nb),
        offset_of!(ggml_tensor, op),
        offset_of!(ggml_tensor, op_params),
        offset_of!(ggml_tensor, flags),
        offset_of!(ggml_tensor, src),
        offset_of!(ggml_tensor, view_src),
        offset_of!(ggml_tensor, view_offs),
        offset_of!(ggml_tensor, data),
        offset_of!(ggml_tensor, name),
        offset_of!(ggml_tensor, extra),
        size_of::<ggml_init_params>(),
        offset_of!(ggml_init_params, no_alloc),
        size_of::<ggml_cplan>(),
        offset_of!(ggml_cplan, use_ref),
    ];
    assert_eq!(&c[..n], &rust[..], "C vs Rust sizes/offsets");

    // The same, seen through ggml's behaviour: a tensor's overhead is one object header
    // (3 pointer-sized fields + enum + 4 bytes padding) plus the tensor struct.
    let obj = 3 * size_of::<usize>() + 8;
    assert_eq!(unsafe { ggml_tensor_overhead() }, obj + size_of::<ggml_tensor>());

    let ctx = Context::new(1 << 16, false).unwrap();
    unsafe {
        let t = ggml_new_tensor_4d(ctx.as_ptr(), GGML_TYPE_F16, 6, 5, 4, 3);
        let r = &*t;
        assert_eq!(r.type_, GGML_TYPE_F16);
        assert_eq!({ r.ne }, [6, 5, 4, 3]);
        assert_eq!(r.nb, [2, 12, 60, 240]);
        assert_eq!(ggml_nbytes(t), 720);
        assert_eq!(ggml_nelements(t), 360);
        assert_eq!(ggml_get_data(t), r.data);
        ggml_set_name(t, c"weights".as_ptr());
        assert_eq!(CStr::from_ptr(r.name.as_ptr()).to_str().unwrap(), "weights");
        ggml_set_input(t);
        assert_eq!(r.flags & GGML_TENSOR_FLAG_INPUT, GGML_TENSOR_FLAG_INPUT);

        let u = ggml_new_tensor_4d(ctx.as_ptr(), GGML_TYPE_F16, 6, 5, 4, 3);
        let s = ggml_add(ctx.as_ptr(), t, u);
        assert_eq!((*s).src[0], t);
        assert_eq!((*s).src[1], u);
        assert_eq!(CStr::from_ptr(ggml_op_desc(s)).to_str().unwrap(), "ADD");
        let sc = ggml_scale(ctx.as_ptr(), t, 0.25);
        assert_eq!(f32::from_bits((*sc).op_params[0] as u32), 0.25);
        let v = ggml_view_1d(ctx.as_ptr(), t, 10, 8);
        assert_eq!((*v).view_src, t);
        assert_eq!((*v).view_offs, 8);
        assert_eq!((*v).data, (r.data as *mut u8).add(8) as *mut c_void);
    }
}

/// F32 64x64 matrix times vector vs a plain loop.
pub fn mul_mat_f32() {
    let (rows, cols) = (64, 64);
    let w = values(1, rows * cols);
    let x = values(2, cols);
    let got = ggml_mat_vec(GGML_TYPE_F32, as_bytes(&w), rows, cols, &x);
    let want: Vec<f64> =
        (0..rows).map(|r| (0..cols).map(|c| w[r * cols + c] as f64 * x[c] as f64).sum()).collect();
    assert_close(&got, &want, 1e-6, "f32 mul_mat");
}

/// Every one of the 65,536 halves goes through ggml's F16 dot product exactly: row i holds
/// half i (zeros elsewhere) and is multiplied by ones (then by 2^16s), so the result is the
/// half's value (times 2^16), decoded here independently. Catches any SIMD conversion that
/// rounds, flushes subnormals or loses Inf.
pub fn mul_mat_f16_every_half() {
    let (rows, cols) = (1 << 16, 32);
    let mut w = vec![0u8; rows * cols * 2];
    for i in 0..rows {
        let at = (i * cols + i % cols) * 2;
        w[at..at + 2].copy_from_slice(&(i as u16).to_le_bytes());
    }
    // A column of 2^16 is too large for wasm's kernel to scale by 2^112 (it converts each weight
    // exactly instead); the products are exact either way.
    for scale in [1.0, 65536.0] {
        let got = ggml_mat_vec(GGML_TYPE_F16, &w, rows, cols, &vec![scale; cols]);
        for (i, g) in got.iter().enumerate() {
            let want = half_value(i as u16) * scale;
            assert!(*g == want || (g.is_nan() && want.is_nan()), "half {i:#06x} times {scale}: got {g:e}, want {want:e}");
        }
    }
}

/// Several columns go through the F16 product two rows by two columns at a time (type traits
/// `nrows` 2): each result has the bits of the same product taken one column at a time, and is
/// within rounding of an f64 sum; one column's products have the bits of one row at a time. 100 is not a multiple of the kernels' 16 or 32 (a tail).
pub fn mul_mat_f16_tiles() {
    let (rows, cols, n) = (6, 100, 4);
    let halves: Vec<u16> = values(7, rows * cols).iter().map(|v| f16_bits(*v)).collect();
    let w: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
    let x = values(8, cols * n);
    let tiled = ggml_mat_vec(GGML_TYPE_F16, &w, rows, cols, &x);
    for c in 0..n {
        let column = &x[c * cols..(c + 1) * cols];
        let single = ggml_mat_vec(GGML_TYPE_F16, &w, rows, cols, column);
        for r in 0..rows {
            let got = tiled[c * rows + r];
            assert_eq!(got.to_bits(), single[r].to_bits(), "row {r} column {c}: {got} tiled, {} alone", single[r]);
            let want: f64 = (0..cols).map(|k| half_value(halves[r * cols + k]) as f64 * column[k] as f64).sum();
            assert!((got as f64 - want).abs() < 1e-4, "row {r} column {c}: {got}, want {want}");
        }
    }
    // One column, as decode multiplies (in wasm, each chunk of rows in one call, the column
    // scaled by 2^112 once for them): 19 rows (chunks of 16 and 3) give the bits of the kernel
    // called a row at a time.
    let rows = 19;
    let halves: Vec<u16> = values(11, rows * cols).iter().map(|v| f16_bits(*v)).collect();
    let w: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
    let column = values(12, cols);
    let got = ggml_mat_vec(GGML_TYPE_F16, &w, rows, cols, &column);
    let dot = unsafe { (*ggml_get_type_traits_cpu(GGML_TYPE_F16)).vec_dot.unwrap() };
    for (r, got) in got.iter().enumerate() {
        let mut want = 0f32;
        unsafe { dot(cols as c_int, &mut want, 0, w[r * cols * 2..].as_ptr().cast(), 0, column.as_ptr().cast(), 0, 1) };
        assert_eq!(got.to_bits(), want.to_bits(), "row {r} of {rows}, one column: {got}, a row at a time {want}");
    }
}

/// F16 weights flagged finite (`ECHO_TENSOR_FLAG_FINITE_HALVES`, as the engine flags a checked
/// model's) give the bits of unflagged ones, one column (decode) and several. In wasm the decode
/// kernel goes by the flag: flagged wrongly, an infinity is taken for a large finite number.
pub fn mul_mat_f16_finite_flag() {
    let (rows, cols) = (19, 100);
    let mut w: Vec<u8> = values(13, rows * cols).iter().flat_map(|v| f16_bits(*v).to_le_bytes()).collect();
    for x in [values(14, cols), values(15, 3 * cols)] {
        let plain = ggml_mat_vec(GGML_TYPE_F16, &w, rows, cols, &x);
        let flagged = ggml_mat_vec_flagged(GGML_TYPE_F16, ECHO_TENSOR_FLAG_FINITE_HALVES, &w, rows, cols, &x);
        assert_eq!(flagged.iter().map(|f| f.to_bits()).collect::<Vec<_>>(), plain.iter().map(|f| f.to_bits()).collect::<Vec<_>>());
    }
    w[(3 * cols + 5) * 2..][..2].copy_from_slice(&0x7c00u16.to_le_bytes());
    let column = values(14, cols);
    let plain = ggml_mat_vec(GGML_TYPE_F16, &w, rows, cols, &column);
    assert!(!plain[3].is_finite(), "an infinity in row 3: {}", plain[3]);
    let flagged = ggml_mat_vec_flagged(GGML_TYPE_F16, ECHO_TENSOR_FLAG_FINITE_HALVES, &w, rows, cols, &column);
    assert_eq!(flagged[3].is_finite(), cfg!(target_arch = "wasm32"), "row 3 flagged: {}", flagged[3]);
}

/// Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 weights go through the product two rows by two columns at a time (in
/// wasm, `shim/echo_vec_dot_q.c`, each block of up to 16 rows by 16 columns in one call, each row
/// pair widened once): each result has the bits of the same product taken one column at a time,
/// and is within quantization error of the dequantized weights times the columns. 9 blocks a row
/// give Q4_0's odd last block; 34 rows by 18 columns, blocks of 12 by 9 (odd counts); 257 blocks a
/// row, too long to widen on the stack.
pub fn mul_mat_quant_tiles() {
    for (rows, cols, n) in [(6, 288, 4), (34, 288, 18), (4, 257 * 32, 2)] {
        let w = values(9, rows * cols);
        let x = values(10, cols * n);
        for ty in [GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q8_0] {
            let q = quantize_weights(ty, &w, rows, cols);
            let deq = dequantize(ty, &q);
            let tiled = ggml_mat_vec(ty, &q, rows, cols, &x);
            for c in 0..n {
                let column = &x[c * cols..(c + 1) * cols];
                let single = ggml_mat_vec(ty, &q, rows, cols, column);
                let want: Vec<f64> =
                    (0..rows).map(|r| (0..cols).map(|k| deq[r * cols + k] as f64 * column[k] as f64).sum()).collect();
                for r in 0..rows {
                    let got = tiled[c * rows + r];
                    assert_eq!(got.to_bits(), single[r].to_bits(), "type {ty} {rows}x{cols}x{n} row {r} column {c}: {got} tiled, {} alone", single[r]);
                }
                assert_close(&tiled[c * rows..(c + 1) * rows], &want, 2e-2, &format!("type {ty} {rows}x{cols}x{n} column {c} vs dequantized"));
            }
        }
    }
}

extern "C" {
    fn ggml_vec_dot_q4_0_q8_0(n: c_int, s: *mut f32, bs: usize, x: *const c_void, bx: usize, y: *const c_void, by: usize, nrc: c_int);
    fn ggml_vec_dot_q4_1_q8_1(n: c_int, s: *mut f32, bs: usize, x: *const c_void, bx: usize, y: *const c_void, by: usize, nrc: c_int);
    fn ggml_vec_dot_q5_0_q8_0(n: c_int, s: *mut f32, bs: usize, x: *const c_void, bx: usize, y: *const c_void, by: usize, nrc: c_int);
    fn ggml_vec_dot_q5_1_q8_1(n: c_int, s: *mut f32, bs: usize, x: *const c_void, bx: usize, y: *const c_void, by: usize, nrc: c_int);
    fn ggml_vec_dot_q8_0_q8_0(n: c_int, s: *mut f32, bs: usize, x: *const c_void, bx: usize, y: *const c_void, by: usize, nrc: c_int);
}

/// The dot products mul_mat uses for Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 (in wasm ours, in 2x2 tiles,
/// and a chunk of rows at a time for one column) give the bits of ggml's own kernels for these
/// types, one row and column at a time.
pub fn quant_dot_matches_ggml() {
    let cols = 288;
    let kernels = [
        (GGML_TYPE_Q4_0, ggml_vec_dot_q4_0_q8_0 as unsafe extern "C" fn(_, _, _, _, _, _, _, _)),
        (GGML_TYPE_Q4_1, ggml_vec_dot_q4_1_q8_1),
        (GGML_TYPE_Q5_0, ggml_vec_dot_q5_0_q8_0),
        (GGML_TYPE_Q5_1, ggml_vec_dot_q5_1_q8_1),
        (GGML_TYPE_Q8_0, ggml_vec_dot_q8_0_q8_0),
    ];
    for (seed, (ty, ggml_dot)) in kernels.into_iter().enumerate() {
        let traits = unsafe { &*ggml_get_type_traits_cpu(ty) };
        assert_eq!(traits.nrows, if cfg!(target_arch = "wasm32") { 2 } else { 1 }, "type {ty}: rows a product");
        let w = quantize_weights(ty, &values(20 + seed as u64, 2 * cols), 2, cols);
        let y: Vec<u8> = [30, 31].iter().flat_map(|&s| cpu_from_float(traits.vec_dot_type, &values(s, cols))).collect();
        let (bx, by) = (w.len() / 2, y.len() / 2);
        let mut want = [0f32; 4];
        for (k, out) in want.iter_mut().enumerate() {
            let (r, c) = (k % 2, k / 2);
            unsafe { ggml_dot(cols as c_int, out, 0, w[r * bx..].as_ptr().cast(), 0, y[c * by..].as_ptr().cast(), 0, 1) };
        }
        let dot = traits.vec_dot.unwrap();
        for k in 0..4 {
            let (r, c) = (k % 2, k / 2);
            let mut got = 0f32;
            unsafe { dot(cols as c_int, &mut got, 0, w[r * bx..].as_ptr().cast(), 0, y[c * by..].as_ptr().cast(), 0, 1) };
            assert_eq!(got.to_bits(), want[k].to_bits(), "type {ty} row {r} column {c}: {got}, ggml {}", want[k]);
        }
        if traits.nrows == 2 {
            let mut tile = [0f32; 4];
            unsafe { dot(cols as c_int, tile.as_mut_ptr(), 2, w.as_ptr().cast(), bx, y.as_ptr().cast(), by, 2) };
            for k in 0..4 {
                assert_eq!(tile[k].to_bits(), want[k].to_bits(), "type {ty} tile {k}: {}, ggml {}", tile[k], want[k]);
            }
        }
        // One column, as decode multiplies (in wasm, each chunk of rows in one call, the column
        // widened once for them): 19 rows (chunks of 16 and 3), and 3 rows of 257 blocks, too
        // long to widen on the stack, which go a row at a time.
        for (rows, n) in [(19, cols), (3, 257 * 32)] {
            let w = quantize_weights(ty, &values(40 + seed as u64, rows * n), rows, n);
            let x = values(41, n);
            let y = cpu_from_float(traits.vec_dot_type, &x);
            let got = ggml_mat_vec(ty, &w, rows, n, &x);
            let bx = w.len() / rows;
            for (r, got) in got.iter().enumerate() {
                let mut want = 0f32;
                unsafe { ggml_dot(n as c_int, &mut want, 0, w[r * bx..].as_ptr().cast(), 0, y.as_ptr().cast(), 0, 1) };
                assert_eq!(got.to_bits(), want.to_bits(), "type {ty}, {rows} rows of {n}, row {r}: {got}, ggml {want}");
            }
        }
    }
}

/// Q4_0, Q4_1, Q5_0, Q5_1 or Q8_0 rows back to floats, from the block layouts: d, [m], [qh], qs.
fn dequantize(ty: ggml_type, q: &[u8]) -> Vec<f32> {
    if ty == GGML_TYPE_Q8_0 {
        return q.chunks(34).flat_map(|b| b[2..].iter().map(move |&v| v as i8 as f32 * f16(le16(b)))).collect();
    }
    let (size, has_min, has_qh) = match ty {
        GGML_TYPE_Q4_0 => (18, false, false),
        GGML_TYPE_Q4_1 => (20, true, false),
        GGML_TYPE_Q5_0 => (22, false, true),
        GGML_TYPE_Q5_1 => (24, true, true),
        _ => unreachable!(),
    };
    let mut out = Vec::new();
    for blk in q.chunks(size) {
        let d = f16(le16(blk));
        let (m, rest) = if has_min { (f16(le16(&blk[2..])), &blk[4..]) } else { (0.0, &blk[2..]) };
        let (qh, qs) = if has_qh { (u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]), &rest[4..]) } else { (0, rest) };
        let mut v = [0i32; 32];
        for j in 0..16 {
            v[j] = (qs[j] & 0x0F) as i32 | (((qh >> j) & 1) << 4) as i32;
            v[j + 16] = (qs[j] >> 4) as i32 | (((qh >> (j + 16)) & 1) << 4) as i32;
        }
        let offset = match ty {
            GGML_TYPE_Q4_0 => 8,
            GGML_TYPE_Q5_0 => 16,
            _ => 0,
        };
        out.extend(v.iter().map(|&v| (v - offset) as f32 * d + m));
    }
    out
}

/// An f32 rounded to binary16 bits (to nearest; the test values are small normals).
fn f16_bits(v: f32) -> u16 {
    let b = v.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    if v == 0.0 || exp <= 0 {
        return sign;
    }
    let man = b & 0x7f_ffff;
    let rounded = ((exp as u32) << 10 | man >> 13) + u32::from(man & 0x1fff > 0x1000 || (man & 0x1fff == 0x1000 && (man >> 13) & 1 == 1));
    sign | rounded as u16
}

/// IEEE binary16 bits to their value, from the definition.
fn half_value(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let (exp, man) = ((bits >> 10) & 0x1f, (bits & 0x3ff) as f32);
    match exp {
        0 => sign * man * 2f32.powi(-24),
        31 if man == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        e => sign * (1.0 + man / 1024.0) * 2f32.powi(e as i32 - 15),
    }
}

/// Activations quantized the way ggml-cpu's x86 AVX2 code does (and, patched, wasm):
/// scale 127/amax, round half to even. Returns (d = amax/127, quants, sum of quants) per block.
fn quantize_act_x86(x: &[f32]) -> Vec<(f32, [i8; 32], i32)> {
    x.chunks(32)
        .map(|b| {
            let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
            let mut q = [0i8; 32];
            for (q, v) in q.iter_mut().zip(b) {
                *q = (v * id).round_ties_even() as i8;
            }
            (d, q, q.iter().map(|&v| v as i32).sum())
        })
        .collect()
}

fn cpu_from_float(ty: ggml_type, x: &[f32]) -> Vec<u8> {
    unsafe {
        let traits = &*ggml_get_type_traits_cpu(ty);
        let mut out = vec![0u8; ggml_row_size(ty, x.len() as i64)];
        traits.from_float.unwrap()(x.as_ptr(), out.as_mut_ptr() as *mut c_void, x.len() as i64);
        out
    }
}

fn quantize_weights(ty: ggml_type, w: &[f32], rows: usize, cols: usize) -> Vec<u8> {
    init();
    unsafe {
        assert!(!ggml_quantize_requires_imatrix(ty));
        let mut q = vec![0u8; rows * ggml_row_size(ty, cols as i64)];
        let n = ggml_quantize_chunk(ty, w.as_ptr(), q.as_mut_ptr() as *mut c_void, 0, rows as i64, cols as i64, core::ptr::null());
        assert_eq!(n, q.len());
        q
    }
}

/// Q8_0 weights: ggml's mul_mat equals an exact emulation of its integer dot product, and
/// the activations are quantized exactly like native x86. Returns the hash of those bytes.
pub fn mul_mat_q8_0() -> u64 {
    let (rows, cols) = (16, 256);
    let w = values(3, rows * cols);
    let x = activations(cols);
    let q = quantize_weights(GGML_TYPE_Q8_0, &w, rows, cols);

    // activation bytes: ggml-cpu's quantizer vs our x86 emulation
    let act = quantize_act_x86(&x);
    let mut want_bytes = Vec::new();
    for (d, qs, _) in &act {
        want_bytes.extend_from_slice(&to_f16(*d).to_le_bytes());
        want_bytes.extend(qs.iter().map(|&v| v as u8));
    }
    let act_bytes = cpu_from_float(GGML_TYPE_Q8_0, &x);
    assert_eq!(act_bytes, want_bytes, "Q8_0 activation quantization differs from x86");

    // block_q8_0 = { f16 d; i8 qs[32] } = 34 bytes
    let mut exact = Vec::new();
    let mut float = Vec::new();
    for r in 0..rows {
        let row = &q[r * cols / 32 * 34..(r + 1) * cols / 32 * 34];
        let (mut e, mut f) = (0f64, 0f64);
        for (b, blk) in row.chunks(34).enumerate() {
            let dw = f16(le16(blk));
            let (dx, qx, _) = &act[b];
            let sumi: i32 = (0..32).map(|j| blk[2 + j] as i8 as i32 * qx[j] as i32).sum();
            e += dw as f64 * f16(to_f16(*dx)) as f64 * sumi as f64;
            f += (0..32).map(|j| dw as f64 * (blk[2 + j] as i8) as f64 * x[b * 32 + j] as f64).sum::<f64>();
        }
        exact.push(e);
        float.push(f);
    }
    let got = ggml_mat_vec(GGML_TYPE_Q8_0, &q, rows, cols, &x);
    assert_close(&got, &exact, 1e-5, "Q8_0 mul_mat vs exact emulation");
    assert_close(&got, &float, 2e-2, "Q8_0 mul_mat vs dequantized f32");
    fnv1a(&act_bytes)
}

/// Q5_1 weights (activations in Q8_1), same checks. Returns the hash of the Q8_1 bytes.
pub fn mul_mat_q5_1() -> u64 {
    let (rows, cols) = (16, 256);
    let w = values(4, rows * cols);
    let x = activations(cols);
    let q = quantize_weights(GGML_TYPE_Q5_1, &w, rows, cols);

    let act = quantize_act_x86(&x);
    let mut want_bytes = Vec::new();
    for (d, qs, sum) in &act {
        // block_q8_1 = { f16 d; f16 s = d * sum(qs); i8 qs[32] } = 36 bytes
        want_bytes.extend_from_slice(&to_f16(*d).to_le_bytes());
        want_bytes.extend_from_slice(&to_f16(d * *sum as f32).to_le_bytes());
        want_bytes.extend(qs.iter().map(|&v| v as u8));
    }
    let act_bytes = cpu_from_float(GGML_TYPE_Q8_1, &x);
    assert_eq!(act_bytes, want_bytes, "Q8_1 activation quantization differs from x86");

    // block_q5_1 = { f16 d; f16 m; u8 qh[4]; u8 qs[16] } = 24 bytes; block_q8_1 = 36 bytes
    let mut exact = Vec::new();
    let mut float = Vec::new();
    for r in 0..rows {
        let row = &q[r * cols / 32 * 24..(r + 1) * cols / 32 * 24];
        let (mut e, mut f) = (0f64, 0f64);
        for (b, blk) in row.chunks(24).enumerate() {
            let (d, m) = (f16(le16(blk)), f16(le16(&blk[2..])));
            let qh = u32::from_le_bytes([blk[4], blk[5], blk[6], blk[7]]);
            let mut q5 = [0i32; 32];
            for j in 0..16 {
                q5[j] = (blk[8 + j] & 0x0F) as i32 | (((qh >> j) << 4) & 0x10) as i32;
                q5[j + 16] = (blk[8 + j] >> 4) as i32 | ((qh >> (j + 12)) & 0x10) as i32;
            }
            let yb = &act_bytes[b * 36..(b + 1) * 36];
            let (dy, sy) = (f16(le16(yb)), f16(le16(&yb[2..])));
            let sumi: i32 = (0..32).map(|j| q5[j] * yb[4 + j] as i8 as i32).sum();
            e += d as f64 * dy as f64 * sumi as f64 + m as f64 * sy as f64;
            f += (0..32).map(|j| (q5[j] as f64 * d as f64 + m as f64) * x[b * 32 + j] as f64).sum::<f64>();
        }
        exact.push(e);
        float.push(f);
    }
    let got = ggml_mat_vec(GGML_TYPE_Q5_1, &q, rows, cols, &x);
    assert_close(&got, &exact, 1e-5, "Q5_1 mul_mat vs exact emulation");
    assert_close(&got, &float, 2e-2, "Q5_1 mul_mat vs dequantized f32");
    fnv1a(&act_bytes)
}

/// ggml_rwkv_wkv7 vs a scalar implementation of the RWKV v7 state update:
/// sa = a·S_i;  S_ij = S_ij*w_j + v_i*k_j + sa*b_j;  out_i = S_i·r.
pub fn rwkv_wkv7() {
    let (s, h, t) = (64usize, 2usize, 3usize);
    let n = s * h * t;
    let r = values(10, n);
    let w: Vec<f32> = values(11, n).iter().map(|v| 0.6 + 0.35 * v).collect();
    let k = values(12, n);
    let v = values(13, n);
    let a: Vec<f32> = values(14, n).iter().map(|v| -0.1 * v.abs()).collect();
    let b: Vec<f32> = values(15, n).iter().map(|v| 0.1 * v.abs()).collect();
    let state0: Vec<f32> = values(16, s * s * h).iter().map(|v| 0.1 * v).collect();

    let ctx = Context::new(context_size(16, 16, 4 * (7 * n + 2 * s * s * h + n) + (1 << 16)), false).unwrap();
    let c = ctx.as_ptr();
    let got = unsafe {
        let mk = |data: &[f32]| {
            let t3 = ggml_new_tensor_3d(c, GGML_TYPE_F32, s as i64, h as i64, t as i64);
            fill_f32(t3, data);
            t3
        };
        let (rt, wt, kt, vt, at, bt) = (mk(&r), mk(&w), mk(&k), mk(&v), mk(&a), mk(&b));
        let st = ggml_new_tensor_2d(c, GGML_TYPE_F32, (s * s * h) as i64, 1);
        fill_f32(st, &state0);
        let out = ggml_rwkv_wkv7(c, rt, wt, kt, vt, at, bt, st);
        assert_eq!({ (*out).ne }, [(s * h) as i64, (t + s) as i64, 1, 1]);
        let g = ggml_new_graph_custom(c, 16, false);
        ggml_build_forward_expand(g, out);
        assert_eq!(ggml_graph_compute_with_ctx(c, g, 1), GGML_STATUS_SUCCESS);
        read_f32(out)
    };

    let mut st: Vec<f64> = state0.iter().map(|&v| v as f64).collect();
    let mut want = vec![0f64; n];
    for tt in 0..t {
        for hh in 0..h {
            let o = tt * s * h + hh * s;
            for i in 0..s {
                let row = &mut st[hh * s * s + i * s..hh * s * s + (i + 1) * s];
                let sa: f64 = (0..s).map(|j| a[o + j] as f64 * row[j]).sum();
                for j in 0..s {
                    row[j] = row[j] * w[o + j] as f64 + v[o + i] as f64 * k[o + j] as f64 + sa * b[o + j] as f64;
                }
                want[o + i] = (0..s).map(|j| row[j] * r[o + j] as f64).sum();
            }
        }
    }
    want.extend_from_slice(&st);
    assert_close(&got, &want, 1e-5, "rwkv_wkv7 (output, then state)");
}

unsafe extern "C" fn max_op(
    dst: *mut ggml_tensor,
    a: *const ggml_tensor,
    b: *const ggml_tensor,
    ith: c_int,
    nth: c_int,
    _: *mut c_void,
) {
    let n = ggml_nelements(dst) as usize;
    let (start, end) = (ith as usize * n / nth as usize, (ith as usize + 1) * n / nth as usize);
    let (a, b, d) = ((*a).data as *const f32, (*b).data as *const f32, (*dst).data as *mut f32);
    for i in start..end {
        *d.add(i) = (*a.add(i)).max(*b.add(i));
    }
}

/// A Rust callback as a ggml custom op (rwkv.cpp's element-wise max for v4).
pub fn custom_op() {
    let x = values(20, 100);
    let y = values(21, 100);
    let ctx = Context::new(context_size(8, 16, 4096), false).unwrap();
    let c = ctx.as_ptr();
    let got = unsafe {
        let (xt, yt) = (ggml_new_tensor_1d(c, GGML_TYPE_F32, 100), ggml_new_tensor_1d(c, GGML_TYPE_F32, 100));
        fill_f32(xt, &x);
        fill_f32(yt, &y);
        let m = ggml_map_custom2(c, xt, yt, Some(max_op), 1, core::ptr::null_mut());
        let g = ggml_new_graph_custom(c, 16, false);
        ggml_build_forward_expand(g, m);
        assert_eq!(ggml_graph_compute_with_ctx(c, g, 1), GGML_STATUS_SUCCESS);
        read_f32(m)
    };
    let want: Vec<f64> = x.iter().zip(&y).map(|(a, b)| a.max(*b) as f64).collect();
    assert_close(&got, &want, 0.0, "custom max");
}

/// The limit makes allocations fail instead of growing; counters follow.
pub fn memory_limit() {
    init();
    let before = mem::used_bytes();
    let v = std::hint::black_box(vec![0u8; 1 << 20]);
    assert!(mem::used_bytes() >= before + (1 << 20));
    assert!(mem::peak_bytes() >= mem::used_bytes());
    drop(v);

    mem::set_limit(Some(mem::used_bytes() + (8 << 20)));
    assert_eq!(mem::limit(), Some(mem::used_bytes() + (8 << 20)));
    let mut big: Vec<u8> = Vec::new();
    assert!(big.try_reserve_exact(16 << 20).is_err(), "over the limit must fail");
    assert!(big.try_reserve_exact(1 << 20).is_ok(), "under the limit must succeed");
    assert!(Context::new(32 << 20, false).is_err(), "a pool over the limit is an Err");
    assert!(Context::new(1 << 20, false).is_ok());
    mem::set_limit(None);
    assert_eq!(mem::limit(), None);
    assert!(big.try_reserve_exact(16 << 20).is_ok());
}
