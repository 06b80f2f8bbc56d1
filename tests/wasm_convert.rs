//! `convert` in wasm (Node.js, and headless Chromium: `wasm-pack test --node`, `wasm-pack test --headless --chrome`):
//! the checkpoints of tests/fixtures/checkpoints convert to the files rwkv.cpp's converter writes
//! (tests/convert.rs says how exactly), and the converted models' logits are the PyTorch models'.
//! The fixtures are embedded at compile time (a browser has no file system).
#![cfg(target_arch = "wasm32")]

#[path = "common/wasm_mode.rs"]
mod wasm_mode;

#[path = "common/checkpoints.rs"]
mod checkpoints;
use checkpoints::{assert_same_file, run};

use std::sync::Arc;

use echo_engine::backend::{self, BackendKind};
use echo_engine::format::DType;
use echo_engine::model::{load_bytes, LoadOptions};
use echo_engine::ErrorCode;
use wasm_bindgen_test::*;

macro_rules! version {
    ($v:literal) => {
        (
            $v,
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/checkpoints/", $v, ".pth")) as &[u8],
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/checkpoints/", $v, ".safetensors")) as &[u8],
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/checkpoints/", $v, "-FP16.bin")) as &[u8],
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/checkpoints/", $v, "-logits.bin")) as &[u8],
        )
    };
}

type Version = (&'static str, &'static [u8], &'static [u8], &'static [u8], &'static [u8]);
const VERSIONS: &[Version] = &[version!("v4"), version!("v5.1"), version!("v5.2"), version!("v6"), version!("v7")];
const TOKENS: &[u32] = &[3, 17, 42, 5, 60, 1, 33, 8];


#[wasm_bindgen_test]
fn converts_every_version_as_rwkv_cpp_does() {
    for &(v, pth, st, fp16, _) in VERSIONS {
        for input in [pth, st] {
            let ours = run(input, DType::F16).unwrap().0;
            let n = assert_same_file(&ours, fp16, v, v);
            assert!(n == 0 || !(v == "v6" || v == "v7"), "{v}: {n} elements differ");
        }
    }
}

#[wasm_bindgen_test]
fn logits_of_converted_models_match_pytorch() {
    for &(v, pth, _, _, logits) in VERSIONS {
        let expected: Vec<f32> = logits.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        let model = Arc::new(load_bytes(&run(pth, DType::F32).unwrap().0, LoadOptions::default()).unwrap());
        let mut b = backend::create(BackendKind::Ggml, model.clone()).unwrap();
        let mut state = model.initial_state();
        let mut out = vec![0.0; model.hparams.n_vocab];
        for (i, t) in TOKENS.iter().enumerate() {
            b.eval(&[*t], &mut state, (i + 1 == TOKENS.len()).then_some(&mut out[..])).unwrap();
        }
        let max = out.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, |m, d| if d > m || d.is_nan() { d } else { m });
        assert!(max <= 1e-4, "{v}: logits differ from PyTorch's by {max}");
    }
}

#[wasm_bindgen_test]
fn truncated_checkpoints_are_invalid_model() {
    for &(v, pth, st, _, _) in VERSIONS {
        for input in [pth, st] {
            let e = run(&input[..input.len() * 2 / 3], DType::F16).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidModel, "{v}: {e}");
        }
    }
}
