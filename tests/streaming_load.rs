//! `StreamingLoad`, natively: the header is held back until the budget is known, a model that does
//! not fit is refused before any tensor memory exists, and chunks of any size work. The models are
//! synthesized in memory, so no fixture is needed.

use echo_engine::format::DType;
use echo_engine::model::{Arch, StreamingLoad};
use echo_engine::quantize::Quantizer;
use echo_engine::synth::{self, SynthSpec};
use echo_engine::ErrorCode;

fn model_bytes() -> Vec<u8> {
    let spec = SynthSpec {
        arch: Arch::V5_2,
        n_embed: 64,
        n_layer: 2,
        n_vocab: 256,
        n_ffn: None,
        head_size: None,
        dtype: DType::F16,
        seed: 3,
    };
    synth::to_vec(&spec).unwrap()
}

#[test]
fn byte_by_byte_the_reserve_is_asked_once_at_the_header() {
    let bytes = model_bytes();
    let mut load = StreamingLoad::new(u64::MAX, Some(bytes.len() as u64));
    let mut asked = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        load.push(std::slice::from_ref(b), |h| {
            asked.push((i, h.n_vocab));
            Ok(0)
        })
        .unwrap();
    }
    // Asked when the 24th byte (index 23) arrived, and never again.
    assert_eq!(asked, vec![(23, 256)]);
    let model = load.finish().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(model.file_bytes, bytes.len() as u64);
    assert_eq!(model.arch, Arch::V5_2);
}

#[test]
fn a_model_over_the_limit_is_refused_at_its_header() {
    let bytes = model_bytes();
    let limit = bytes.len() as u64 / 2;
    // The file header alone is enough to refuse: no tensor has been seen, let alone allocated.
    let mut load = StreamingLoad::new(limit, Some(bytes.len() as u64));
    let err = load.push(&bytes[..24], |_| Ok(1000)).unwrap_err();
    assert_eq!(err.code, ErrorCode::ModelTooLarge);
    assert_eq!(err.limit_bytes, Some(limit));
    assert!(err.needed_bytes.unwrap() >= bytes.len() as u64 - 24 + 1000);

    // The reserve counts: the weights fit, the weights plus the reserve do not.
    let mut load = StreamingLoad::new(bytes.len() as u64, Some(bytes.len() as u64));
    let err = load.push(&bytes, |_| Ok(bytes.len() as u64)).unwrap_err();
    assert_eq!(err.code, ErrorCode::ModelTooLarge);
}

#[test]
fn short_and_foreign_sources_are_invalid_models() {
    let mut load = StreamingLoad::new(u64::MAX, None);
    load.push(b"RIFF", |_| panic!("no header yet")).unwrap();
    assert_eq!(load.finish().err().expect("not a model").code, ErrorCode::InvalidModel);

    let mut load = StreamingLoad::new(u64::MAX, None);
    let err = load.push(&[7u8; 64], |_| panic!("a bad header is never budgeted")).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidModel);

    let bytes = model_bytes();
    let mut load = StreamingLoad::new(u64::MAX, None);
    load.push(&bytes[..bytes.len() - 10], |_| Ok(0)).unwrap();
    assert_eq!(load.finish().err().expect("not a model").code, ErrorCode::InvalidModel);
}

