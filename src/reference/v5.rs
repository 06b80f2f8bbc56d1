//! RWKV v5.1 and v5.2: multi-head linear attention with a matrix state per head, a group norm
//! over heads, and (v5.2) a SiLU gate. The FFN is v4's.
//!
//! In rwkv.cpp files the decay is stored ready to use, `exp(-exp(time_decay))`. v5.1 has one
//! decay and one bonus per head (`[1, 1, H]`; its `time_first` is stored as `exp(time_first)`);
//! v5.2 has one per channel (`[1, S, H]`; `time_faaaa` stored as is).

use super::{ops, Layer};
use crate::error::Result;
use crate::model::Arch;

pub(super) fn time_mix(w: &Layer, x: &[f32], prev: &[f32], heads: &mut [f32]) -> Result<Vec<f32>> {
    let e = x.len();
    let hp = &w.model.hparams;
    let v5_2 = w.model.arch == Arch::V5_2;
    let (r, k, v) = super::v4::receptance_key_value(w, x, prev)?;

    let (decay, bonus) = if v5_2 {
        (w.vec("att.time_decay", e)?, w.vec("att.time_faaaa", e)?)
    } else {
        // One value per head, the same for each of the head's channels.
        let per_head = |leaf| -> Result<Vec<f32>> {
            Ok(w.vec(leaf, hp.n_head)?.iter().flat_map(|&d| std::iter::repeat(d).take(hp.head_size)).collect())
        };
        (per_head("att.time_decay")?, per_head("att.time_first")?)
    };

    let mut y = wkv(hp.head_size, &r, &k, &v, &decay, &bonus, heads);
    let (ln_w, ln_b) = (w.vec("att.ln_x.weight", e)?, w.vec("att.ln_x.bias", e)?);
    ops::group_norm(&mut y, hp.n_head, &ln_w, &ln_b, ops::GROUP_NORM_EPS_V5);
    if v5_2 {
        let xg = ops::mix(x, prev, &w.vec("att.time_mix_g", e)?);
        let g = w.matvec("att.gate.weight", &xg)?;
        for (y, g) in y.iter_mut().zip(g) {
            *y *= ops::silu(g);
        }
    }
    w.matvec("att.output.weight", &y)
}

/// The v5/v6 WKV step for all heads (head size `s`), updating `state` (`H × S × S`, element
/// `[h][i][j]` for key channel `i` and value channel `j`):
///
/// ```text
/// y[j]       = Σ_i r[i] (u[i] k[i] v[j] + state[i][j])
/// state[i][j] = state[i][j] w[i] + k[i] v[j]
/// ```
/// `w` is the decay (in 0..1) and `u` the bonus of the current token, per channel.
pub(super) fn wkv(s: usize, r: &[f32], k: &[f32], v: &[f32], w: &[f32], u: &[f32], state: &mut [f32]) -> Vec<f32> {
    let mut y = vec![0.0; r.len()];
    for (h, st) in state.chunks_exact_mut(s * s).enumerate() {
        let c = h * s; // first channel of this head
        let v = &v[c..c + s];
        let y = &mut y[c..c + s];
        for i in 0..s {
            let (r, k, w, u) = (r[c + i], k[c + i], w[c + i], u[c + i]);
            let row = &mut st[i * s..(i + 1) * s];
            for j in 0..s {
                let kv = k * v[j];
                y[j] += r * (u * kv + row[j]);
                row[j] = row[j] * w + kv;
            }
        }
    }
    y
}

#[cfg(test)]
mod tests {
    /// Pins the state layout: after one step from zero, `state[h][i][j] = k[i] v[j]` (key rows).
    #[test]
    fn state_rows_are_keys() {
        let (r, k, v) = ([1.0, 0.0, 0.0, 1.0], [1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]);
        let (w, u) = ([0.5; 4], [0.0; 4]);
        let mut state = vec![0.0; 2 * 2 * 2];
        let y = super::wkv(2, &r, &k, &v, &w, &u, &mut state);
        assert_eq!(state, [10.0, 20.0, 20.0, 40.0, 90.0, 120.0, 120.0, 160.0]);
        assert_eq!(y, [0.0; 4], "no bonus and a zero state: nothing to read yet");
        let y = super::wkv(2, &r, &k, &v, &w, &u, &mut state);
        // Head 0 reads key row 0 (r = [1, 0]); head 1 reads key row 1 (r = [0, 1]).
        assert_eq!(y, [10.0, 20.0, 120.0, 160.0]);
    }
}
