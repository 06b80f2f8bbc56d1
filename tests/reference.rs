//! The reference backend against rwkv.cpp's expected logits, plus its API contract: serial and
//! sequence evaluation agree, the state carries everything between calls, bad input is refused,
//! and each block type dequantizes as ggml does.

mod common;

use echo_engine::format::{write_file_header, write_tensor_header, DType, FileHeader, TensorInfo};
use echo_engine::model::{load_bytes, LoadOptions, Model};
use echo_engine::reference::{dequantize_row, eval, tensor_to_f32};
use echo_engine::ErrorCode;

fn load(dir: &std::path::Path, file: &str) -> Model {
    let bytes = std::fs::read(dir.join(file)).expect("fixture");
    load_bytes(&bytes, LoadOptions::default()).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Logits and final state after `tokens` from the initial state, fed one token per call
/// (`serial`) or all in one call.
fn run(model: &Model, tokens: &[u32], serial: bool) -> (Vec<f32>, Vec<f32>) {
    let mut state = model.initial_state();
    let mut logits = vec![0.0; model.hparams.n_vocab];
    if serial {
        for &t in tokens {
            eval(model, &[t], &mut state, Some(&mut logits)).unwrap();
        }
    } else {
        eval(model, tokens, &mut state, Some(&mut logits)).unwrap();
    }
    (logits, state)
}

fn diff_sum(logits: &[f32], expected: &[f32]) -> f32 {
    logits.iter().zip(expected).map(|(a, b)| a - b).sum()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

fn argmax(x: &[f32]) -> usize {
    (0..x.len()).fold(0, |best, i| if x[i] > x[best] { i } else { best })
}

/// Quantized files whose README bound the reference does not meet, for a known reason: rwkv.cpp
/// produced the bounds with ggml, whose dot products quantize the activations to Q8_0/Q8_1 (and,
/// for f16 weights, round them to f16) before multiplying; the reference multiplies the exact
/// dequantized weights by f32 activations. Emulating ggml's activation quantization inside the
/// reference (an experiment, not kept) reproduced rwkv.cpp's numbers: v7 Q5_0 diff_sum -0.063650
/// (README -0.063645), v7 Q5_1 -0.064540 (README -0.064663). Without it the reference gives
/// -0.0753 and -0.0733, outside |bound| × 1.05 because these bounds are tiny. These files are
/// checked by `v7_quantized_logits_stay_close_to_fp32` and `quantized_path_is_the_dequantized_model`.
const BOUND_NEEDS_GGML_ACTIVATION_ROUNDING: [&str; 2] = ["tiny-rwkv-7v0-834K-Q5_0.bin", "tiny-rwkv-7v0-834K-Q5_1.bin"];

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn fp32_logits_match_expected() {
    let dir = common::fixtures_dir();
    for &(file, tag, dtype) in common::MODELS.iter().filter(|m| m.2 == "FP32") {
        let model = load(&dir, file);
        let expected = common::expected_logits(&dir, tag);
        for serial in [true, false] {
            let (logits, _) = run(&model, &common::PROMPT, serial);
            let (ds, err) = (diff_sum(&logits, &expected), max_abs_diff(&logits, &expected));
            println!("{file:30} {:8} diff_sum {ds:+.6} max_abs {err:.2e}", if serial { "serial" } else { "sequence" });
            assert!(err <= 1e-3, "{file}: a logit is {err} away from the expected one");
            assert!(common::diff_sum_ok(ds, common::bound(tag, dtype)), "{file}: diff_sum {ds}");
        }
    }
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn fp16_and_quantized_diff_sums_within_readme_bounds() {
    let dir = common::fixtures_dir();
    for &(file, tag, dtype) in common::MODELS.iter().filter(|m| m.2 != "FP32") {
        let model = load(&dir, file);
        let expected = common::expected_logits(&dir, tag);
        let bound = common::bound(tag, dtype);
        for serial in [true, false] {
            let (logits, _) = run(&model, &common::PROMPT, serial);
            let ds = diff_sum(&logits, &expected);
            let known = BOUND_NEEDS_GGML_ACTIVATION_ROUNDING.contains(&file);
            println!(
                "{file:30} {:8} diff_sum {ds:+.6} bound {bound:+.6}{}",
                if serial { "serial" } else { "sequence" },
                if known { " (not asserted: see BOUND_NEEDS_GGML_ACTIVATION_ROUNDING)" } else { "" }
            );
            assert!(logits.iter().all(|l| l.is_finite()), "{file}: non-finite logits");
            if !known {
                assert!(common::diff_sum_ok(ds, bound), "{file}: diff_sum {ds} exceeds the bound {bound}");
            }
        }
    }
}

/// For the files whose README bound includes ggml's activation rounding: the reference's logits
/// differ from the FP32 model's only by the weights' 5-bit rounding. Measured: max |Δ| 0.0037
/// (Q5_0) and 0.0042 (Q5_1) on logits spanning about 20; 0.01 leaves room for summation order
/// and is still two orders of magnitude below what a wrong formula produces (a wrong decay or
/// state orientation moves logits by 0.1 to several units on these models).
#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn v7_quantized_logits_stay_close_to_fp32() {
    let dir = common::fixtures_dir();
    let expected = common::expected_logits(&dir, "7v0-834K");
    for file in BOUND_NEEDS_GGML_ACTIVATION_ROUNDING {
        let (logits, _) = run(&load(&dir, file), &common::PROMPT, true);
        let err = max_abs_diff(&logits, &expected);
        println!("{file}: max |logit - fp32 logit| {err:.6}, spread {:.3}", spread(&expected));
        assert!(err <= 0.01, "{file}: {err}");
        assert_eq!(argmax(&logits), argmax(&expected), "{file}: a different top token");
    }
}

fn spread(x: &[f32]) -> f32 {
    x.iter().fold(f32::MIN, |a, &b| a.max(b)) - x.iter().fold(f32::MAX, |a, &b| a.min(b))
}

/// Rewrites a model with every tensor dequantized to FP32 (through the file format, so the
/// copy is an ordinary model).
fn dequantized_copy(model: &Model) -> Model {
    let mut out = Vec::new();
    write_file_header(&mut out, &FileHeader { dtype: DType::F32, ..model.header });
    for t in model.tensors() {
        let values = tensor_to_f32(t);
        let info = TensorInfo { dtype: DType::F32, n_bytes: 4 * values.len(), ..t.info.clone() };
        write_tensor_header(&mut out, &info);
        values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    }
    load_bytes(&out, LoadOptions::default()).expect("the dequantized copy loads")
}

/// The quantized (and f16) path computes exactly the model its weights describe: evaluating a
/// file gives the logits and state of its dequantized FP32 copy. So whatever separates these
/// files' logits from the FP32 model's is the weights' rounding, not the backend.
#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn quantized_path_is_the_dequantized_model() {
    let dir = common::fixtures_dir();
    for &(file, _, _) in common::MODELS.iter().filter(|m| m.2 != "FP32") {
        let model = load(&dir, file);
        let copy = dequantized_copy(&model);
        let (logits, state) = run(&model, &common::PROMPT, false);
        let (copy_logits, copy_state) = run(&copy, &common::PROMPT, false);
        let (dl, ds) = (max_abs_diff(&logits, &copy_logits), max_abs_diff(&state, &copy_state));
        println!("{file:30} vs its FP32 copy: logits {dl:.2e}, state {ds:.2e}");
        assert!(dl == 0.0 && ds == 0.0, "{file}: logits differ by {dl}, state by {ds}");
    }
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn serial_and_sequence_give_the_same_logits_and_state() {
    let dir = common::fixtures_dir();
    for &(file, _, _) in common::MODELS {
        let model = load(&dir, file);
        let (serial_logits, serial_state) = run(&model, &common::PROMPT, true);
        let (seq_logits, seq_state) = run(&model, &common::PROMPT, false);
        assert_eq!(serial_logits, seq_logits, "{file}");
        assert_eq!(serial_state, seq_state, "{file}");
        assert_ne!(seq_state, model.initial_state(), "{file}: the state did not change");
    }
}

/// The state carries everything between calls: 1 token then 2 equals 3 at once, and asking for
/// no logits advances the state the same way.
#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn state_round_trip() {
    let dir = common::fixtures_dir();
    for &(file, _, _) in common::MODELS {
        let model = load(&dir, file);
        let (want_logits, want_state) = run(&model, &common::PROMPT, false);
        let mut state = model.initial_state();
        let mut logits = vec![0.0; model.hparams.n_vocab];
        eval(&model, &common::PROMPT[..1], &mut state, None).unwrap();
        let saved = state.clone();
        eval(&model, &common::PROMPT[1..], &mut state, Some(&mut logits)).unwrap();
        assert_eq!(logits, want_logits, "{file}");
        assert_eq!(state, want_state, "{file}");
        // Restarting from the saved state repeats the second call exactly.
        let mut again = saved;
        let mut logits2 = vec![0.0; model.hparams.n_vocab];
        eval(&model, &common::PROMPT[1..], &mut again, Some(&mut logits2)).unwrap();
        assert_eq!(logits2, want_logits, "{file}");
    }
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn bad_input_is_refused_and_changes_nothing() {
    let dir = common::fixtures_dir();
    for file in ["tiny-rwkv-4v0-660K-FP32.bin", "tiny-rwkv-7v0-834K-Q5_1.bin"] {
        let model = load(&dir, file);
        let n_vocab = model.hparams.n_vocab;
        let initial = model.initial_state();
        let mut state = initial.clone();
        let mut logits = vec![7.0; n_vocab];
        let expect_refused = |tokens: &[u32], state: &mut [f32], logits: Option<&mut [f32]>, what: &str| {
            let e = eval(&model, tokens, state, logits).expect_err(what);
            assert_eq!(e.code, ErrorCode::InvalidOptions, "{what}: {e}");
            assert!(!e.message.is_empty());
            println!("{what}: {e}");
        };
        expect_refused(&[], &mut state, Some(&mut logits), "no tokens");
        expect_refused(&[34, n_vocab as u32], &mut state, Some(&mut logits), "token = n_vocab");
        expect_refused(&[u32::MAX], &mut state, None, "token u32::MAX");
        expect_refused(&[34], &mut state[1..], Some(&mut logits), "state one float short");
        let mut long = initial.clone();
        long.push(0.0);
        expect_refused(&[34], &mut long, None, "state one float long");
        expect_refused(&[34], &mut state, Some(&mut logits[1..]), "logits one float short");
        expect_refused(&[34], &mut [], None, "empty state");
        assert_eq!(state, initial, "{file}: a refused call changed the state");
        assert!(logits.iter().all(|&l| l == 7.0), "{file}: a refused call wrote logits");
    }
}

// ---- dequantization: one handcrafted block per type, values worked out by hand ----

/// f16 bit patterns used below.
const F16_0_25: [u8; 2] = [0x00, 0x34];
const F16_0_5: [u8; 2] = [0x00, 0x38];
const F16_1: [u8; 2] = [0x00, 0x3C];
const F16_2: [u8; 2] = [0x00, 0x40];
const F16_MINUS_1: [u8; 2] = [0x00, 0xBC];
const F16_10: [u8; 2] = [0x00, 0x49];

fn block(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn dequantized(dtype: DType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; n];
    dequantize_row(dtype, bytes, &mut out);
    out
}

/// `fill` everywhere except the listed (index, value) pairs.
fn expect(fill: f32, at: &[(usize, f32)]) -> Vec<f32> {
    let mut v = vec![fill; 32];
    for &(i, x) in at {
        v[i] = x;
    }
    v
}

#[test]
fn dequantize_q4_0() {
    // d = 2; byte 0 = 0xF0: element 0 = 0, element 16 = 15; byte 1 = 0x98: element 1 = 8,
    // element 17 = 9; the rest 0x88 (8, the zero point). x = (q - 8) d.
    let mut qs = [0x88u8; 16];
    qs[0] = 0xF0;
    qs[1] = 0x98;
    let b = block(&[&F16_2, &qs]);
    assert_eq!(dequantized(DType::Q4_0, &b, 32), expect(0.0, &[(0, -16.0), (16, 14.0), (17, 2.0)]));
}

#[test]
fn dequantize_q4_1() {
    // d = 0.5, m = -1; byte 0 = 0x21: element 0 = 1, element 16 = 2; byte 15 = 0xF0:
    // element 15 = 0, element 31 = 15; the rest 0. x = q d + m.
    let mut qs = [0u8; 16];
    qs[0] = 0x21;
    qs[15] = 0xF0;
    let b = block(&[&F16_0_5, &F16_MINUS_1, &qs]);
    assert_eq!(dequantized(DType::Q4_1, &b, 32), expect(-1.0, &[(0, -0.5), (16, 0.0), (31, 6.5)]));
}

#[test]
fn dequantize_q5_0() {
    // d = 1; qh = 0x8010_0001 sets the high bit (16) of elements 0, 20 and 31; byte 3 = 0x07:
    // element 3 = 7; byte 15 = 0xF0: element 31 = 15 | 16 = 31; the rest 0. x = (q - 16) d.
    let mut qs = [0u8; 16];
    qs[3] = 0x07;
    qs[15] = 0xF0;
    let b = block(&[&F16_1, &[0x01, 0x00, 0x10, 0x80], &qs]);
    assert_eq!(dequantized(DType::Q5_0, &b, 32), expect(-16.0, &[(0, 0.0), (3, -9.0), (20, 0.0), (31, 15.0)]));
}

#[test]
fn dequantize_q5_1() {
    // d = 0.25, m = 10; qh = 0x0000_FFFF: elements 0..16 have the high bit; byte 0 = 0x1F:
    // element 0 = 15 | 16 = 31, element 16 = 1; the rest 0. x = q d + m.
    let mut qs = [0u8; 16];
    qs[0] = 0x1F;
    let b = block(&[&F16_0_25, &F16_10, &[0xFF, 0xFF, 0x00, 0x00], &qs]);
    let mut want = expect(10.0, &[(0, 17.75), (16, 10.25)]);
    want[1..16].fill(14.0); // q = 16
    assert_eq!(dequantized(DType::Q5_1, &b, 32), want);
}

#[test]
fn dequantize_q8_0_two_blocks() {
    // Block 0: d = 0.5, q = [-128, 127, -1, 0, ...]; block 1: d = 2, q = [0, ..., 0, 3].
    let mut q0 = [0u8; 32];
    q0[..3].copy_from_slice(&[0x80, 0x7F, 0xFF]);
    let mut q1 = [0u8; 32];
    q1[31] = 3;
    let b = block(&[&F16_0_5, &q0, &F16_2, &q1]);
    let mut want = expect(0.0, &[(0, -64.0), (1, 63.5), (2, -0.5)]);
    want.extend(expect(0.0, &[(31, 6.0)]));
    assert_eq!(dequantized(DType::Q8_0, &b, 64), want);
}

#[test]
fn dequantize_floats() {
    assert_eq!(dequantized(DType::F16, &block(&[&F16_1, &F16_MINUS_1, &F16_0_25]), 3), [1.0, -1.0, 0.25]);
    let f32_bytes: Vec<u8> = [1.5f32, -3.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(dequantized(DType::F32, &f32_bytes, 2), [1.5, -3.0]);
}

#[test]
#[should_panic(expected = "not a row")]
fn dequantize_refuses_a_partial_block() {
    dequantized(DType::Q8_0, &[0u8; 33], 32);
}
