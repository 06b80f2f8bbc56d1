//! RWKV v4's WKV recurrence as a ggml custom op over a whole chunk of tokens.
//!
//! rwkv.cpp expresses it as ~20 element-wise graph nodes per token; one op looping over the
//! tokens computes the same numbers with one node per layer, for any sequence length.
//!
//! Sources: `k`, `v` (`[E, T]`), `time_first`, `time_decay` (`[E]`), the state `aa, bb, pp`
//! (`[3E]`). Output `[E, T + 3]`: the WKV of each token, then the new `aa, bb, pp`.

use core::ffi::{c_int, c_void};

use echo_ggml_sys::ggml_tensor;

use crate::reference::v4_wkv_channel;

/// ggml's `GGML_N_TASKS_MAX`: the op runs on every thread, each on its own share of the channels,
/// which are independent (one thread would leave the others waiting at the next barrier).
pub(super) const TASKS: c_int = -1;

/// # Safety
/// Called by ggml with a `dst` built by `graph::v4_wkv`: f32 contiguous sources of the shapes above.
pub(super) unsafe extern "C" fn compute(dst: *mut ggml_tensor, ith: c_int, nth: c_int, _userdata: *mut c_void) {
    let dst = &*dst;
    let src = |i: usize| &*dst.src[i];
    let (e, t) = (src(0).ne[0] as usize, src(0).ne[1] as usize);
    let (ith, nth) = (ith as usize, nth.max(1) as usize);
    let (c0, c1) = (e * ith / nth, e * (ith + 1) / nth);
    let n = c1 - c0;
    // Each thread reads and writes only channels c0..c1 of every row: slices of `n` floats at `at`.
    let input = |i: usize, at: usize| core::slice::from_raw_parts((src(i).data as *const f32).add(at + c0), n);
    let out = |at: usize| core::slice::from_raw_parts_mut((dst.data as *mut f32).add(at + c0), n);
    let (first, decay) = (input(2, 0), input(3, 0));
    let (aa, bb, pp) = (out(e * t), out(e * t + e), out(e * t + 2 * e));
    aa.copy_from_slice(input(4, 0));
    bb.copy_from_slice(input(4, e));
    pp.copy_from_slice(input(4, 2 * e));
    for tt in 0..t {
        let (k, v, y) = (input(0, tt * e), input(1, tt * e), out(tt * e));
        for i in 0..n {
            y[i] = v4_wkv_channel(first[i], decay[i], k[i], v[i], &mut aa[i], &mut bb[i], &mut pp[i]);
        }
    }
}
