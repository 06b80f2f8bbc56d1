//! RWKV v7 ("Goose"): a generalized delta rule on each head's matrix state, LoRA-made decay,
//! in-context learning rate and gate, and a value residual from the first layer.
//!
//! rwkv.cpp file layout: `x_rwkvag` is `[E, 1, 6]`, the token-shift amounts for r, w, k, v, a, g
//! one after the other; LoRA pairs (`w1`/`w2`, `a1`/`a2`, `v1`/`v2`, `g1`/`g2`) are stored as
//! matrices `[E, rank]` and `[rank, E]` (so `W2 (W1 x)` is BlinkDL's `(x @ w1) @ w2`); `w0`, `a0`,
//! `v0`, `k_k`, `k_a` are `[E, 1, 1]` vectors; `r_k` is `[S, H]`.

use super::{ops, Layer};
use crate::error::{Error, Result};

/// e^-0.5: the decay is `exp(-e^-0.5 · sigmoid(w))`, i.e. BlinkDL's
/// `exp(-exp(-softplus(-w) - 0.5))` (rwkv.cpp writes the constant as 0.606531).
const DECAY_SCALE: f32 = 0.606_530_66;

/// Time mixing. `v_first` is empty on entry to layer 0, which fills it with its value; later
/// layers read it.
pub(super) fn time_mix(w: &Layer, x: &[f32], prev: &[f32], heads: &mut [f32], v_first: &mut Vec<f32>) -> Result<Vec<f32>> {
    let e = x.len();
    let hp = &w.model.hparams;
    let (n_head, s) = (hp.n_head, hp.head_size);
    let mixes = w.vec("att.x_rwkvag", 6 * e)?;
    let input = |n: usize| ops::shift(x, prev, &mixes[n * e..(n + 1) * e]);
    let (xr, xw, xk, xv, xa, xg) = (input(0), input(1), input(2), input(3), input(4), input(5));

    let r = w.matvec("att.receptance.weight", &xr)?;

    // Decay: w0 + W2 tanh(W1 xw), squashed into (exp(-e^-0.5), 1).
    let mut decay = lora(w, "att.w1", "att.w2", &xw, f32::tanh)?;
    for (d, w0) in decay.iter_mut().zip(w.vec("att.w0", e)?) {
        *d = (-DECAY_SCALE * ops::sigmoid(*d + w0)).exp();
    }

    // In-context learning rate a = sigmoid(a0 + A2 A1 xa).
    let mut a = lora(w, "att.a1", "att.a2", &xa, |t| t)?;
    for (a, a0) in a.iter_mut().zip(w.vec("att.a0", e)?) {
        *a = ops::sigmoid(*a + a0);
    }

    // kk: the removal key, k * k_k normalized per head; k itself is scaled by 1 + (a - 1) k_a.
    let mut k = w.matvec("att.key.weight", &xk)?;
    let mut kk: Vec<f32> = k.iter().zip(w.vec("att.k_k", e)?).map(|(k, k_k)| k * k_k).collect();
    for head in kk.chunks_exact_mut(s) {
        ops::l2_normalize(head);
    }
    for ((k, a), k_a) in k.iter_mut().zip(&a).zip(w.vec("att.k_a", e)?) {
        *k *= 1.0 + (a - 1.0) * k_a;
    }

    // Value, mixed with layer 0's value by a learned per-channel amount.
    let mut v = w.matvec("att.value.weight", &xv)?;
    if w.index == 0 {
        *v_first = v.clone();
    } else {
        if v_first.len() != e {
            return Err(Error::invalid_model("v7 layer 0 did not produce the value residual"));
        }
        let mut gate = lora(w, "att.v1", "att.v2", &xv, |t| t)?;
        for ((g, v0), (v, vf)) in gate.iter_mut().zip(w.vec("att.v0", e)?).zip(v.iter_mut().zip(v_first.iter())) {
            *g = ops::sigmoid(*g + v0);
            *v += (vf - *v) * *g;
        }
    }

    // Gate g = G2 sigmoid(G1 xg).
    let g = lora(w, "att.g1", "att.g2", &xg, ops::sigmoid)?;

    let removal: Vec<f32> = kk.iter().map(|kk| -kk).collect();
    let replacement: Vec<f32> = kk.iter().zip(&a).map(|(kk, a)| kk * a).collect();
    let mut y = wkv(s, &r, &decay, &k, &v, &removal, &replacement, heads);

    let (ln_w, ln_b) = (w.vec("att.ln_x.weight", e)?, w.vec("att.ln_x.bias", e)?);
    ops::group_norm(&mut y, n_head, &ln_w, &ln_b, ops::GROUP_NORM_EPS_V6);

    // Bonus: each head adds its value scaled by Σ r k r_k over the head.
    let r_k = w.vec("att.r_k", e)?;
    for h in 0..n_head {
        let c = h * s..(h + 1) * s;
        let bonus: f32 = c.clone().map(|i| r[i] * k[i] * r_k[i]).sum();
        for i in c {
            y[i] += v[i] * bonus;
        }
    }

    for (y, g) in y.iter_mut().zip(g) {
        *y *= g;
    }
    w.matvec("att.output.weight", &y)
}

