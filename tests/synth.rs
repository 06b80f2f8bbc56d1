//! `synth` writes the files rwkv.cpp's converter writes: for every fixture (each one a converter
//! output, or an rwkv.cpp quantization of one), a synthetic model of the fixture's size has the
//! same tensors in the same order, with the same shapes and data types. And the loader refuses
//! the tensor types rwkv.cpp cannot run.

mod common;

use echo_engine::format::{write_file_header, write_tensor_header, DType, TensorInfo};
use echo_engine::model::{load_bytes, schema, Arch, LoadOptions, Model};
use echo_engine::quantize::Quantizer;
use echo_engine::synth::{self, SynthSpec};
use echo_engine::ErrorCode;

fn load(bytes: &[u8]) -> Model {
    load_bytes(bytes, LoadOptions::default()).unwrap()
}

/// A synthetic model of `like`'s architecture and size, in `dtype`.
fn synth_like(like: &Model, dtype: DType) -> Vec<u8> {
    let hp = like.hparams;
    let spec = SynthSpec {
        arch: like.arch,
        n_embed: hp.n_embed,
        n_layer: hp.n_layer,
        n_vocab: hp.n_vocab,
        n_ffn: Some(hp.n_ffn),
        head_size: Some(hp.head_size),
        dtype,
        seed: 1,
    };
    synth::to_vec(&spec).unwrap()
}

fn quantize(bytes: &[u8], target: DType) -> Vec<u8> {
    let mut q = Quantizer::new(target).unwrap();
    q.push(bytes).unwrap();
    let mut out = q.take_output();
    out.extend(q.finish().unwrap().0);
    out
}

/// Each tensor's name, data type and shape, in file order.
fn layout(model: &Model) -> Vec<(String, DType, Vec<usize>)> {
    model.tensors().iter().map(|t| (t.info.name.clone(), t.info.dtype, t.info.shape.clone())).collect()
}

fn assert_same_layout(ours: &[(String, DType, Vec<usize>)], theirs: &[(String, DType, Vec<usize>)], what: &str) {
    if let Some(i) = (0..ours.len().max(theirs.len())).find(|&i| ours.get(i) != theirs.get(i)) {
        panic!("{what}: tensor {i} is {:?} in ours, {:?} in rwkv.cpp's", ours.get(i), theirs.get(i));
    }
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn synth_files_have_the_layout_of_rwkv_cpp_files() {
    let dir = common::fixtures_dir();
    for &(file, _, dtype) in common::MODELS {
        let theirs = load(&std::fs::read(dir.join(file)).unwrap());
        let dtype = DType::from_name(dtype).unwrap();
        // rwkv.cpp quantized these fixtures from their FP32 files (their embeddings are FP32).
        let ours = match dtype.is_quantized() {
            true => quantize(&synth_like(&theirs, DType::F32), dtype),
            false => synth_like(&theirs, dtype),
        };
        let ours = load(&ours);
        assert_eq!((ours.arch, ours.hparams, ours.header.dtype), (theirs.arch, theirs.hparams, theirs.header.dtype), "{file}");
        assert_same_layout(&layout(&ours), &layout(&theirs), file);
        println!("{file}: {} tensors, same names, order, shapes and types", ours.tensors().len());
    }
}

/// Synthetic FP16 files quantize as rwkv.cpp quantizes: the fixture's quantized tensors are
/// quantized, and the others keep the type the converter gives them in an FP16 file.
#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn quantized_synth_fp16_files_have_the_layout_of_rwkv_cpp_files() {
    let dir = common::fixtures_dir();
    for &(file, tag, dtype) in common::MODELS.iter().filter(|m| m.2.starts_with('Q')) {
        let theirs = load(&std::fs::read(dir.join(file)).unwrap());
        let target = DType::from_name(dtype).unwrap();
        let fp16 = common::MODELS.iter().find(|m| m.1 == tag && m.2 == "FP16");
        let fp16 = fp16.map(|m| layout(&load(&std::fs::read(dir.join(m.0)).unwrap())));
        let want: Vec<_> = layout(&theirs)
            .into_iter()
            .enumerate()
            .map(|(i, (name, dtype, shape))| {
                let kept = match &fp16 {
                    Some(fp16) => fp16[i].1,
                    // v6 exists only as Q5_1 (from FP32): the converter writes the 2-D weights
                    // without `.time_` in their name in FP16, and of those quantizing keeps only
                    // the embedding and the head.
                    None if name == "emb.weight" || name == "head.weight" => DType::F16,
                    None => DType::F32,
                };
                let dtype = if dtype.is_quantized() { dtype } else { kept };
                (name, dtype, shape)
            })
            .collect();
        let ours = load(&quantize(&synth_like(&theirs, DType::F16), target));
        assert_same_layout(&layout(&ours), &want, &format!("{file} from FP16"));
        println!("synth FP16 → {dtype} matches {file}");
    }
}

