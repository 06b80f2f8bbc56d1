//! The memory cap at evaluation time, natively: the estimates the budget is checked with
//! (`ggml::compute_bytes` from a loaded model, `backend::eval_bytes_bound` from a file header)
//! bound what ggml really allocates, for every fixture and for 169M-class models; and an
//! evaluation that does not fit is a typed `out_of_memory` after which the context still works.
//!
//! Natively ggml's C allocations (the graph allocator's buffer and bookkeeping) use libc, not
//! the counting allocator: "measured" is what ggml reports, and the "counted" peak is the Rust
//! side only. In wasm everything is counted; `tests/node/memory.test.mjs` checks it end to end.
//!
//! The allocator's limit and peak are global, so the tests here take turns (`LOCK`).

mod common;

use std::sync::{Arc, Mutex};

use echo_engine::backend;
use echo_engine::format::DType;
use echo_engine::ggml::{compute_bytes, compute_memory, ComputeMemory, GgmlContext, GgmlModel, SEQ_CHUNK};
use echo_engine::model::{Arch, LoadOptions, Model, ModelLoader, StreamingLoad};
use echo_engine::synth::{self, SynthSpec};
use echo_engine::ErrorCode;
use echo_ggml_sys::mem;

static LOCK: Mutex<()> = Mutex::new(());

/// A random-weight model, streamed from `synth` straight into the loader (no file copy).
fn synth_model(arch: Arch, n_embed: usize, n_layer: usize, n_vocab: usize, dtype: DType) -> Model {
    let spec = SynthSpec { arch, n_embed, n_layer, n_vocab, n_ffn: None, head_size: None, dtype, seed: 1 };
    let mut loader = ModelLoader::new(LoadOptions::default());
    synth::write(&spec, |bytes| loader.push(bytes)).unwrap();
    loader.finish().unwrap()
}

