//! RWKV v4: per-channel WKV with a numerically stable running exponent; and the v4/v5 FFN.
//!
//! In rwkv.cpp files, `att.time_decay` is stored as `-exp(time_decay)` (already negative) and
//! `att.time_first` as is.

use super::{ops, Layer};
use crate::error::Result;

/// Time mixing. `att_state` is `aa, bb, pp` (`E` floats each), updated in place.
pub(super) fn time_mix(w: &Layer, x: &[f32], prev: &[f32], att_state: &mut [f32]) -> Result<Vec<f32>> {
    let e = x.len();
    let xk = ops::mix(x, prev, &w.vec("att.time_mix_k", e)?);
    let xv = ops::mix(x, prev, &w.vec("att.time_mix_v", e)?);
    let xr = ops::mix(x, prev, &w.vec("att.time_mix_r", e)?);
    let r = w.matvec("att.receptance.weight", &xr)?;
    let k = w.matvec("att.key.weight", &xk)?;
    let v = w.matvec("att.value.weight", &xv)?;
    let first = w.vec("att.time_first", e)?;
    let decay = w.vec("att.time_decay", e)?;

    let (aa, rest) = att_state.split_at_mut(e);
    let (bb, pp) = rest.split_at_mut(e);
    let mut rwkv = vec![0.0; e];
    for i in 0..e {
        // Output: (aa + e^(u+k) v) / (bb + e^(u+k)), all scaled by e^-max to stay finite.
        let ww = first[i] + k[i];
        let q = pp[i].max(ww);
        let (e1, e2) = ((pp[i] - q).exp(), (ww - q).exp());
        let wkv = (e1 * aa[i] + e2 * v[i]) / (e1 * bb[i] + e2);
        rwkv[i] = ops::sigmoid(r[i]) * wkv;

        // State: decay the sums by e^w and add this token's e^k v and e^k.
        let ww = pp[i] + decay[i];
        let q = ww.max(k[i]);
        let (e1, e2) = ((ww - q).exp(), (k[i] - q).exp());
        aa[i] = e1 * aa[i] + e2 * v[i];
        bb[i] = e1 * bb[i] + e2;
        pp[i] = q;
    }
    w.matvec("att.output.weight", &rwkv)
}

/// Channel mixing (v4, v5.1, v5.2): `sigmoid(R xr) * (V relu(K xk)²)`.
pub(super) fn channel_mix(w: &Layer, x: &[f32], prev: &[f32]) -> Result<Vec<f32>> {
    let e = x.len();
    let xk = ops::mix(x, prev, &w.vec("ffn.time_mix_k", e)?);
    let xr = ops::mix(x, prev, &w.vec("ffn.time_mix_r", e)?);
    let r = w.matvec("ffn.receptance.weight", &xr)?;
    let k: Vec<f32> = w.matvec("ffn.key.weight", &xk)?.into_iter().map(ops::relu_sq).collect();
    let v = w.matvec("ffn.value.weight", &k)?;
    Ok(r.iter().zip(&v).map(|(&r, v)| ops::sigmoid(r) * v).collect())
}
