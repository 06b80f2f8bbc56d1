//! RWKV v6: v5.2's heads with data-dependent token shift (a LoRA per mixed input) and a
//! data-dependent decay.
//!
//! rwkv.cpp file layout: `time_maa_w1` is `[E, 5 m]` (its output is the five LoRA inputs, `m`
//! floats each, in the order w, k, v, r, g); `time_maa_w2` is `[m, E, 5]`, five `E × m`
//! matrices one after the other; `time_decay` (`[1, S, H]`) is the raw decay base, turned into a
//! decay per token as `exp(-exp(time_decay + D2 tanh(D1 xw)))`; `time_faaaa` is the bonus `u`.

use super::{ops, v4, v5, Layer};
use crate::error::Result;

pub(super) fn time_mix(w: &Layer, x: &[f32], prev: &[f32], heads: &mut [f32]) -> Result<Vec<f32>> {
    let e = x.len();
    let hp = &w.model.hparams;

    // The five token-shift amounts: time_maa_{w,k,v,r,g} + W2[n] tanh(W1 xxx)[n].
    let xxx = ops::shift(x, prev, &w.vec("att.time_maa_x", e)?);
    let lora: Vec<f32> = w.matvec("att.time_maa_w1", &xxx)?.into_iter().map(f32::tanh).collect();
    let rank = lora.len() / 5;
    let w2 = w.tensor("att.time_maa_w2")?;
    let shifted = |n: usize, leaf: &str| -> Result<Vec<f32>> {
        let mut m = vec![0.0; e];
        ops::matvec_rows(w2, n * e, &lora[n * rank..(n + 1) * rank], &mut m)?;
        ops::add(&mut m, &w.vec(leaf, e)?);
        Ok(ops::shift(x, prev, &m))
    };
    let xw = shifted(0, "att.time_maa_w")?;
    let xk = shifted(1, "att.time_maa_k")?;
    let xv = shifted(2, "att.time_maa_v")?;
    let xr = shifted(3, "att.time_maa_r")?;
    let xg = shifted(4, "att.time_maa_g")?;

    let r = w.matvec("att.receptance.weight", &xr)?;
    let k = w.matvec("att.key.weight", &xk)?;
    let v = w.matvec("att.value.weight", &xv)?;
    let g = w.matvec("att.gate.weight", &xg)?;

    let d: Vec<f32> = w.matvec("att.time_decay_w1", &xw)?.into_iter().map(f32::tanh).collect();
    let mut decay = w.matvec("att.time_decay_w2", &d)?;
    ops::add(&mut decay, &w.vec("att.time_decay", e)?);
    for d in decay.iter_mut() {
        *d = (-d.exp()).exp();
    }

    let bonus = w.vec("att.time_faaaa", e)?;
    let mut y = v5::wkv(hp.head_size, &r, &k, &v, &decay, &bonus, heads);
    let (ln_w, ln_b) = (w.vec("att.ln_x.weight", e)?, w.vec("att.ln_x.bias", e)?);
    ops::group_norm(&mut y, hp.n_head, &ln_w, &ln_b, ops::GROUP_NORM_EPS_V6);
    for (y, g) in y.iter_mut().zip(g) {
        *y *= ops::silu(g);
    }
    w.matvec("att.output.weight", &y)
}

/// Channel mixing: `sigmoid(R xr) * (V relu(K xk)²)` with v6's token shift.
pub(super) fn channel_mix(w: &Layer, x: &[f32], prev: &[f32]) -> Result<Vec<f32>> {
    let e = x.len();
    let xk = ops::shift(x, prev, &w.vec("ffn.time_maa_k", e)?);
    let xr = ops::shift(x, prev, &w.vec("ffn.time_maa_r", e)?);
    v4::gated_ffn(w, &xk, &xr)
}