/// Evaluates a full chunk (the largest graph), then one token (the other graph shape), then a
/// full chunk's hidden states (embeddings), and returns what the context allocated and the
/// counting allocator's peak above `used` before.
fn measure(model: Arc<Model>) -> (ComputeMemory, usize) {
    let mut state = model.initial_state();
    let mut logits = vec![0.0; model.hparams.n_vocab];
    let mut hidden = vec![0.0; SEQ_CHUNK * model.hparams.n_embed];
    let tokens: Vec<u32> = (0..SEQ_CHUNK as u32).map(|i| i * 7 % model.hparams.n_vocab as u32).collect();
    let before = mem::used_bytes();
    mem::reset_peak();
    let mut ctx = GgmlContext::new(Arc::new(GgmlModel::new(model.clone()).unwrap()), 1).unwrap();
    ctx.eval(&tokens, &mut state, Some(&mut logits)).unwrap();
    ctx.eval(&tokens[..1], &mut state, Some(&mut logits)).unwrap();
    ctx.eval_hidden(&tokens, &mut state, &mut hidden).unwrap();
    assert!(hidden.iter().all(|h| h.is_finite()));
    assert!(logits.iter().all(|l| l.is_finite()));
    (ctx.allocated(), mem::peak_bytes() - before)
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn estimates_bound_what_ggml_allocates() {
    let _turn = LOCK.lock().unwrap();
    let mut models: Vec<(String, Model)> = Vec::new();
    let dir = common::fixtures_dir();
    for &(file, _, _) in common::MODELS {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        models.push((file.into(), echo_engine::model::load_bytes(&bytes, LoadOptions::default()).unwrap()));
    }
    // 169M-class models (rwkv-4-pile-169m's sizes), and the other architectures at that size.
    for (arch, dtype) in [(Arch::V4, DType::F16), (Arch::V4, DType::Q5_1), (Arch::V5_2, DType::Q5_1), (Arch::V6, DType::Q5_1), (Arch::V7, DType::F16), (Arch::V7, DType::Q5_1)] {
        models.push((format!("synth {} 768x12 50277 {}", arch.name(), dtype.name()), synth_model(arch, 768, 12, 50277, dtype)));
    }
    println!("{:34} {:>9} {:>9} {:>6} | {:>6} {:>6} {:>6} {:>6} | {:>9} {:>9}", "model", "measured", "estimate", "margin", "model", "graph", "buffer", "work", "counted", "header");
    for (name, model) in models {
        let model = Arc::new(model);
        let (hp, arch, header) = (model.hparams, model.arch, model.header);
        let (measured, peak) = measure(model.clone());
        let estimate = compute_memory(&hp, arch);
        let bound = backend::eval_bytes_bound(&header) as usize;
        let margin = |m: usize, e: usize| if m == 0 { "     -".into() } else { format!("{:5.0}%", 100.0 * (e as f64 / m as f64 - 1.0)) };
        let parts = |m: &ComputeMemory| [m.model, m.graph, m.buffer, m.work];
        let part_margins: Vec<String> = parts(&measured).iter().zip(parts(&estimate)).map(|(&m, e)| margin(m, e)).collect();
        println!(
            "{name:34} {:9} {:9} {} | {} | {peak:9} {bound:9}",
            measured.total(),
            estimate.total(),
            margin(measured.total(), estimate.total()),
            part_margins.join(" ")
        );
        for ((part, m), e) in ["model", "graph", "buffer", "work"].iter().zip(parts(&measured)).zip(parts(&estimate)) {
            assert!(m <= e, "{name}: ggml's {part} took {m} bytes, over the estimate {e}");
        }
        assert!(peak <= estimate.total(), "{name}: the allocator's peak {peak} is over the estimate {}", estimate.total());
        let needed = compute_bytes(&hp, arch) + 4 * model.state_len();
        assert!(needed <= bound, "{name}: the header bound {bound} is under the estimate {needed} (with the state)");
    }
}

/// Removes the allocator's limit when dropped, even when an assertion fails.
struct Unlimited;

impl Drop for Unlimited {
    fn drop(&mut self) {
        mem::set_limit(None);
    }
}

fn fresh_logits(model: &Arc<Model>, tokens: &[u32]) -> Vec<f32> {
    let mut ctx = GgmlContext::new(Arc::new(GgmlModel::new(model.clone()).unwrap()), 1).unwrap();
    let (mut state, mut logits) = (model.initial_state(), vec![0.0; model.hparams.n_vocab]);
    ctx.eval(tokens, &mut state, Some(&mut logits)).unwrap();
    logits
}

/// A model whose FFN is 256× n_embed wide: its header is budgeted for 4×, so it loads within a
/// limit its evaluation of a full chunk then exceeds. That is a typed `out_of_memory` which changes
/// nothing; one token still fits, and with the limit raised the same context evaluates the chunk.
#[test]
fn an_evaluation_over_the_limit_is_out_of_memory_and_the_context_recovers() {
    let _turn = LOCK.lock().unwrap();
    let _unlimited = Unlimited;
    let spec = SynthSpec { arch: Arch::V4, n_embed: 128, n_layer: 1, n_vocab: 256, n_ffn: Some(128 * 256), head_size: None, dtype: DType::Q8_0, seed: 1 };
    let file_bytes = Some(synth::file_bytes(&spec).unwrap());
    // As the CLI's --memory-limit-mb: the budget is what is used now plus the header's bound.
    // The file streams from `synth` into the loader, never held whole.
    let load = |limit| {
        let mut load = StreamingLoad::new(limit, file_bytes);
        synth::write(&spec, |b| load.push(b, |h| Ok(mem::used_bytes() as u64 + backend::eval_bytes_bound(h))))?;
        load.finish()
    };
    // About the tightest limit the header check admits, from the refusal of a smaller one (plus
    // room for what the test itself allocates meanwhile).
    let limit = load(1).err().unwrap().needed_bytes.unwrap() + (64 << 10);
    mem::set_limit(Some(limit as usize));
    let model = Arc::new(load(limit).unwrap());

    let mut ctx = GgmlContext::new(Arc::new(GgmlModel::new(model.clone()).unwrap()), 1).unwrap();
    let tokens: Vec<u32> = (0..SEQ_CHUNK as u32).collect();
    let (mut state, mut logits) = (model.initial_state(), vec![0.0; 256]);
    ctx.eval(&tokens[..1], &mut state, Some(&mut logits)).unwrap();
    let (state_before, logits_before) = (state.clone(), logits.clone());
    let err = ctx.eval(&tokens, &mut state, Some(&mut logits)).unwrap_err();
    println!("limit {limit}, over it: {err}");
    assert_eq!(err.code, ErrorCode::OutOfMemory);
    assert_eq!((&state, &logits), (&state_before, &logits_before), "the failed evaluation changed the state or logits");

    ctx.eval(&tokens[1..2], &mut state, Some(&mut logits)).unwrap();
    assert_eq!(logits, fresh_logits(&model, &tokens[..2]), "one token after the failure");
    mem::set_limit(None);
    let mut state = model.initial_state();
    ctx.eval(&tokens, &mut state, Some(&mut logits)).unwrap();
    assert_eq!(logits, fresh_logits(&model, &tokens), "the full chunk with the limit raised");
}