/// A model file from `synth::plan` with zeros for data, after `change` edits the tensor infos.
fn planned_file(arch: Arch, change: impl Fn(&mut TensorInfo)) -> Vec<u8> {
    let spec = SynthSpec {
        arch,
        n_embed: 64,
        n_layer: 2,
        n_vocab: 256,
        n_ffn: None,
        head_size: None,
        dtype: DType::F16,
        seed: 1,
    };
    let (header, tensors) = synth::plan(&spec).unwrap();
    let mut out = Vec::new();
    write_file_header(&mut out, &header);
    for mut t in tensors {
        change(&mut t);
        t.n_bytes = t.dtype.row_bytes(t.shape[0]).unwrap() * t.shape[1..].iter().product::<usize>();
        write_tensor_header(&mut out, &t);
        out.resize(out.len() + t.n_bytes, 0);
    }
    out
}

fn retype(name: &'static str, dtype: DType) -> impl Fn(&mut TensorInfo) {
    move |t| {
        if t.name.ends_with(name) {
            t.dtype = dtype;
        }
    }
}

#[test]
fn the_loader_accepts_the_tensor_types_rwkv_cpp_runs() {
    assert!(load_bytes(&planned_file(Arch::V7, |_| ()), LoadOptions::default()).is_ok());
    // Matrices go to ggml_mul_mat in any type: an FP32 projection or an FP16 v6 LoRA runs.
    assert!(load_bytes(&planned_file(Arch::V7, retype("att.key.weight", DType::F32)), LoadOptions::default()).is_ok());
    assert!(load_bytes(&planned_file(Arch::V6, retype("att.time_maa_w1", DType::F16)), LoadOptions::default()).is_ok());
    // rwkv.cpp aborts on an FP16 r_k (the file `synth` once wrote): refused.
    let err = load_bytes(&planned_file(Arch::V7, retype("att.r_k", DType::F16)), LoadOptions::default()).err().unwrap();
    assert_eq!(err.code, ErrorCode::InvalidModel);
    assert!(err.message.contains("'blocks.0.att.r_k' is FP16"), "{}", err.message);
}

/// The quantizer, which sees one tensor at a time, looks each name up across architectures: a
/// name must mean the same in every one.
#[test]
fn each_tensor_name_is_stored_the_same_in_every_architecture() {
    for arch in Arch::ALL {
        for (name, spec) in schema::expected(arch, 2) {
            assert_eq!(schema::store(&name), Some(spec.store), "{} {name}", arch.name());
        }
    }
}

/// ggml's v7 kernel has no remainder loop: a head that is not a multiple of 64 would run it past
/// its buffers (it corrupted the heap natively), so such a file is refused, and synth makes none.
#[test]
fn v7_heads_must_be_multiples_of_64() {
    let two_heads_of_32 = |t: &mut TensorInfo| {
        if t.name.ends_with("att.r_k") {
            t.shape = vec![32, 2];
        }
    };
    let err = load_bytes(&planned_file(Arch::V7, two_heads_of_32), LoadOptions::default()).err().unwrap();
    assert_eq!(err.code, ErrorCode::InvalidModel);
    assert!(err.message.contains("v7 heads of size 32"), "{}", err.message);
    let spec = SynthSpec { arch: Arch::V7, n_embed: 64, n_layer: 1, n_vocab: 256, n_ffn: None, head_size: Some(32), dtype: DType::F16, seed: 1 };
    assert_eq!(synth::plan(&spec).err().unwrap().code, ErrorCode::InvalidOptions);
    // v6's kernel has a remainder loop: heads of 32 are fine there.
    assert!(synth::plan(&SynthSpec { arch: Arch::V6, ..spec }).is_ok());
}

/// Sizes past the file format's limits are refused at once (found by fuzzing `synth --n-layer
/// 2444444457`, which planned billions of layers; past u32 the header would also have truncated
/// them), and so are tensors too large to address.
#[test]
fn synth_refuses_sizes_past_the_format_limits() {
    let spec = SynthSpec { arch: Arch::V5_2, n_embed: 64, n_layer: 1, n_vocab: 256, n_ffn: None, head_size: None, dtype: DType::F16, seed: 1 };
    assert!(synth::file_bytes(&spec).is_ok());
    for bad in [
        SynthSpec { n_layer: 2_444_444_457, ..spec },
        SynthSpec { n_layer: usize::MAX, ..spec },
        SynthSpec { n_layer: 4097, ..spec },
        SynthSpec { n_embed: 1 << 17, ..spec },
        SynthSpec { n_vocab: (1 << 22) + 1, ..spec },
        SynthSpec { n_ffn: Some(usize::MAX / 2), ..spec },
    ] {
        let e = synth::file_bytes(&bad).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidOptions, "{bad:?}: {e:?}");
    }
}
