//! The ggml backend natively: conformance of every fixture (serial and sequence mode) with
//! rwkv.cpp's expected logits, agreement with the reference backend, the state contract
//! (sequence = chunks = serial, logits optional, contexts sharing weights), quantization, and
//! per-logit bounds for every FP16 and quantized model (fixtures and a v6 model of our own).

mod common;

use std::sync::Arc;

use echo_engine::format::DType;
use echo_engine::ggml::{GgmlContext, GgmlModel, SEQ_CHUNK};
use echo_engine::model::{load_bytes, Arch, LoadOptions, Model};
use echo_engine::quantize::Quantizer;
use echo_engine::synth::{self, SynthSpec};

fn load(bytes: &[u8]) -> Arc<Model> {
    Arc::new(load_bytes(bytes, LoadOptions::default()).unwrap())
}

fn load_fixture(dir: &std::path::Path, file: &str) -> Arc<Model> {
    load(&std::fs::read(dir.join(file)).unwrap())
}

fn context(model: &Arc<Model>) -> GgmlContext {
    GgmlContext::new(Arc::new(GgmlModel::new(model.clone()).unwrap()), 1).unwrap()
}

/// Logits and state after `tokens`, fed one per call (`serial`) or in one call.
fn run(ctx: &mut GgmlContext, model: &Model, tokens: &[u32], serial: bool) -> (Vec<f32>, Vec<f32>) {
    let mut state = model.initial_state();
    let mut logits = vec![0.0; model.hparams.n_vocab];
    if serial {
        for (i, t) in tokens.iter().enumerate() {
            ctx.eval(&[*t], &mut state, (i + 1 == tokens.len()).then_some(&mut logits[..])).unwrap();
        }
    } else {
        ctx.eval(tokens, &mut state, Some(&mut logits)).unwrap();
    }
    (logits, state)
}

/// The largest |a - b|; NaN if any is (f32::max would skip it).
fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, |m, d| if d > m || d.is_nan() { d } else { m })
}

fn diff_sum(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(a, b)| a - b).sum()
}

