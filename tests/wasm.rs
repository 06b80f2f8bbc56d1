//! The engine in wasm (Node.js, and headless Chromium: `wasm-pack test --node`, `wasm-pack test --headless --chrome`):
//! conformance of every fixture in serial and sequence mode, streaming loads, typed errors.
//! The fixtures are embedded at compile time (a browser has no file system).
#![cfg(target_arch = "wasm32")]

#[path = "common/wasm_mode.rs"]
mod wasm_mode;

use std::sync::Arc;

use echo_engine::backend::{self, BackendKind};
use echo_engine::model::{LoadOptions, Model, ModelLoader};
use echo_engine::ErrorCode;
use wasm_bindgen_test::*;

mod common;
use common::{bound, diff_sum_ok, PROMPT};

#[cfg(echo_fixtures)]
macro_rules! embed {
    ($($f:literal),* $(,)?) => { &[$(($f, include_bytes!(concat!(env!("ECHO_FIXTURES"), "/", $f)) as &[u8])),*] };
}

#[cfg(echo_fixtures)]
const MODELS: &[(&str, &[u8])] = embed!(
    "tiny-rwkv-4v0-660K-FP32.bin", "tiny-rwkv-4v0-660K-FP16.bin", "tiny-rwkv-4v0-660K-Q5_0.bin", "tiny-rwkv-4v0-660K-Q5_1.bin",
    "tiny-rwkv-5v1-730K-FP32.bin", "tiny-rwkv-5v1-730K-FP16.bin", "tiny-rwkv-5v1-730K-Q5_0.bin", "tiny-rwkv-5v1-730K-Q5_1.bin",
    "tiny-rwkv-5v2-730K-FP32.bin", "tiny-rwkv-5v2-730K-FP16.bin", "tiny-rwkv-5v2-730K-Q5_0.bin", "tiny-rwkv-5v2-730K-Q5_1.bin",
    "tiny-rwkv-6v0-3m-Q5_1.bin",
    "tiny-rwkv-7v0-834K-FP32.bin", "tiny-rwkv-7v0-834K-FP16.bin", "tiny-rwkv-7v0-834K-Q5_0.bin", "tiny-rwkv-7v0-834K-Q5_1.bin",
);
#[cfg(not(echo_fixtures))]
const MODELS: &[(&str, &[u8])] = &[];

#[cfg(echo_fixtures)]
const EXPECTED: &[(&str, &[u8])] = embed!(
    "expected-logits-4v0-660K.bin", "expected-logits-5v1-730K.bin", "expected-logits-5v2-730K.bin",
    "expected-logits-6v0-3m.bin", "expected-logits-7v0-834K.bin",
);
#[cfg(not(echo_fixtures))]
const EXPECTED: &[(&str, &[u8])] = &[];

/// (tag, data type) from a file name like tiny-rwkv-5v2-730K-Q5_1.bin (every type name has 4 letters).
fn parse_name(file: &str) -> (&str, &str) {
    let stem = file.trim_start_matches("tiny-rwkv-").trim_end_matches(".bin");
    (&stem[..stem.len() - 5], &stem[stem.len() - 4..])
}

fn expected(tag: &str) -> Vec<f32> {
    let name = format!("expected-logits-{tag}.bin");
    let bytes = EXPECTED.iter().find(|(n, _)| *n == name).unwrap().1;
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// Streams the file in odd-sized chunks, as a network body would arrive.
fn load_streamed(bytes: &[u8]) -> Model {
    let mut loader = ModelLoader::new(LoadOptions::default());
    for chunk in bytes.chunks(7919) {
        loader.push(chunk).unwrap();
    }
    loader.finish().unwrap()
}

fn run(model: &Arc<Model>, kind: BackendKind, serial: bool) -> Vec<f32> {
    let mut b = backend::create(kind, model.clone()).unwrap();
    let mut state = model.initial_state();
    let mut logits = vec![0.0; model.hparams.n_vocab];
    if serial {
        for (i, t) in PROMPT.iter().enumerate() {
            b.eval(&[*t], &mut state, (i == PROMPT.len() - 1).then_some(&mut logits[..])).unwrap();
        }
    } else {
        b.eval(&PROMPT, &mut state, Some(&mut logits)).unwrap();
    }
    logits
}

#[wasm_bindgen_test]
fn ggml_is_built_with_simd128() {
    assert_eq!(backend::simd(), "wasm-simd128");
}

#[wasm_bindgen_test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn every_fixture_conforms_in_serial_and_sequence_mode() {
    for (file, bytes) in MODELS {
        let (tag, dtype) = parse_name(file);
        let want = expected(tag);
        let model = Arc::new(load_streamed(bytes));
        let mut line = file.to_string();
        for serial in [true, false] {
            let got = run(&model, BackendKind::Ggml, serial);
            let diff_sum: f32 = got.iter().zip(&want).map(|(a, b)| a - b).sum();
            let b = bound(tag, dtype);
            assert!(diff_sum_ok(diff_sum, b), "{file} serial={serial}: diff_sum {diff_sum} vs bound {b}");
            if dtype == "FP32" {
                for (i, (a, e)) in got.iter().zip(&want).enumerate() {
                    assert!((a - e).abs() <= 1e-3, "{file} serial={serial} logit {i}: {a} vs {e}");
                }
            }
            line.push_str(&format!("\t{diff_sum:.6}"));
        }
        console_log!("{line}");
    }
}

#[wasm_bindgen_test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn the_reference_backend_agrees_on_fp32_models() {
    for (file, bytes) in MODELS.iter().filter(|(f, _)| f.ends_with("FP32.bin")) {
        let model = Arc::new(load_streamed(bytes));
        let a = run(&model, BackendKind::Reference, true);
        let b = run(&model, BackendKind::Ggml, true);
        let max = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(max <= 1e-3, "{file}: reference and ggml differ by {max}");
    }
}

#[wasm_bindgen_test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn malformed_input_gives_typed_errors_then_a_model_still_loads() {
    let good = MODELS.iter().find(|(f, _)| f.ends_with("5v2-730K-Q5_1.bin")).unwrap().1;
    common::malformed::check(good);
    let model = Arc::new(echo_engine::model::load_bytes(good, LoadOptions::default()).unwrap());
    let mut b = backend::create(BackendKind::Ggml, model.clone()).unwrap();
    let mut state = model.initial_state();
    assert_eq!(b.eval(&[300], &mut state, None).err().unwrap().code, ErrorCode::InvalidOptions);
    assert!(b.eval(&[1], &mut state, None).is_ok());
}
