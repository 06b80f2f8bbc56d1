//! Malformed model files, shared by the native (tests/format.rs) and wasm (tests/wasm.rs) tests.

use echo_engine::format::DType;
use echo_engine::model::{load_bytes, LoadOptions};
use echo_engine::ErrorCode;

fn expect_err(bytes: &[u8], code: ErrorCode, what: &str) -> String {
    match load_bytes(bytes, LoadOptions::default()) {
        Ok(_) => panic!("{what}: loaded"),
        Err(e) => {
            assert_eq!(e.code, code, "{what}: {e}");
            assert!(!e.message.is_empty());
            e.message
        }
    }
}

fn set_i32(bytes: &mut [u8], at: usize, v: i32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Byte offsets of each tensor's header start and data start.
fn tensor_offsets(bytes: &[u8]) -> Vec<(usize, usize)> {
    let rd = |at: usize| i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let mut out = Vec::new();
    let mut p = 24;
    while p < bytes.len() {
        let (dims, key, code) = (rd(p) as usize, rd(p + 4) as usize, rd(p + 8));
        let shape: Vec<usize> = (0..dims).map(|i| rd(p + 12 + 4 * i) as usize).collect();
        let data = p + 12 + 4 * dims + key;
        let dt = DType::from_code(code).unwrap();
        let n = dt.row_bytes(shape[0]).unwrap() * shape[1..].iter().product::<usize>();
        out.push((p, data));
        p = data + n;
    }
    out
}

/// Every kind of malformed file is refused with its typed error, and afterwards `good` loads.
pub fn check(good: &[u8]) {
    let offsets = tensor_offsets(good);

    let mut b = good.to_vec();
    set_i32(&mut b, 0, 0x1234_5678);
    expect_err(&b, ErrorCode::InvalidModel, "wrong magic");

    let mut b = good.to_vec();
    set_i32(&mut b, 4, 99);
    expect_err(&b, ErrorCode::UnsupportedVersion, "unknown version");

    let mut b = good.to_vec();
    set_i32(&mut b, 4, 100);
    expect_err(&b, ErrorCode::UnsupportedVersion, "version 100 quantized");

    let mut b = good.to_vec();
    set_i32(&mut b, 20, 5);
    expect_err(&b, ErrorCode::UnsupportedVersion, "unknown data type in header");

    let mut b = good.to_vec();
    set_i32(&mut b, offsets[3].0 + 8, 42);
    expect_err(&b, ErrorCode::UnsupportedVersion, "unknown tensor data type");

    // An element-wise tensor (the second one, ln1.weight) in FP16, which rwkv.cpp cannot run.
    let ((start, data), end) = (offsets[1], offsets[2].0);
    let mut b = good[..start + 8].to_vec();
    b.extend_from_slice(&DType::F16.code().to_le_bytes());
    b.extend_from_slice(&good[start + 12..data + (end - data) / 2]);
    b.extend_from_slice(&good[end..]);
    let message = expect_err(&b, ErrorCode::InvalidModel, "a vector in FP16");
    assert!(message.contains("ln1.weight' is FP16"), "{message}");

    // Truncated at every tensor boundary and in the middle of every tensor's header and data.
    for (i, &(start, data)) in offsets.iter().enumerate() {
        let end = offsets.get(i + 1).map_or(good.len(), |o| o.0);
        for cut in [start, start + 5, data, (data + end) / 2, end - 1] {
            if cut < good.len() {
                expect_err(&good[..cut], ErrorCode::InvalidModel, &format!("truncated at {cut}"));
            }
        }
    }
    expect_err(&good[..10], ErrorCode::InvalidModel, "truncated header");
    expect_err(&good[..24], ErrorCode::InvalidModel, "header only");

    // n_embed that disagrees with the tensors.
    let mut b = good.to_vec();
    set_i32(&mut b, 12, 96);
    expect_err(&b, ErrorCode::InvalidModel, "shape disagrees with n_embed");

    // A missing tensor: drop the last one (head.weight).
    let last = offsets.last().unwrap().0;
    expect_err(&good[..last], ErrorCode::InvalidModel, "missing tensor");

    // Absurd dimensions whose byte size overflows.
    let mut b = good.to_vec();
    let (start, _) = offsets[0]; // emb.weight, 2-D FP32
    set_i32(&mut b, start + 12, i32::MAX);
    set_i32(&mut b, start + 16, i32::MAX);
    expect_err(&b, ErrorCode::InvalidModel, "overflowing dimensions");

    // A negative dimension and a silly dimension count.
    let mut b = good.to_vec();
    set_i32(&mut b, start + 12, -4);
    expect_err(&b, ErrorCode::InvalidModel, "negative dimension");
    let mut b = good.to_vec();
    set_i32(&mut b, start, 9);
    expect_err(&b, ErrorCode::InvalidModel, "nine dimensions");

    // Not a model at all.
    expect_err(b"<!doctype html><html><body>404</body></html>", ErrorCode::InvalidModel, "html");
    expect_err(&[], ErrorCode::InvalidModel, "empty");

    // And a valid model still loads.
    assert!(load_bytes(good, LoadOptions::default()).is_ok());
}