/// A token sequence longer than one chunk, deterministic, over the byte vocabulary.
fn long_prompt() -> Vec<u32> {
    (0..2 * SEQ_CHUNK as u32 + 7).map(|i| (i * 37 + 11) % 256).collect()
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn every_fixture_conforms_in_serial_and_sequence_mode() {
    let dir = common::fixtures_dir();
    println!("file\tserial diff_sum\tsequence diff_sum");
    for &(file, tag, dtype) in common::MODELS {
        let model = load_fixture(&dir, file);
        let want = common::expected_logits(&dir, tag);
        let mut ctx = context(&model);
        let mut line = file.to_string();
        for serial in [true, false] {
            let (got, _) = run(&mut ctx, &model, &common::PROMPT, serial);
            let ds = diff_sum(&got, &want);
            let bound = common::bound(tag, dtype);
            assert!(common::diff_sum_ok(ds, bound), "{file} serial={serial}: diff_sum {ds} vs bound {bound}");
            if dtype == "FP32" {
                let max = max_abs_diff(&got, &want);
                assert!(max <= 1e-3, "{file} serial={serial}: max |diff| {max}");
            }
            line += &format!("\t{ds:.6}");
        }
        println!("{line}");
    }
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn the_reference_backend_agrees_on_fp32_models() {
    let dir = common::fixtures_dir();
    for &(file, _, _) in common::MODELS.iter().filter(|m| m.2 == "FP32") {
        let model = load_fixture(&dir, file);
        let tokens = long_prompt();
        let (logits, state) = run(&mut context(&model), &model, &tokens, false);
        let mut ref_state = model.initial_state();
        let mut ref_logits = vec![0.0; model.hparams.n_vocab];
        echo_engine::reference::eval(&model, &tokens, &mut ref_state, Some(&mut ref_logits)).unwrap();
        let (dl, ds) = (max_abs_diff(&logits, &ref_logits), max_abs_diff(&state, &ref_state));
        assert!(dl <= 1e-3 && ds <= 1e-3, "{file}: logits differ by {dl}, state by {ds}");
    }
}

/// The hidden states after `ln_out` (what embeddings are made of), for every token of a prompt
/// longer than a chunk, agree with the reference's; and the state advances as `eval`'s does.
#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn the_reference_backend_agrees_on_hidden_states() {
    let dir = common::fixtures_dir();
    for &(file, _, _) in common::MODELS.iter().filter(|m| m.2 == "FP32") {
        let model = load_fixture(&dir, file);
        let tokens = long_prompt();
        let mut hidden = vec![0.0; tokens.len() * model.hparams.n_embed];
        let mut state = model.initial_state();
        context(&model).eval_hidden(&tokens, &mut state, &mut hidden).unwrap();
        let mut ref_hidden = hidden.clone();
        let mut ref_state = model.initial_state();
        echo_engine::reference::eval_hidden(&model, &tokens, &mut ref_state, &mut ref_hidden).unwrap();
        let (dh, ds) = (max_abs_diff(&hidden, &ref_hidden), max_abs_diff(&state, &ref_state));
        assert!(dh <= 1e-3 && ds <= 1e-3, "{file}: hidden states differ by {dh}, state by {ds}");
        let (_, eval_state) = run(&mut context(&model), &model, &tokens, false);
        assert_eq!(state, eval_state, "{file}");
        let mut short = vec![0.0; 3];
        let err = context(&model).eval_hidden(&tokens, &mut model.initial_state(), &mut short).unwrap_err();
        assert_eq!(err.code, echo_engine::ErrorCode::InvalidOptions);
    }
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn sequence_chunks_and_serial_give_the_same_state() {
    let dir = common::fixtures_dir();
    for &(file, _, _) in common::MODELS {
        let model = load_fixture(&dir, file);
        let mut ctx = context(&model);
        let tokens = long_prompt();
        let (serial_logits, serial_state) = run(&mut ctx, &model, &tokens, true);
        let (seq_logits, seq_state) = run(&mut ctx, &model, &tokens, false);

        // Odd-sized pieces, logits only at the end.
        let mut state = model.initial_state();
        let mut logits = vec![0.0; model.hparams.n_vocab];
        let pieces: Vec<&[u32]> = tokens.chunks(5).collect();
        for (i, piece) in pieces.iter().enumerate() {
            ctx.eval(piece, &mut state, (i + 1 == pieces.len()).then_some(&mut logits[..])).unwrap();
        }
        // Bit-identical: every graph runs the same kernels on the same rows, only more or fewer
        // tokens of them at once.
        for (what, l, s) in [("sequence", &seq_logits, &seq_state), ("pieces", &logits, &state)] {
            assert!(l == &serial_logits && s == &serial_state, "{file} {what} differs from serial");
        }
    }
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn skipping_logits_gives_the_same_state() {
    let dir = common::fixtures_dir();
    for &(file, _, _) in common::MODELS {
        let model = load_fixture(&dir, file);
        let mut ctx = context(&model);
        let mut with = model.initial_state();
        let mut without = model.initial_state();
        let mut logits = vec![0.0; model.hparams.n_vocab];
        ctx.eval(&common::PROMPT, &mut with, Some(&mut logits)).unwrap();
        ctx.eval(&common::PROMPT, &mut without, None).unwrap();
        assert_eq!(with, without, "{file}");
    }
}

/// ggml splits each operation by rows and one thread computes a row as one thread would, so two
/// threads must give the same bits as one, for every fixture (v4 to v7, FP32, FP16, Q5_0, Q5_1),
/// one token at a time and in chunked sequences. Short inputs and no more threads than 2 cores:
/// ggml's barriers spin, and a thread descheduled on a busy machine stalls every barrier.
#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn more_threads_compute_the_same_bits() {
    let dir = common::fixtures_dir();
    for &(file, _, _) in common::MODELS {
        let model = load_fixture(&dir, file);
        let shared = Arc::new(GgmlModel::new(model.clone()).unwrap());
        let (mut one, mut two) = (GgmlContext::new(shared.clone(), 1).unwrap(), GgmlContext::new(shared, 2).unwrap());
        for (tokens, serial) in [(common::PROMPT.to_vec(), true), (long_prompt(), false)] {
            let want = run(&mut one, &model, &tokens, serial);
            let got = run(&mut two, &model, &tokens, serial);
            assert!(got.0.iter().any(|&l| l != 0.0), "{file}: no logits");
            assert!(got == want, "{file}, serial={serial}: max |diff| {}", max_abs_diff(&got.0, &want.0));
        }
    }
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn thread_counts_out_of_range_are_refused() {
    let model = load_fixture(&common::fixtures_dir(), "tiny-rwkv-4v0-660K-Q5_1.bin");
    let shared = Arc::new(GgmlModel::new(model).unwrap());
    for threads in [0, echo_engine::ggml::MAX_THREADS + 1] {
        let err = GgmlContext::new(shared.clone(), threads).err().expect("refused");
        assert_eq!(err.code, echo_engine::error::ErrorCode::InvalidOptions, "{threads}");
    }
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn contexts_share_one_models_weights() {
    let dir = common::fixtures_dir();
    let model = load_fixture(&dir, "tiny-rwkv-7v0-834K-Q5_1.bin");
    let shared = Arc::new(GgmlModel::new(model.clone()).unwrap());
    let (mut a, mut b) = (GgmlContext::new(shared.clone(), 1).unwrap(), GgmlContext::new(shared, 1).unwrap());
    let (mut sa, mut sb) = (model.initial_state(), model.initial_state());
    let (mut la, mut lb) = (vec![0.0; 256], vec![0.0; 256]);
    // Interleaved: two conversations, one token each in turn.
    for (&ta, &tb) in common::PROMPT.iter().zip([7u32, 8, 9].iter()) {
        a.eval(&[ta], &mut sa, Some(&mut la)).unwrap();
        b.eval(&[tb], &mut sb, Some(&mut lb)).unwrap();
    }
    let (alone, _) = run(&mut context(&model), &model, &common::PROMPT, true);
    assert_eq!(la, alone);
    let (alone_b, _) = run(&mut context(&model), &model, &[7, 8, 9], true);
    assert_eq!(lb, alone_b);
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn bad_arguments_are_refused_and_change_nothing() {
    let dir = common::fixtures_dir();
    let model = load_fixture(&dir, "tiny-rwkv-4v0-660K-FP32.bin");
    let mut ctx = context(&model);
    let mut state = model.initial_state();
    let initial = state.clone();
    let code = |r: echo_engine::Result<()>| r.unwrap_err().code;
    use echo_engine::ErrorCode::InvalidOptions;
    assert_eq!(code(ctx.eval(&[], &mut state, None)), InvalidOptions);
    assert_eq!(code(ctx.eval(&[1, 256], &mut state, None)), InvalidOptions);
    assert_eq!(code(ctx.eval(&[1], &mut state, Some(&mut [0.0; 3]))), InvalidOptions);
    assert_eq!(code(ctx.eval(&[1], &mut state[1..].to_vec(), None)), InvalidOptions);
    assert_eq!(state, initial);
    ctx.eval(&[1], &mut state, None).unwrap();
    assert_ne!(state, initial);
}

/// Quantizes `bytes` in small chunks (streaming), returning the new file.
fn quantize(bytes: &[u8], target: DType) -> Vec<u8> {
    let mut q = Quantizer::new(target).unwrap();
    let mut out = Vec::new();
    for chunk in bytes.chunks(1000) {
        q.push(chunk).unwrap();
        out.extend(q.take_output());
    }
    out.extend(q.finish().unwrap().0);
    out
}

/// Our quantizer on the FP32 and FP16 fixtures, per logit against the FP32 model. The scale of
/// this model's quantization error is its rwkv.cpp Q5 files' (the larger of the two
/// `PER_LOGIT` figures against FP32). Measured against that scale: Q8_0 at most 0.28×, Q5_x
/// 1.05× (FP16 sources are rounded once more), Q4_x 3.7× (one bit fewer than Q5).
#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn quantized_fp32_and_fp16_fixtures_load_and_stay_close() {
    let dir = common::fixtures_dir();
    println!("source\ttarget\tmax |logit - fp32 logit|\tbound");
    for &(file, tag, dtype) in common::MODELS.iter().filter(|m| m.2 == "FP32" || m.2 == "FP16") {
        let source = std::fs::read(dir.join(file)).unwrap();
        let want = common::expected_logits(&dir, tag);
        let q5 = |t: &str| per_logit(&format!("tiny-rwkv-{tag}-{t}.bin")).1;
        let scale = q5("Q5_0").max(q5("Q5_1"));
        for target in [DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0] {
            let model = load(&quantize(&source, target));
            assert_eq!(model.header.dtype, target);
            let (logits, _) = run(&mut context(&model), &model, &common::PROMPT, false);
            let err = max_abs_diff(&logits, &want);
            let bound = scale
                * match target {
                    DType::Q8_0 => 0.5,
                    DType::Q5_0 | DType::Q5_1 => 1.25,
                    _ => 5.0,
                };
            println!("{file}\t{}\t{err:.6}\t{bound:.6}", target.name());
            assert!(err <= bound, "{file} ({dtype}) → {target:?}: a logit is {err} from the FP32 model's, over {bound}");
        }
    }
}

/// `quantize --head Q8_0`: the head becomes Q8_0 (rwkv.cpp keeps it in FP16), the rest as
/// without it, and no logit moves by more than 1% of the largest logit (measured: 0.3-0.6%;
/// weights and activations both go through Q8_0 there). A float head type is refused.
#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn a_quantized_head_is_q8_0_and_stays_close() {
    let dir = common::fixtures_dir();
    println!("source\tmax |logit with a Q8_0 head - with FP16|\tmax |logit|");
    for &(file, _, _) in common::MODELS.iter().filter(|m| m.2 == "FP16") {
        let source = std::fs::read(dir.join(file)).unwrap();
        let mut q = Quantizer::new(DType::Q5_1).unwrap().with_head("Q8_0").unwrap();
        q.push(&source).unwrap();
        let (with_head, plain) = (load(&q.finish().unwrap().0), load(&quantize(&source, DType::Q5_1)));
        assert_eq!(with_head.tensor("head.weight").info.dtype, DType::Q8_0);
        assert_eq!(plain.tensor("head.weight").info.dtype, DType::F16);
        for (a, b) in with_head.tensors().iter().zip(plain.tensors()).filter(|(a, _)| a.info.name != "head.weight") {
            assert_eq!((a.info.name.as_str(), a.info.dtype), (b.info.name.as_str(), b.info.dtype));
        }
        let logits = |m: &Arc<Model>| run(&mut context(m), m, &common::PROMPT, false).0;
        let (want, got) = (logits(&plain), logits(&with_head));
        let (err, top) = (max_abs_diff(&got, &want), want.iter().fold(0f32, |m, v| m.max(v.abs())));
        println!("{file}\t{err:.6}\t{top:.6}");
        assert!(err <= 0.01 * top, "{file}: a Q8_0 head moves a logit by {err}, over 1% of {top}");
    }
    let refused = Quantizer::new(DType::Q5_1).unwrap().with_head("FP16").err().unwrap();
    assert_eq!(refused.code, echo_engine::ErrorCode::InvalidOptions);
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn quantizing_fp32_to_q5_reproduces_rwkv_cpp_files() {
    let dir = common::fixtures_dir();
    for tag in ["4v0-660K", "5v1-730K", "5v2-730K", "7v0-834K"] {
        let source = std::fs::read(dir.join(format!("tiny-rwkv-{tag}-FP32.bin"))).unwrap();
        for target in [DType::Q5_0, DType::Q5_1] {
            let ours = quantize(&source, target);
            let theirs = std::fs::read(dir.join(format!("tiny-rwkv-{tag}-{}.bin", target.name()))).unwrap();
            assert!(ours == theirs, "{tag} {}: differs from rwkv.cpp's file", target.name());
        }
    }
}

/// ggml's and the reference backend's logits after `tokens`, from the initial state.
fn ggml_and_reference(model: &Arc<Model>, tokens: &[u32]) -> (Vec<f32>, Vec<f32>) {
    let (logits, _) = run(&mut context(model), model, tokens, false);
    let mut state = model.initial_state();
    let mut ref_logits = vec![0.0; model.hparams.n_vocab];
    echo_engine::reference::eval(model, tokens, &mut state, Some(&mut ref_logits)).unwrap();
    (logits, ref_logits)
}

/// Per-logit max |Δ| of ggml's logits for each FP16 and quantized fixture after the prompt,
/// as measured (x86-64, AVX2): (file, against the reference backend on the same weights,
/// against the FP32 model's logits). The first is ggml's own rounding: it rounds the
/// activations to Q8_0/Q8_1 (f16 for f16 weights) before each dot product, where the reference
/// multiplies the dequantized weights by f32 activations; the second adds the weights'
/// rounding. A diff_sum lets such errors cancel; these bound every logit, at twice the measure.
const PER_LOGIT: &[(&str, f32, f32)] = &[
    ("tiny-rwkv-4v0-660K-FP16.bin", 0.001498, 0.002516),
    ("tiny-rwkv-4v0-660K-Q5_0.bin", 0.027517, 0.113219),
    ("tiny-rwkv-4v0-660K-Q5_1.bin", 0.017413, 0.101682),
    ("tiny-rwkv-5v1-730K-FP16.bin", 0.002118, 0.005126),
    ("tiny-rwkv-5v1-730K-Q5_0.bin", 0.070082, 1.785983),
    ("tiny-rwkv-5v1-730K-Q5_1.bin", 0.050729, 0.283695),
    ("tiny-rwkv-5v2-730K-FP16.bin", 0.002106, 0.003040),
    ("tiny-rwkv-5v2-730K-Q5_0.bin", 0.041630, 0.503754),
    ("tiny-rwkv-5v2-730K-Q5_1.bin", 0.091585, 0.393677),
    ("tiny-rwkv-6v0-3m-Q5_1.bin", 0.016779, 0.077057),
    ("tiny-rwkv-7v0-834K-FP16.bin", 0.000289, 0.000289),
    ("tiny-rwkv-7v0-834K-Q5_0.bin", 0.001234, 0.003509),
    ("tiny-rwkv-7v0-834K-Q5_1.bin", 0.000974, 0.004865),
];

/// A file's `PER_LOGIT` measures.
fn per_logit(file: &str) -> (f32, f32) {
    let &(_, vs_reference, vs_fp32) = PER_LOGIT.iter().find(|m| m.0 == file).unwrap_or_else(|| panic!("no measure for {file}"));
    (vs_reference, vs_fp32)
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn fp16_and_quantized_fixtures_stay_close_per_logit() {
    let dir = common::fixtures_dir();
    println!("file\tmax |ggml - reference|\tmax |ggml - fp32|");
    for &(file, tag, _) in common::MODELS.iter().filter(|m| m.2 != "FP32") {
        let model = load_fixture(&dir, file);
        let (logits, ref_logits) = ggml_and_reference(&model, &common::PROMPT);
        let (vs_ref, vs_fp32) = (max_abs_diff(&logits, &ref_logits), max_abs_diff(&logits, &common::expected_logits(&dir, tag)));
        println!("{file}\t{vs_ref:.6}\t{vs_fp32:.6}");
        let (ref_bound, fp32_bound) = per_logit(file);
        assert!(vs_ref <= 2.0 * ref_bound, "{file}: a logit is {vs_ref} from the reference's, over 2 × {ref_bound}");
        assert!(vs_fp32 <= 2.0 * fp32_bound, "{file}: a logit is {vs_fp32} from the FP32 model's, over 2 × {fp32_bound}");
    }
}

/// A small random-weight v6 model of our own.
fn synth_v6(dtype: DType) -> Vec<u8> {
    let spec = SynthSpec { arch: Arch::V6, n_embed: 128, n_layer: 2, n_vocab: 256, n_ffn: None, head_size: None, dtype, seed: 6 };
    synth::to_vec(&spec).unwrap()
}

/// v6 element-wise: the only v6 fixture is Q5_1, so a random-weight v6 model of our own, FP32,
/// is compared with the reference backend like the FP32 fixtures (logits and state within 1e-3;
/// measured 1e-6), and its FP16 and quantized versions per logit like `PER_LOGIT` (twice these
/// measures: against the reference on the same weights, and against the FP32 model's logits).
#[test]
fn v6_model_of_our_own_matches_the_reference_element_wise() {
    const MEASURED: &[(DType, f32, f32)] = &[
        (DType::F16, 0.001442, 0.002892),
        (DType::Q4_0, 0.028447, 0.230094),
        (DType::Q4_1, 0.027453, 0.323138),
        (DType::Q5_0, 0.031006, 0.168797),
        (DType::Q5_1, 0.030100, 0.120168),
        (DType::Q8_0, 0.024364, 0.028489),
    ];
    let fp32 = synth_v6(DType::F32);
    let tokens = long_prompt();
    let model = load(&fp32);
    let (fp32_logits, state) = run(&mut context(&model), &model, &tokens, false);
    let mut ref_state = model.initial_state();
    let mut ref_logits = vec![0.0; model.hparams.n_vocab];
    echo_engine::reference::eval(&model, &tokens, &mut ref_state, Some(&mut ref_logits)).unwrap();
    let (dl, ds) = (max_abs_diff(&fp32_logits, &ref_logits), max_abs_diff(&state, &ref_state));
    println!("v6 FP32\tlogits {dl:.2e}\tstate {ds:.2e}");
    assert!(dl <= 1e-3 && ds <= 1e-3, "v6 FP32: logits differ by {dl}, state by {ds}");

    for &(dtype, ref_bound, fp32_bound) in MEASURED {
        // FP16 from the same seed is the FP32 model's weights rounded; the others are quantized from it.
        let model = load(&if dtype == DType::F16 { synth_v6(dtype) } else { quantize(&fp32, dtype) });
        let (logits, ref_logits) = ggml_and_reference(&model, &tokens);
        let (vs_ref, vs_fp32) = (max_abs_diff(&logits, &ref_logits), max_abs_diff(&logits, &fp32_logits));
        println!("v6 {}\t{vs_ref:.6}\t{vs_fp32:.6}", dtype.name());
        assert!(vs_ref <= 2.0 * ref_bound, "v6 {dtype:?}: a logit is {vs_ref} from the reference's, over 2 × {ref_bound}");
        assert!(vs_fp32 <= 2.0 * fp32_bound, "v6 {dtype:?}: a logit is {vs_fp32} from the FP32 model's, over 2 × {fp32_bound}");
    }
}