/// `B f(A x)` for a LoRA pair of matrices.
fn lora(w: &Layer, first: &str, second: &str, x: &[f32], f: impl Fn(f32) -> f32) -> Result<Vec<f32>> {
    let hidden: Vec<f32> = w.matvec(first, x)?.into_iter().map(f).collect();
    w.matvec(second, &hidden)
}

/// The v7 WKV step for all heads (head size `s`), updating `state` (`H × S × S`, element
/// `[h][i][j]` for **value** channel `i` and **key** channel `j`):
///
/// ```text
/// sa          = Σ_j a[j] state[i][j]
/// state[i][j] = state[i][j] w[j] + v[i] k[j] + sa b[j]
/// y[i]        = Σ_j state[i][j] r[j]
/// ```
/// i.e. `S ← S (diag(w) + aᵀb) + vᵀk`, `y = S r`, with `a = -kk` and `b = kk · a_rate`.
#[allow(clippy::too_many_arguments)]
fn wkv(s: usize, r: &[f32], w: &[f32], k: &[f32], v: &[f32], a: &[f32], b: &[f32], state: &mut [f32]) -> Vec<f32> {
    let mut y = vec![0.0; r.len()];
    for (h, st) in state.chunks_exact_mut(s * s).enumerate() {
        let c = h * s..(h + 1) * s;
        let (r, w, k, v, a, b) = (&r[c.clone()], &w[c.clone()], &k[c.clone()], &v[c.clone()], &a[c.clone()], &b[c.clone()]);
        for (i, row) in st.chunks_exact_mut(s).enumerate() {
            let sa = ops::dot(a, row);
            for j in 0..s {
                row[j] = row[j] * w[j] + v[i] * k[j] + sa * b[j];
            }
            y[c.start + i] = ops::dot(row, r);
        }
    }
    y
}

/// Channel mixing: `V relu(K xk)²` (no receptance in v7).
pub(super) fn channel_mix(w: &Layer, x: &[f32], prev: &[f32]) -> Result<Vec<f32>> {
    let xk = ops::shift(x, prev, &w.vec("ffn.x_k", x.len())?);
    super::v4::ffn_value(w, &xk)
}

#[cfg(test)]
mod tests {
    /// Pins the state layout: after one step from zero, `state[h][i][j] = v[i] k[j]` (value rows).
    #[test]
    fn state_rows_are_values() {
        let (k, v) = ([1.0, 2.0], [10.0, 20.0]);
        let (r, w, zero) = ([1.0, 0.0], [0.5; 2], [0.0; 2]);
        let mut state = vec![0.0; 4];
        let y = super::wkv(2, &r, &w, &k, &v, &zero, &zero, &mut state);
        assert_eq!(state, [10.0, 20.0, 20.0, 40.0]);
        // y = S r reads key column 0: [v0 k0, v1 k0].
        assert_eq!(y, [10.0, 20.0]);
        // The delta rule: a = [1, 0], b = [0, 1] moves 1 × column 0 into column 1 (after decay).
        let y = super::wkv(2, &[0.0, 1.0], &w, &zero, &zero, &[1.0, 0.0], &[0.0, 1.0], &mut state);
        assert_eq!(state, [5.0, 20.0, 10.0, 40.0]);
        assert_eq!(y, [20.0, 40.0]);
    }
}
