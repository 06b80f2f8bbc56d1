//! The reference backend: RWKV v4, v5.1, v5.2, v6 and v7 forward passes in plain Rust f32,
//! written for reading. It is the oracle the ggml backend is tested against, and a fallback.
//!
//! Weights are used in their stored type: matrices are dequantized one row at a time inside the
//! matrix-vector product (`ops::matvec`), vectors are converted when used. Activations, sums
//! and the state are f32 (normalization statistics are summed in f64). Unlike rwkv.cpp/ggml, the
//! activations are never rounded to f16 or quantized to Q8 before a product, so for FP16 and
//! quantized files this backend computes the exact product of the stored weights.
//!
//! A sequence is evaluated one token after the other, which is what rwkv.cpp's sequence mode
//! computes too; logits are produced for the last token only.
//!
//! # State layout (exactly rwkv.cpp's)
//!
//! The state is `n_layer` consecutive blocks of `Hparams::state_per_layer` floats, layer 0 first
//! (rwkv.cpp `rwkv_create_input_and_output_views`). Let `E = n_embed`, `H = n_head`,
//! `S = head_size`.
//!
//! * v4, `5 × E` per layer: `ffn_xx, att_xx, att_aa, att_bb, att_pp`, `E` floats each.
//!   `ffn_xx`/`att_xx` are the previous token's ln2/ln1 outputs; `aa`, `bb`, `pp` are the WKV
//!   numerator, denominator and their shared exponent. Initial state: zeros, `att_pp = -1e30`.
//! * v5.1, v5.2, v6, v7, `(2 + S) × E` per layer: `ffn_xx` (`E`), `att_xx` (`E`), then the heads'
//!   matrices, `H × S × S` floats: head `h`'s matrix starts at `h × S × S` and is row-major with
//!   rows of `S`. Initial state: zeros.
//!   - v5.1, v5.2, v6: element `[h][i][j]` pairs **key** channel `i` with **value** channel `j`
//!     (`s[i][j] = s[i][j] × w[i] + k[i] × v[j]`; ggml `rwkv_wkv6`, rwkv.cpp's older `wkv_v5`).
//!   - v7: element `[h][i][j]` pairs **value** channel `i` with **key** channel `j` — the other
//!     way round (`s[i][j] = s[i][j] × w[j] + v[i] × k[j] + (Σ_l a[l] s[i][l]) × b[j]`; ggml
//!     `rwkv_wkv7`, rwkv.cpp's `wkv_v7`, BlinkDL's `state[H][N_v][N_k]`).
//!
//!   v7's value residual (`v_first`, layer 0's value, mixed into later layers' values) belongs to
//!   the current token only and is not part of the state.

mod dequant;
mod ops;
mod v4;
mod v5;
mod v6;
mod v7;

pub use dequant::{dequantize_row, tensor_to_f32};
pub(crate) use v4::wkv_channel as v4_wkv_channel;

use crate::error::{Error, Result};
use crate::model::{Arch, Model, Tensor};

/// Evaluates `tokens` in order from `state` (updated in place); writes the logits of the last
/// token when asked.
///
/// Errors: `InvalidOptions` for an empty `tokens`, a token `>= n_vocab`, or a `state`/`logits`
/// of the wrong length (nothing is changed then); `InvalidModel` when a tensor's shape does not
/// fit its use (the state is then unspecified).
pub fn eval(model: &Model, tokens: &[u32], state: &mut [f32], logits: Option<&mut [f32]>) -> Result<()> {
    model.check_eval(tokens, state, logits.as_deref())?;
    let x = feed(model, tokens, state, |_, _| Ok(()))?;
    if let Some(out) = logits {
        let x = ln_out(model)?(&x);
        ops::matvec_rows(model.tensor("head.weight"), 0, &x, out)?;
    }
    Ok(())
}

/// Evaluates `tokens` like [`eval`] and writes each token's final hidden state normalised by
/// `ln_out` into `hidden` (`n_embed` floats per token). Errors as [`eval`]'s, and
/// `InvalidOptions` for a `hidden` of the wrong length.
pub fn eval_hidden(model: &Model, tokens: &[u32], state: &mut [f32], hidden: &mut [f32]) -> Result<()> {
    model.check_hidden(tokens, state, hidden)?;
    let (e, norm) = (model.hparams.n_embed, ln_out(model)?);
    feed(model, tokens, state, |i, x| {
        hidden[i * e..(i + 1) * e].copy_from_slice(&norm(x));
        Ok(())
    })?;
    Ok(())
}

