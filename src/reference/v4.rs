//! RWKV v4: per-channel WKV with a numerically stable running exponent; and the v4/v5 FFN.
//!
//! In rwkv.cpp files, `att.time_decay` is stored as `-exp(time_decay)` (already negative) and
//! `att.time_first` as is.

use super::{ops, Layer};
use crate::error::Result;

/// Time mixing. `att_state` is `aa, bb, pp` (`E` floats each), updated in place.
pub(super) fn time_mix(w: &Layer, x: &[f32], prev: &[f32], att_state: &mut [f32]) -> Result<Vec<f32>> {
    let e = x.len();
    let (r, k, v) = receptance_key_value(w, x, prev)?;
    let first = w.vec("att.time_first", e)?;
    let decay = w.vec("att.time_decay", e)?;

    let (aa, rest) = att_state.split_at_mut(e);
    let (bb, pp) = rest.split_at_mut(e);
    let mut rwkv = vec![0.0; e];
    for i in 0..e {
        let wkv = wkv_channel(first[i], decay[i], k[i], v[i], &mut aa[i], &mut bb[i], &mut pp[i]);
        rwkv[i] = ops::sigmoid(r[i]) * wkv;
    }
    w.matvec("att.output.weight", &rwkv)
}

/// `R xr`, `K xk`, `V xv` with v4/v5's token shift (`time_mix_{r,k,v}`).
pub(super) fn receptance_key_value(w: &Layer, x: &[f32], prev: &[f32]) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let e = x.len();
    let xr = ops::mix(x, prev, &w.vec("att.time_mix_r", e)?);
    let xk = ops::mix(x, prev, &w.vec("att.time_mix_k", e)?);
    let xv = ops::mix(x, prev, &w.vec("att.time_mix_v", e)?);
    Ok((w.matvec("att.receptance.weight", &xr)?, w.matvec("att.key.weight", &xk)?, w.matvec("att.value.weight", &xv)?))
}

/// One channel of the WKV for one token, shared with ggml's custom op (`crate::ggml::wkv4`).
pub(crate) fn wkv_channel(first: f32, decay: f32, k: f32, v: f32, aa: &mut f32, bb: &mut f32, pp: &mut f32) -> f32 {
    // Output: (aa + e^(u+k) v) / (bb + e^(u+k)), all scaled by e^-max to stay finite.
    let ww = first + k;
    let q = pp.max(ww);
    let (e1, e2) = ((*pp - q).exp(), (ww - q).exp());
    let wkv = (e1 * *aa + e2 * v) / (e1 * *bb + e2);

    // State: decay the sums by e^w and add this token's e^k v and e^k.
    let ww = *pp + decay;
    let q = ww.max(k);
    let (e1, e2) = ((ww - q).exp(), (k - q).exp());
    *aa = e1 * *aa + e2 * v;
    *bb = e1 * *bb + e2;
    *pp = q;
    wkv
}

/// Channel mixing (v4, v5.1, v5.2): `sigmoid(R xr) * (V relu(K xk)²)`.
pub(super) fn channel_mix(w: &Layer, x: &[f32], prev: &[f32]) -> Result<Vec<f32>> {
    let e = x.len();
    let xk = ops::mix(x, prev, &w.vec("ffn.time_mix_k", e)?);
    let xr = ops::mix(x, prev, &w.vec("ffn.time_mix_r", e)?);
    gated_ffn(w, &xk, &xr)
}

/// `sigmoid(R xr) * (V relu(K xk)²)`: the channel mix of v4 to v6, after their token shifts.
pub(super) fn gated_ffn(w: &Layer, xk: &[f32], xr: &[f32]) -> Result<Vec<f32>> {
    let r = w.matvec("ffn.receptance.weight", xr)?;
    let v = ffn_value(w, xk)?;
    Ok(r.iter().zip(&v).map(|(&r, v)| ops::sigmoid(r) * v).collect())
}

/// `V relu(K xk)²`, the value path of every version's channel mix.
pub(super) fn ffn_value(w: &Layer, xk: &[f32]) -> Result<Vec<f32>> {
    let k: Vec<f32> = w.matvec("ffn.key.weight", xk)?.into_iter().map(ops::relu_sq).collect();
    w.matvec("ffn.value.weight", &k)
}
