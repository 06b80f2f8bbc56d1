//! The forward pass of each architecture as a ggml graph over `T` tokens, following rwkv.cpp's
//! graphs (`rwkv_graph.inc`) with the current ggml's operators (`ggml_rwkv_wkv6` for v5.x and
//! v6, `ggml_rwkv_wkv7` for v7, a custom op for v4's WKV).
//!
//! Shapes are ggml's (`[ne0, ne1, …]`, ne0 fastest): activations are `[E, T]`. The state is one
//! f32 tensor over the caller's buffer; each layer's new state is copied into it once the layer's
//! output is in the graph, i.e. after every node that reads the old state (ggml runs nodes in
//! insertion order).

use core::ffi::c_int;
use core::ptr::null_mut;

use echo_ggml_sys::*;

use super::{wkv4, GgmlModel};
use crate::model::Arch;

type T = *mut ggml_tensor;

const F32_BYTES: usize = 4;
const LAYER_NORM_EPS: f32 = 1e-5;
const GROUP_NORM_EPS_V5: f32 = 1e-5;
const GROUP_NORM_EPS_V6: f32 = 64e-5;
/// v7's decay is `exp(-e^-0.5 · sigmoid(w))`.
const V7_DECAY_SCALE: f32 = -0.606_530_66;

/// What the graph writes besides the state: a tensor over the caller's buffer.
pub(super) enum Out {
    /// The last token's logits (`[n_vocab]`).
    Logits(T),
    /// Every token's hidden state after `ln_out` (`[E × T]`).
    Hidden(T),
}

/// Builds the graph: `tokens` (i32 `[T]`) from `state` (updated in place), with `out` computed
/// into its buffer when given.
///
/// # Safety
/// `ctx` and `graph` are valid and large enough (`super::graph_nodes`); `tokens`, `state` and
/// `out` have data of this model's sizes.
pub(super) unsafe fn build(m: &GgmlModel, ctx: *mut ggml_context, graph: *mut ggml_cgraph, tokens: T, state: T, out: Option<Out>) {
    let g = Graph { m, ctx, graph, hp: &m.model().hparams, arch: m.model().arch, n: (*tokens).ne[0] };
    g.forward(tokens, state, out);
}

struct Graph<'a> {
    m: &'a GgmlModel,
    ctx: *mut ggml_context,
    graph: *mut ggml_cgraph,
    hp: &'a crate::model::Hparams,
    arch: Arch,
    /// Tokens in this graph.
    n: i64,
}

/// What a time-mixing block returns: its output and the (new value, state slot) copies to make.
struct AttOut {
    y: T,
    state: Vec<(T, T)>,
}

