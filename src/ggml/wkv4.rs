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

/// # Safety
/// Called by ggml with a `dst` built by `graph::v4_wkv`: f32 contiguous sources of the shapes above.
pub(super) unsafe extern "C" fn compute(dst: *mut ggml_tensor, ith: c_int, _nth: c_int, _userdata: *mut c_void) {
    if ith != 0 {
        return;
    }
    let dst = &mut *dst;
    let src = |i: usize| &*dst.src[i];
    let (e, t) = (src(0).ne[0] as usize, src(0).ne[1] as usize);
    let slice = |i: usize, n: usize| core::slice::from_raw_parts(src(i).data as *const f32, n);
    let (k, v, first, decay, state_in) = (slice(0, e * t), slice(1, e * t), slice(2, e), slice(3, e), slice(4, 3 * e));
    let out = core::slice::from_raw_parts_mut(dst.data as *mut f32, e * (t + 3));

    let (y, state) = out.split_at_mut(e * t);
    state.copy_from_slice(state_in);
    let (aa, rest) = state.split_at_mut(e);
    let (bb, pp) = rest.split_at_mut(e);
    for (tt, y) in y.chunks_exact_mut(e).enumerate() {
        let (k, v) = (&k[tt * e..(tt + 1) * e], &v[tt * e..(tt + 1) * e]);
        for i in 0..e {
            y[i] = v4_wkv_channel(first[i], decay[i], k[i], v[i], &mut aa[i], &mut bb[i], &mut pp[i]);
        }
    }
}