/// Tensor data written in place (`window`/`advance`, as the worker does with each chunk) gives the
/// same model as pushing it; headers still go through `push`.
#[test]
fn data_written_in_place_loads_the_same_model() {
    let bytes = model_bytes();
    let pushed = {
        let mut load = StreamingLoad::new(u64::MAX, Some(bytes.len() as u64));
        load.push(&bytes, |_| Ok(0)).unwrap();
        load.finish().unwrap()
    };
    let mut load = StreamingLoad::new(u64::MAX, Some(bytes.len() as u64));
    assert!(load.window().is_empty(), "no window before the header");
    let (mut at, mut in_place) = (0, 0);
    while at < bytes.len() {
        let window = load.window();
        if window.is_empty() {
            load.push(&bytes[at..at + 1], |_| Ok(0)).unwrap();
            at += 1;
            continue;
        }
        // Odd piece sizes, so windows are left part-filled.
        let n = window.len().min(bytes.len() - at).min(1000 + at % 777);
        for (w, b) in window.iter_mut().zip(&bytes[at..at + n]) {
            w.write(*b);
        }
        load.advance(n).unwrap();
        (at, in_place) = (at + n, in_place + n);
    }
    let model = load.finish().unwrap_or_else(|e| panic!("{e}"));
    assert!(in_place > bytes.len() * 9 / 10, "most bytes went in place: {in_place} of {}", bytes.len());
    assert_eq!(model.tensors().len(), pushed.tensors().len());
    for (a, b) in model.tensors().iter().zip(pushed.tensors()) {
        assert_eq!(a.info.name, b.info.name);
        assert_eq!(a.data.as_slice(), b.data.as_slice(), "tensor {}", a.info.name);
    }
}

/// Advancing outside tensor data, or past the window, is refused with a typed error.
#[test]
fn advancing_past_the_window_is_refused() {
    let bytes = model_bytes();
    let mut load = StreamingLoad::new(u64::MAX, Some(bytes.len() as u64));
    assert_eq!(load.advance(1).unwrap_err().code, ErrorCode::InvalidOptions, "before the header");
    let mut at = 0;
    while load.window().is_empty() {
        load.push(&bytes[at..at + 1], |_| Ok(0)).unwrap();
        at += 1;
    }
    let past = load.window().len() + 1;
    assert_eq!(load.advance(past).unwrap_err().code, ErrorCode::InvalidOptions);
}

/// `with_head(Q8_0)`: the head is quantized as it arrives, fed as the worker feeds (in place where
/// there is a window, pushed where not), and comes out as `quantize --head Q8_0` makes it; every
/// other tensor is as stored.
#[test]
fn the_head_is_quantized_as_it_arrives() {
    let bytes = model_bytes();
    let plain = {
        let mut load = StreamingLoad::new(u64::MAX, Some(bytes.len() as u64));
        load.push(&bytes, |_| Ok(0)).unwrap();
        load.finish().unwrap()
    };
    let want = {
        let mut q = Quantizer::new(DType::Q5_1).unwrap().with_head("Q8_0").unwrap();
        q.push(&bytes).unwrap();
        let file = q.finish().unwrap().0;
        let mut load = StreamingLoad::new(u64::MAX, Some(file.len() as u64));
        load.push(&file, |_| Ok(0)).unwrap();
        load.finish().unwrap()
    };
    let mut load = StreamingLoad::new(u64::MAX, Some(bytes.len() as u64)).with_head(Some(DType::Q8_0));
    let mut at = 0;
    while at < bytes.len() {
        let window = load.window();
        let n = if window.is_empty() { 1 + at % 333 } else { window.len().min(1000 + at % 777) }.min(bytes.len() - at);
        if window.is_empty() {
            load.push(&bytes[at..at + n], |_| Ok(0)).unwrap();
        } else {
            for (w, b) in window.iter_mut().zip(&bytes[at..at + n]) {
                w.write(*b);
            }
            load.advance(n).unwrap();
        }
        at += n;
    }
    let model = load.finish().unwrap_or_else(|e| panic!("{e}"));
    let head = model.tensor("head.weight");
    assert_eq!(head.info.dtype, DType::Q8_0);
    assert_eq!(head.data.as_slice(), want.tensor("head.weight").data.as_slice());
    for (a, b) in model.tensors().iter().zip(plain.tensors()).filter(|(a, _)| a.info.name != "head.weight") {
        assert_eq!((a.info.dtype, a.data.as_slice()), (b.info.dtype, b.data.as_slice()), "tensor {}", a.info.name);
    }
}
