//! Shared test helpers: locating the fixtures (outside the repository) and their expectations.
#![allow(dead_code)]

use std::path::PathBuf;

pub mod malformed;

/// `../shared/fixtures/rwkv-tiny` from the crate root. Tests that read it carry
/// `#[cfg_attr(not(echo_fixtures), ignore = "…")]`: without the folder (at build time, see
/// build.rs) the harness lists them as ignored, with the reason, and counts them.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/rwkv-tiny")
}

/// Every model fixture: (file name, tag such as "4v0-660K", data type name).
pub const MODELS: &[(&str, &str, &str)] = &[
    ("tiny-rwkv-4v0-660K-FP32.bin", "4v0-660K", "FP32"),
    ("tiny-rwkv-4v0-660K-FP16.bin", "4v0-660K", "FP16"),
    ("tiny-rwkv-4v0-660K-Q5_0.bin", "4v0-660K", "Q5_0"),
    ("tiny-rwkv-4v0-660K-Q5_1.bin", "4v0-660K", "Q5_1"),
    ("tiny-rwkv-5v1-730K-FP32.bin", "5v1-730K", "FP32"),
    ("tiny-rwkv-5v1-730K-FP16.bin", "5v1-730K", "FP16"),
    ("tiny-rwkv-5v1-730K-Q5_0.bin", "5v1-730K", "Q5_0"),
    ("tiny-rwkv-5v1-730K-Q5_1.bin", "5v1-730K", "Q5_1"),
    ("tiny-rwkv-5v2-730K-FP32.bin", "5v2-730K", "FP32"),
    ("tiny-rwkv-5v2-730K-FP16.bin", "5v2-730K", "FP16"),
    ("tiny-rwkv-5v2-730K-Q5_0.bin", "5v2-730K", "Q5_0"),
    ("tiny-rwkv-5v2-730K-Q5_1.bin", "5v2-730K", "Q5_1"),
    ("tiny-rwkv-6v0-3m-Q5_1.bin", "6v0-3m", "Q5_1"),
    ("tiny-rwkv-7v0-834K-FP32.bin", "7v0-834K", "FP32"),
    ("tiny-rwkv-7v0-834K-FP16.bin", "7v0-834K", "FP16"),
    ("tiny-rwkv-7v0-834K-Q5_0.bin", "7v0-834K", "Q5_0"),
    ("tiny-rwkv-7v0-834K-Q5_1.bin", "7v0-834K", "Q5_1"),
];

/// The prompt `"in` of the fixture README.
pub const PROMPT: [u32; 3] = [34, 105, 110];

/// The README's diff_sum bound for a tag and data type.
#[allow(clippy::excessive_precision)] // the README's figures, as printed
pub fn bound(tag: &str, dtype: &str) -> f32 {
    match (tag, dtype) {
        (_, "FP32") => 0.001,
        ("4v0-660K", "FP16") => -0.013652,
        ("4v0-660K", "Q5_0") => -0.170404,
        ("4v0-660K", "Q5_1") => 0.278034,
        ("5v1-730K", "FP16") => -0.289921,
        ("5v1-730K", "Q5_0") => -163.439407,
        ("5v1-730K", "Q5_1") => -18.017435,
        ("5v2-730K", "FP16") => 0.455912,
        ("5v2-730K", "Q5_0") => 25.273308,
        ("5v2-730K", "Q5_1") => 48.068733,
        ("6v0-3m", "Q5_1") => 3.576909,
        ("7v0-834K", "FP16") => 0.005766,
        ("7v0-834K", "Q5_0") => -0.063645,
        ("7v0-834K", "Q5_1") => -0.064663,
        _ => panic!("no bound for {tag} {dtype}"),
    }
}

/// The 256 expected logits for a tag.
pub fn expected_logits(dir: &std::path::Path, tag: &str) -> Vec<f32> {
    let bytes = std::fs::read(dir.join(format!("expected-logits-{tag}.bin"))).expect("expected logits");
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// Passes when |diff_sum| <= |bound| * 1.05, as rwkv.cpp's own test.
pub fn diff_sum_ok(diff_sum: f32, bound: f32) -> bool {
    diff_sum.abs() <= bound.abs() * 1.05
}