impl Graph<'_> {
    unsafe fn forward(&self, tokens: T, state: T, out: Option<Out>) {
        let (c, e) = (self.ctx, self.hp.n_embed);
        let per_layer = self.hp.state_per_layer(self.arch);
        let mut x = ggml_get_rows(c, self.m.get("emb.weight"), tokens);
        x = self.layer_norm(x, self.m.get("blocks.0.ln0.weight"), self.m.get("blocks.0.ln0.bias"));
        let mut v_first = null_mut();
        for l in 0..self.hp.n_layer {
            let slot = |offset: usize, len: usize| ggml_view_1d(c, state, len as i64, (l * per_layer + offset) * F32_BYTES);
            let (ffn_xx, att_xx) = (slot(0, e), slot(e, e));

            let xa = self.layer_norm(x, self.w(l, "ln1.weight"), self.w(l, "ln1.bias"));
            let (prev, carry) = self.token_shift(xa, att_xx);
            let att = match self.arch {
                Arch::V4 => self.att_v4(l, xa, prev, slot(2 * e, 3 * e)),
                Arch::V5_1 | Arch::V5_2 => self.att_v5(l, xa, prev, slot(2 * e, self.hp.head_size * e)),
                Arch::V6 => self.att_v6(l, xa, prev, slot(2 * e, self.hp.head_size * e)),
                Arch::V7 => self.att_v7(l, xa, prev, slot(2 * e, self.hp.head_size * e), &mut v_first),
            };
            x = ggml_add(c, x, att.y);

            let xf = self.layer_norm(x, self.w(l, "ln2.weight"), self.w(l, "ln2.bias"));
            let (fprev, fcarry) = self.token_shift(xf, ffn_xx);
            x = ggml_add(c, x, self.ffn(l, xf, fprev));

            ggml_build_forward_expand(self.graph, x);
            self.copy(carry, att_xx);
            self.copy(fcarry, ffn_xx);
            for (value, slot) in att.state {
                self.copy(value, slot);
            }
        }
        let ln_out = |x| self.layer_norm(x, self.m.get("ln_out.weight"), self.m.get("ln_out.bias"));
        match out {
            Some(Out::Logits(logits)) => {
                let last = ggml_view_1d(c, x, e as i64, (self.n as usize - 1) * e * F32_BYTES);
                self.copy(ggml_mul_mat(c, self.m.get("head.weight"), ln_out(last)), logits);
            }
            Some(Out::Hidden(hidden)) => self.copy(ln_out(x), hidden),
            None => {}
        }
    }

    fn w(&self, layer: usize, leaf: &str) -> T {
        self.m.layer(layer, leaf)
    }

    unsafe fn copy(&self, from: T, to: T) {
        ggml_build_forward_expand(self.graph, ggml_cpy(self.ctx, from, to));
    }

    unsafe fn mm(&self, layer: usize, leaf: &str, x: T) -> T {
        ggml_mul_mat(self.ctx, self.w(layer, leaf), x)
    }

    unsafe fn layer_norm(&self, x: T, weight: T, bias: T) -> T {
        let c = self.ctx;
        ggml_add(c, ggml_mul(c, ggml_norm(c, x, LAYER_NORM_EPS), weight), bias)
    }

    /// The previous token's input for each token (`[E, T]`, or the state slot itself for one
    /// token), and the value to carry to the next call (the last token's).
    unsafe fn token_shift(&self, x: T, carry: T) -> (T, T) {
        let (c, e, n) = (self.ctx, self.hp.n_embed as i64, self.n);
        let row = e as usize * F32_BYTES;
        let prev = if n == 1 {
            carry
        } else {
            let first = ggml_view_2d(c, carry, e, 1, row, 0);
            let rest = ggml_view_2d(c, x, e, n - 1, row, 0);
            ggml_concat(c, first, rest, 1)
        };
        (prev, ggml_view_1d(c, x, e, (n as usize - 1) * row))
    }

    /// `x · mix + prev · (1 − mix)` (v4, v5).
    unsafe fn mix(&self, x: T, prev: T, mix: T) -> T {
        let c = self.ctx;
        ggml_add(c, ggml_mul(c, x, mix), ggml_sub(c, prev, ggml_mul(c, prev, mix)))
    }

    /// `[E, T]` → `[S, H, T]`.
    unsafe fn heads(&self, x: T) -> T {
        ggml_reshape_3d(self.ctx, x, self.hp.head_size as i64, self.hp.n_head as i64, self.n)
    }

    /// Splits a wkv6/wkv7 result (`[E, T + S]`) into the normalized, scaled output `[E, T]` and
    /// the new head matrices.
    unsafe fn wkv_output(&self, l: usize, wkv: T, eps: f32) -> (T, T) {
        let (c, e, n) = (self.ctx, self.hp.n_embed, self.n as usize);
        let y = self.heads(ggml_view_1d(c, wkv, (e * n) as i64, 0));
        let y = ggml_reshape_2d(c, ggml_norm(c, y, eps), e as i64, n as i64);
        let y = ggml_add(c, ggml_mul(c, y, self.w(l, "att.ln_x.weight")), self.w(l, "att.ln_x.bias"));
        let heads = ggml_view_1d(c, wkv, (self.hp.head_size * e) as i64, e * n * F32_BYTES);
        (y, heads)
    }

    unsafe fn att_v4(&self, l: usize, x: T, prev: T, aa_bb_pp: T) -> AttOut {
        let (c, e, n) = (self.ctx, self.hp.n_embed as i64, self.n);
        let r = ggml_sigmoid(c, self.mm(l, "att.receptance.weight", self.mix(x, prev, self.w(l, "att.time_mix_r"))));
        let k = self.mm(l, "att.key.weight", self.mix(x, prev, self.w(l, "att.time_mix_k")));
        let v = self.mm(l, "att.value.weight", self.mix(x, prev, self.w(l, "att.time_mix_v")));
        let mut args = [k, v, self.w(l, "att.time_first"), self.w(l, "att.time_decay"), aa_bb_pp];
        let wkv = ggml_custom_4d(c, GGML_TYPE_F32, e, n + 3, 1, 1, args.as_mut_ptr(), args.len() as c_int, Some(wkv4::compute), wkv4::TASKS, null_mut());
        let row = e as usize * F32_BYTES;
        let y = ggml_view_2d(c, wkv, e, n, row, 0);
        let new_state = ggml_view_1d(c, wkv, 3 * e, n as usize * row);
        AttOut { y: self.mm(l, "att.output.weight", ggml_mul(c, r, y)), state: vec![(new_state, aa_bb_pp)] }
    }

    unsafe fn att_v5(&self, l: usize, x: T, prev: T, heads: T) -> AttOut {
        let c = self.ctx;
        let (s, h, n) = (self.hp.head_size as i64, self.hp.n_head as i64, self.n);
        let r = self.heads(self.mm(l, "att.receptance.weight", self.mix(x, prev, self.w(l, "att.time_mix_r"))));
        let k = self.heads(self.mm(l, "att.key.weight", self.mix(x, prev, self.w(l, "att.time_mix_k"))));
        let v = self.heads(self.mm(l, "att.value.weight", self.mix(x, prev, self.w(l, "att.time_mix_v"))));
        // Decay and bonus per channel: v5.2 stores them per channel ([1, S, H]), v5.1 per head
        // ([1, 1, H]); wkv6 wants the decay for every token.
        let per_token = ggml_new_tensor_3d(c, GGML_TYPE_F32, s, h, n);
        let (bonus, decay) = if self.arch == Arch::V5_2 {
            (self.w(l, "att.time_faaaa"), ggml_repeat(c, ggml_reshape_3d(c, self.w(l, "att.time_decay"), s, h, 1), per_token))
        } else {
            let channels = ggml_new_tensor_2d(c, GGML_TYPE_F32, s, h);
            let per_head = |leaf| ggml_reshape_2d(c, self.w(l, leaf), 1, h);
            (ggml_repeat(c, per_head("att.time_first"), channels), ggml_repeat(c, per_head("att.time_decay"), per_token))
        };
        let wkv = ggml_rwkv_wkv6(c, k, v, r, bonus, decay, heads);
        let (mut y, new_heads) = self.wkv_output(l, wkv, GROUP_NORM_EPS_V5);
        if self.arch == Arch::V5_2 {
            let g = ggml_silu(c, self.mm(l, "att.gate.weight", self.mix(x, prev, self.w(l, "att.time_mix_g"))));
            y = ggml_mul(c, y, g);
        }
        AttOut { y: self.mm(l, "att.output.weight", y), state: vec![(new_heads, heads)] }
    }

    unsafe fn att_v6(&self, l: usize, x: T, prev: T, heads: T) -> AttOut {
        let (c, e, n) = (self.ctx, self.hp.n_embed as i64, self.n);
        let sx = ggml_sub(c, prev, x);
        let xxx = ggml_add(c, ggml_mul(c, sx, self.w(l, "att.time_maa_x")), x);
        // Five LoRAs at once: tanh(W1 xxx) is [5m, T] = five [m] inputs per token; W2 is five
        // [m → E] matrices ([m, E, 5]); a batched product gives [E, 1, T, 5].
        let w1 = self.w(l, "att.time_maa_w1");
        let rank = (*w1).ne[1] / 5;
        let lora = ggml_reshape_4d(c, ggml_tanh(c, ggml_mul_mat(c, w1, xxx)), rank, 1, 5, n);
        let lora = ggml_cont(c, ggml_permute(c, lora, 0, 1, 3, 2));
        let w2 = self.w(l, "att.time_maa_w2");
        let mixes = ggml_mul_mat(c, ggml_reshape_4d(c, w2, (*w2).ne[0], (*w2).ne[1], 1, 5), lora);
        let row = e as usize * F32_BYTES;
        let input = |i: usize, leaf: &str| {
            let m = ggml_view_2d(c, mixes, e, n, row, i * n as usize * row);
            ggml_add(c, ggml_mul(c, ggml_add(c, m, self.w(l, leaf)), sx), x)
        };
        let (xw, xk, xv, xr, xg) = (
            input(0, "att.time_maa_w"),
            input(1, "att.time_maa_k"),
            input(2, "att.time_maa_v"),
            input(3, "att.time_maa_r"),
            input(4, "att.time_maa_g"),
        );
        let r = self.heads(self.mm(l, "att.receptance.weight", xr));
        let k = self.heads(self.mm(l, "att.key.weight", xk));
        let v = self.heads(self.mm(l, "att.value.weight", xv));
        let g = ggml_silu(c, self.mm(l, "att.gate.weight", xg));

        let w = self.mm(l, "att.time_decay_w2", ggml_tanh(c, self.mm(l, "att.time_decay_w1", xw)));
        let w = ggml_add(c, w, ggml_reshape_1d(c, self.w(l, "att.time_decay"), e));
        let w = self.heads(ggml_exp(c, ggml_neg(c, ggml_exp(c, w))));

        let wkv = ggml_rwkv_wkv6(c, k, v, r, self.w(l, "att.time_faaaa"), w, heads);
        let (y, new_heads) = self.wkv_output(l, wkv, GROUP_NORM_EPS_V6);
        AttOut { y: self.mm(l, "att.output.weight", ggml_mul(c, y, g)), state: vec![(new_heads, heads)] }
    }

    unsafe fn att_v7(&self, l: usize, x: T, prev: T, heads: T, v_first: &mut T) -> AttOut {
        let (c, e, n) = (self.ctx, self.hp.n_embed as i64, self.n);
        let sx = ggml_sub(c, prev, x);
        // The six token-shifted inputs r, w, k, v, a, g from one [E, T, 6] product.
        let sx6 = ggml_repeat(c, sx, ggml_new_tensor_3d(c, GGML_TYPE_F32, e, n, 6));
        let xxx = ggml_add(c, ggml_mul(c, sx6, self.w(l, "att.x_rwkvag")), x);
        let row = e as usize * F32_BYTES;
        let input = |i: usize| ggml_view_2d(c, xxx, e, n, row, i * n as usize * row);
        let (xr, xw, xk, xv, xa, xg) = (input(0), input(1), input(2), input(3), input(4), input(5));
        let lora = |first: &str, second: &str, x: T| self.mm(l, second, self.mm(l, first, x));

        let r = self.mm(l, "att.receptance.weight", xr);
        let w = ggml_add(c, self.mm(l, "att.w2", ggml_tanh(c, self.mm(l, "att.w1", xw))), self.w(l, "att.w0"));
        let w = ggml_exp(c, ggml_scale(c, ggml_sigmoid(c, w), V7_DECAY_SCALE));
        let a = ggml_sigmoid(c, ggml_add(c, lora("att.a1", "att.a2", xa), self.w(l, "att.a0")));
        let g = self.mm(l, "att.g2", ggml_sigmoid(c, self.mm(l, "att.g1", xg)));

        let k = self.mm(l, "att.key.weight", xk);
        let kk = ggml_l2_norm(c, self.heads(ggml_mul(c, k, self.w(l, "att.k_k"))), 1e-12);
        let ka = ggml_mul(c, k, self.w(l, "att.k_a"));
        let k = ggml_add(c, k, ggml_sub(c, ggml_mul(c, a, ka), ka));

        let mut v = self.mm(l, "att.value.weight", xv);
        if v_first.is_null() {
            *v_first = v;
        } else {
            let gate = ggml_sigmoid(c, ggml_add(c, lora("att.v1", "att.v2", xv), self.w(l, "att.v0")));
            v = ggml_add(c, v, ggml_mul(c, ggml_sub(c, *v_first, v), gate));
        }

        let (r, w, k, v, a) = (self.heads(r), self.heads(w), self.heads(k), self.heads(v), self.heads(a));
        let wkv = ggml_rwkv_wkv7(c, r, w, k, v, ggml_neg(c, kk), ggml_mul(c, kk, a), heads);
        let (y, new_heads) = self.wkv_output(l, wkv, GROUP_NORM_EPS_V6);
        let bonus = ggml_mul(c, v, ggml_sum_rows(c, ggml_mul(c, ggml_mul(c, k, r), self.w(l, "att.r_k"))));
        let y = ggml_add(c, y, ggml_reshape_2d(c, bonus, e, n));
        AttOut { y: self.mm(l, "att.output.weight", ggml_mul(c, y, g)), state: vec![(new_heads, heads)] }
    }

    unsafe fn ffn(&self, l: usize, x: T, prev: T) -> T {
        let c = self.ctx;
        let key = |xk: T| ggml_sqr(c, ggml_relu(c, self.mm(l, "ffn.key.weight", xk)));
        match self.arch {
            Arch::V4 | Arch::V5_1 | Arch::V5_2 => {
                let xk = self.mix(x, prev, self.w(l, "ffn.time_mix_k"));
                let xr = self.mix(x, prev, self.w(l, "ffn.time_mix_r"));
                let r = ggml_sigmoid(c, self.mm(l, "ffn.receptance.weight", xr));
                ggml_mul(c, r, self.mm(l, "ffn.value.weight", key(xk)))
            }
            Arch::V6 => {
                let sx = ggml_sub(c, prev, x);
                let xk = ggml_add(c, ggml_mul(c, sx, self.w(l, "ffn.time_maa_k")), x);
                let xr = ggml_add(c, ggml_mul(c, sx, self.w(l, "ffn.time_maa_r")), x);
                let r = ggml_sigmoid(c, self.mm(l, "ffn.receptance.weight", xr));
                ggml_mul(c, r, self.mm(l, "ffn.value.weight", key(xk)))
            }
            Arch::V7 => {
                let sx = ggml_sub(c, prev, x);
                let xk = ggml_add(c, ggml_mul(c, sx, self.w(l, "ffn.x_k")), x);
                self.mm(l, "ffn.value.weight", key(xk))
            }
        }
    }
}
