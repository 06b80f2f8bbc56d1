//! The model file parser and loader: every fixture loads (whole and one byte at a time), and
//! malformed input is refused with a typed error, after which a valid model still loads.

mod common;

use echo_engine::format::{write_file_header, DType, FileHeader};
use echo_engine::model::{load_bytes, Arch, LoadOptions, ModelLoader};
use echo_engine::ErrorCode;

fn read(name: &str) -> Vec<u8> {
    std::fs::read(common::fixtures_dir().join(name)).expect("fixture")
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn every_fixture_loads_with_its_architecture() {
    let dir = common::fixtures_dir();
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
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn one_byte_at_a_time_gives_the_same_model() {
    let bytes = read("tiny-rwkv-7v0-834K-Q5_1.bin");
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

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn malformed_files_give_typed_errors_and_the_next_load_works() {
    let good = read("tiny-rwkv-5v2-730K-Q5_1.bin");
    common::malformed::check(&good);
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn a_model_over_the_limit_is_refused_from_its_header() {
    let good = read("tiny-rwkv-4v0-660K-FP32.bin");
    let limit = good.len() as u64 / 2;
    let mut loader =
        ModelLoader::new(LoadOptions { limit_bytes: Some(limit), file_bytes: Some(good.len() as u64), ..LoadOptions::default() });
    let err = loader.push(&good[..24]).unwrap_err();
    assert_eq!(err.code, ErrorCode::ModelTooLarge);
    assert_eq!(err.limit_bytes, Some(limit));
    assert!(err.needed_bytes.unwrap() > limit);

    // Without the file size the header gives a lower bound; the per-tensor check catches the rest.
    let mut loader = ModelLoader::new(LoadOptions { limit_bytes: Some(limit), ..LoadOptions::default() });
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