/// Runs `tokens` through the layers one after the other, calling `each(i, x)` with token `i`'s
/// residual stream; returns the last token's.
fn feed(model: &Model, tokens: &[u32], state: &mut [f32], mut each: impl FnMut(usize, &[f32]) -> Result<()>) -> Result<Vec<f32>> {
    let h = &model.hparams;
    let e = h.n_embed;
    let per_layer = h.state_per_layer(model.arch);
    let (ln0_w, ln0_b) = (vector(model.tensor("blocks.0.ln0.weight"), e)?, vector(model.tensor("blocks.0.ln0.bias"), e)?);
    let emb = model.tensor("emb.weight");
    let mut x = vec![0.0; e];
    for (i, &token) in tokens.iter().enumerate() {
        embedding(emb, token as usize, &mut x)?;
        x = ops::layer_norm(&x, &ln0_w, &ln0_b);
        let mut v_first = Vec::new();
        for (l, layer_state) in state.chunks_exact_mut(per_layer.max(1)).enumerate() {
            block(&Layer { model, index: l }, &mut x, layer_state, &mut v_first)?;
        }
        each(i, &x)?;
    }
    Ok(x)
}

/// `ln_out`, its weights decoded once.
fn ln_out(model: &Model) -> Result<impl Fn(&[f32]) -> Vec<f32>> {
    let e = model.hparams.n_embed;
    let (w, b) = (vector(model.tensor("ln_out.weight"), e)?, vector(model.tensor("ln_out.bias"), e)?);
    Ok(move |x: &[f32]| ops::layer_norm(x, &w, &b))
}

/// Row `token` of the embedding matrix.
fn embedding(emb: &Tensor, token: usize, x: &mut [f32]) -> Result<()> {
    let n = emb.info.ne(0);
    let row_bytes = emb.info.dtype.row_bytes(n);
    match row_bytes {
        Some(rb) if n == x.len() && (token + 1) * rb <= emb.data.len() => {
            dequantize_row(emb.info.dtype, &emb.data.as_slice()[token * rb..(token + 1) * rb], x);
            Ok(())
        }
        _ => Err(Error::invalid_model(format!("'emb.weight' of shape {:?} has no row {token}", emb.info.shape))),
    }
}

/// One layer: time mixing (attention) then channel mixing (FFN), each on a layer-normed copy of
/// the residual stream `x` and the previous token's normed input from the state.
fn block(w: &Layer, x: &mut [f32], state: &mut [f32], v_first: &mut Vec<f32>) -> Result<()> {
    let e = x.len();
    let (ffn_xx, rest) = state.split_at_mut(e);
    let (att_xx, att_state) = rest.split_at_mut(e);

    let xa = ops::layer_norm(x, &w.vec("ln1.weight", e)?, &w.vec("ln1.bias", e)?);
    let att = match w.model.arch {
        Arch::V4 => v4::time_mix(w, &xa, att_xx, att_state)?,
        Arch::V5_1 | Arch::V5_2 => v5::time_mix(w, &xa, att_xx, att_state)?,
        Arch::V6 => v6::time_mix(w, &xa, att_xx, att_state)?,
        Arch::V7 => v7::time_mix(w, &xa, att_xx, att_state, v_first)?,
    };
    att_xx.copy_from_slice(&xa);
    ops::add(x, &att);

    let xf = ops::layer_norm(x, &w.vec("ln2.weight", e)?, &w.vec("ln2.bias", e)?);
    let ffn = match w.model.arch {
        Arch::V4 | Arch::V5_1 | Arch::V5_2 => v4::channel_mix(w, &xf, ffn_xx)?,
        Arch::V6 => v6::channel_mix(w, &xf, ffn_xx)?,
        Arch::V7 => v7::channel_mix(w, &xf, ffn_xx)?,
    };
    ffn_xx.copy_from_slice(&xf);
    ops::add(x, &ffn);
    Ok(())
}

/// The weights of one layer, by leaf name (`"att.key.weight"`).
struct Layer<'a> {
    model: &'a Model,
    index: usize,
}

impl Layer<'_> {
    fn tensor(&self, leaf: &str) -> Result<&Tensor> {
        self.model
            .layer_opt(self.index, leaf)
            .ok_or_else(|| Error::invalid_model(format!("tensor 'blocks.{}.{leaf}' is missing", self.index)))
    }

    /// A vector (or small tensor) of exactly `len` elements, as f32.
    fn vec(&self, leaf: &str, len: usize) -> Result<Vec<f32>> {
        vector(self.tensor(leaf)?, len)
    }

    /// `W x` with the layer's matrix `leaf`.
    fn matvec(&self, leaf: &str, x: &[f32]) -> Result<Vec<f32>> {
        ops::matvec(self.tensor(leaf)?, x)
    }
}

fn vector(t: &Tensor, len: usize) -> Result<Vec<f32>> {
    if t.info.n_elements() != len {
        return Err(Error::invalid_model(format!(
            "tensor '{}' has shape {:?} but {len} elements are needed",
            t.info.name, t.info.shape
        )));
    }
    Ok(tensor_to_f32(t))
}
