//! The model file parser and loader: every fixture loads (whole and one byte at a time), and
//! malformed input is refused with a typed error, after which a valid model still loads.

mod common;

use echo_engine::format::{write_file_header, DType, FileHeader};
use echo_engine::model::{load_bytes, Arch, LoadOptions, ModelLoader};
use echo_engine::ErrorCode;

fn read(name: &str) -> Option<Vec<u8>> {
    common::fixtures_dir().map(|d| std::fs::read(d.join(name)).expect("fixture"))
}

#[test]
fn every_fixture_loads_with_its_architecture() {
    let Some(dir) = common::fixtures_dir() else { return };
    for (file, tag, dtype) in common::MODELS {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let model = load_bytes(&bytes, LoadOptions::default()).unwrap_or_else(|e| panic!("{file}: {e}"));
        let want = match &tag[..3] {
            "4v0" => Arch::V4,
            "5v1" => Arch::V5_1,
            "5v2" => Arch::V5_2,
            "6v0" => Arch::V6,
            _ => Arch::V7,
        };
        assert_eq!(model.arch, want, "{file}");
        assert_eq!(model.header.dtype, DType::from_name(dtype).unwrap(), "{file}");
        assert_eq!(model.hparams.n_vocab, 256);
        assert_eq!(model.file_bytes, bytes.len() as u64);
        let h = model.hparams;
        assert!(want == Arch::V4 || h.n_head * h.head_size == h.n_embed, "{file}: {h:?}");
        println!("{file}: {} {h:?} state {}", model.arch.name(), model.state_len());
    }
}

#[test]
fn one_byte_at_a_time_gives_the_same_model() {
    let Some(bytes) = read("tiny-rwkv-7v0-834K-Q5_1.bin") else { return };
    let whole = load_bytes(&bytes, LoadOptions::default()).unwrap();
    let mut loader = ModelLoader::new(LoadOptions::default());
    for b in &bytes {
        loader.push(std::slice::from_ref(b)).unwrap();
    }
    let bytewise = loader.finish().unwrap();
    assert_eq!(whole.tensors().len(), bytewise.tensors().len());
    for (a, b) in whole.tensors().iter().zip(bytewise.tensors()) {
        assert_eq!(a.info, b.info);
        assert_eq!(a.data.as_slice(), b.data.as_slice());
    }
}

fn expect_err(bytes: &[u8], code: ErrorCode, what: &str) {
    match load_bytes(bytes, LoadOptions::default()) {
        Ok(_) => panic!("{what}: loaded"),
        Err(e) => {
            assert_eq!(e.code, code, "{what}: {e}");
            assert!(!e.message.is_empty());
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

#[test]
fn malformed_files_give_typed_errors_and_the_next_load_works() {
    let Some(good) = read("tiny-rwkv-5v2-730K-Q5_1.bin") else { return };
    let offsets = tensor_offsets(&good);

    let mut b = good.clone();
    set_i32(&mut b, 0, 0x1234_5678);
    expect_err(&b, ErrorCode::InvalidModel, "wrong magic");

    let mut b = good.clone();
    set_i32(&mut b, 4, 99);
    expect_err(&b, ErrorCode::UnsupportedVersion, "unknown version");

    let mut b = good.clone();
    set_i32(&mut b, 4, 100);
    expect_err(&b, ErrorCode::UnsupportedVersion, "version 100 quantized");

    let mut b = good.clone();
    set_i32(&mut b, 20, 5);
    expect_err(&b, ErrorCode::UnsupportedVersion, "unknown data type in header");

    let mut b = good.clone();
    set_i32(&mut b, offsets[3].0 + 8, 42);
    expect_err(&b, ErrorCode::UnsupportedVersion, "unknown tensor data type");

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
    let mut b = good.clone();
    set_i32(&mut b, 12, 96);
    expect_err(&b, ErrorCode::InvalidModel, "shape disagrees with n_embed");

    // A missing tensor: drop the last one (head.weight).
    let last = offsets.last().unwrap().0;
    expect_err(&good[..last], ErrorCode::InvalidModel, "missing tensor");

    // Absurd dimensions whose byte size overflows.
    let mut b = good.clone();
    let (start, _) = offsets[0]; // emb.weight, 2-D FP32
    set_i32(&mut b, start + 12, i32::MAX);
    set_i32(&mut b, start + 16, i32::MAX);
    expect_err(&b, ErrorCode::InvalidModel, "overflowing dimensions");

    // A negative dimension and a silly dimension count.
    let mut b = good.clone();
    set_i32(&mut b, start + 12, -4);
    expect_err(&b, ErrorCode::InvalidModel, "negative dimension");
    let mut b = good.clone();
    set_i32(&mut b, start, 9);
    expect_err(&b, ErrorCode::InvalidModel, "nine dimensions");

    // Not a model at all.
    expect_err(b"<!doctype html><html><body>404</body></html>", ErrorCode::InvalidModel, "html");
    expect_err(&[], ErrorCode::InvalidModel, "empty");

    // And a valid model still loads.
    assert!(load_bytes(&good, LoadOptions::default()).is_ok());
}

#[test]
fn a_model_over_the_limit_is_refused_from_its_header() {
    let Some(good) = read("tiny-rwkv-4v0-660K-FP32.bin") else { return };
    let limit = good.len() as u64 / 2;
    let mut loader =
        ModelLoader::new(LoadOptions { limit_bytes: Some(limit), file_bytes: Some(good.len() as u64), reserve_bytes: 0 });
    let err = loader.push(&good[..24]).unwrap_err();
    assert_eq!(err.code, ErrorCode::ModelTooLarge);
    assert_eq!(err.limit_bytes, Some(limit));
    assert!(err.needed_bytes.unwrap() > limit);

    // Without the file size the header gives a lower bound; the per-tensor check catches the rest.
    let mut loader = ModelLoader::new(LoadOptions { limit_bytes: Some(limit), file_bytes: None, reserve_bytes: 0 });
    let err = loader.push(&good).unwrap_err();
    assert_eq!(err.code, ErrorCode::ModelTooLarge);
    assert!(loader.bytes_consumed() < good.len() as u64);
}

#[test]
fn a_header_alone_round_trips_through_the_writer() {
    let h = FileHeader { version: 101, n_vocab: 256, n_embed: 64, n_layer: 2, dtype: DType::Q8_0 };
    let mut out = Vec::new();
    write_file_header(&mut out, &h);
    let mut loader = ModelLoader::new(LoadOptions::default());
    loader.push(&out).unwrap();
    assert_eq!(loader.header(), Some(&h));
}
