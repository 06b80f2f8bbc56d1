//! `convert`: PyTorch checkpoints (`.pth`, `.safetensors`) to rwkv.cpp files. The fixtures in
//! `tests/fixtures/checkpoints/` were made with real PyTorch by `scripts/make-checkpoint-fixtures.py`:
//! a tiny checkpoint per version with the official names and shapes, the files rwkv.cpp's converter
//! writes for it (by our Python port of that converter, run with PyTorch's ops), and the PyTorch
//! model's logits.

use std::sync::Arc;

use echo_engine::backend::{self, BackendKind};
use echo_engine::convert::{Converter, Need};
use echo_engine::format::DType;
use echo_engine::model::{load_bytes, LoadOptions};
use echo_engine::quantize::Quantizer;
use echo_engine::ErrorCode;

#[path = "common/checkpoints.rs"]
mod checkpoints;
use checkpoints::{assert_same_file, run, tensors};

const VERSIONS: &[&str] = &["v4", "v5.1", "v5.2", "v6", "v7"];
/// The tokens the fixture script fed the PyTorch models, one at a time.
const TOKENS: &[u32] = &[3, 17, 42, 5, 60, 1, 33, 8];

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checkpoints").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}


fn convert_ok(input: &[u8], target: DType) -> Vec<u8> {
    run(input, target).unwrap().0
}

#[test]
fn converts_every_version_as_rwkv_cpp_does() {
    for v in VERSIONS {
        for ext in ["pth", "safetensors"] {
            let input = fixture(&format!("{v}.{ext}"));
            for t in [DType::F32, DType::F16] {
                let (ours, summary) = run(&input, t).unwrap();
                let theirs = fixture(&format!("{v}-{}.bin", t.name()));
                let n = assert_same_file(&ours, &theirs, v, &format!("{v}.{ext} to {}", t.name()));
                assert_eq!(summary.arch.name(), *v);
                assert_eq!((summary.n_layer, summary.n_vocab), (2, 64));
                if n > 0 {
                    println!("{v}.{ext} {}: {n} exp-transformed elements 1 ulp from PyTorch's f32 exp", t.name());
                }
                // And the engine loads it.
                load_bytes(&ours, LoadOptions::default()).unwrap();
            }
        }
    }
}

#[test]
fn views_are_read_through_their_strides_and_offsets() {
    // head.weight is a transposed (non-contiguous) view; two FFN matrices share one storage.
    let ours = convert_ok(&fixture("views.pth"), DType::F16);
    assert_same_file(&ours, &fixture("views-FP16.bin"), "v4", "views.pth");
    load_bytes(&ours, LoadOptions::default()).unwrap();
}

#[test]
fn exp_transforms_are_the_nearest_f32() {
    // v4's time_decay is -exp(x): ours is the f32 nearest the exact value, computed here from the
    // checkpoint's f32 inputs (read from the safetensors header by hand).
    let st = fixture("v4.safetensors");
    let n = u64::from_le_bytes(st[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&st[8..8 + n]).unwrap();
    let (_, ours) = tensors(&convert_ok(&st, DType::F32));
    for layer in 0..2 {
        let name = format!("blocks.{layer}.att.time_decay");
        let entry = &header[header.find(&format!("\"{name}\"")).unwrap()..];
        assert!(entry.contains("\"dtype\":\"F32\""));
        let offs = &entry[entry.find("data_offsets\":[").unwrap() + 15..];
        let begin: usize = offs[..offs.find(',').unwrap()].parse().unwrap();
        let input = st[8 + n + begin..].chunks_exact(4).take(32).map(|b| f32::from_le_bytes(b.try_into().unwrap()));
        let out = &ours.iter().find(|t| t.0 == name).unwrap().3;
        for (x, y) in input.zip(out.chunks_exact(4)) {
            let nearest = -((x as f64).exp() as f32);
            assert_eq!(f32::from_le_bytes(y.try_into().unwrap()).to_bits(), nearest.to_bits(), "{name}: -exp({x})");
        }
    }
}

#[test]
fn quantized_output_is_the_fp16_file_quantized() {
    for v in ["v4", "v6", "v7"] {
        let input = fixture(&format!("{v}.pth"));
        let fp16 = convert_ok(&input, DType::F16);
        for q in [DType::Q5_1, DType::Q8_0] {
            let mut quantizer = Quantizer::new(q).unwrap();
            quantizer.push(&fp16).unwrap();
            let mut expected = quantizer.take_output();
            let (last, _, quantized) = quantizer.finish().unwrap();
            expected.extend(last);
            let (ours, summary) = run(&input, q).unwrap();
            assert!(ours == expected, "{v} {}: not the FP16 file quantized", q.name());
            assert_eq!(summary.quantized, quantized);
            assert!(quantized > 0);
            assert_eq!(load_bytes(&ours, LoadOptions::default()).unwrap().header.dtype, q);
        }
    }
}

#[test]
fn logits_of_converted_models_match_pytorch() {
    for v in VERSIONS {
        let expected: Vec<f32> =
            fixture(&format!("{v}-logits.bin")).chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        for ext in ["pth", "safetensors"] {
            let model = Arc::new(load_bytes(&convert_ok(&fixture(&format!("{v}.{ext}")), DType::F32), LoadOptions::default()).unwrap());
            for kind in [BackendKind::Ggml, BackendKind::Reference] {
                let mut b = backend::create(kind, model.clone()).unwrap();
                let mut state = model.initial_state();
                let mut logits = vec![0.0; model.hparams.n_vocab];
                for (i, t) in TOKENS.iter().enumerate() {
                    b.eval(&[*t], &mut state, (i + 1 == TOKENS.len()).then_some(&mut logits[..])).unwrap();
                }
                let max = logits.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, |m, d| if d > m || d.is_nan() { d } else { m });
                println!("{v}.{ext} {kind:?}: max |logit - PyTorch's| = {max:.2e}");
                assert!(max <= 1e-4, "{v}.{ext} {kind:?}: logits differ from PyTorch's by {max}");
            }
        }
    }
}

#[test]
fn reads_through_any_chunking_of_requests() {
    // The pull interface by hand: every read is within the file and the output is the same.
    let input = fixture("v6.pth");
    let mut c = Converter::new(input.len() as u64, DType::F16).unwrap();
    let mut out = Vec::new();
    let mut reads = 0;
    loop {
        let need = c.need().unwrap();
        out.extend(c.take_output());
        let Need::Read { offset, len } = need else { break };
        assert!(offset as usize + len <= input.len() && len <= 1 << 20);
        c.give(&input[offset as usize..offset as usize + len]).unwrap();
        out.extend(c.take_output());
        reads += 1;
        let (done, total) = c.progress();
        assert!(done <= total);
    }
    assert!(reads > 10);
    assert_eq!(out, convert_ok(&input, DType::F16));
    assert_eq!(c.progress().0, c.progress().1);
}

// ---- Hostile and broken checkpoints ----

/// A stored zip archive of `entries`, as PyTorch writes them (data after a local header).
fn zip(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut dir = Vec::new();
    for (name, data) in entries {
        let at = out.len() as u32;
        let mut h = Vec::new();
        h.extend(0x0403_4b50u32.to_le_bytes());
        h.extend([20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        h.extend((data.len() as u32).to_le_bytes());
        h.extend((data.len() as u32).to_le_bytes());
        h.extend((name.len() as u16).to_le_bytes());
        h.extend(0u16.to_le_bytes());
        out.extend(&h);
        out.extend(name.as_bytes());
        out.extend(data);
        dir.extend(0x0201_4b50u32.to_le_bytes());
        dir.extend([20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        dir.extend((data.len() as u32).to_le_bytes());
        dir.extend((data.len() as u32).to_le_bytes());
        dir.extend((name.len() as u16).to_le_bytes());
        dir.extend([0u8; 12]);
        dir.extend(at.to_le_bytes());
        dir.extend(name.as_bytes());
    }
    let dir_at = out.len() as u32;
    out.extend(&dir);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((dir.len() as u32).to_le_bytes());
    out.extend(dir_at.to_le_bytes());
    out.extend([0u8; 2]);
    out
}

/// `zip(entries)` as zip64 writes it (PyTorch does past 4 GB): the directory's sizes and offsets
/// as 0xffffffff with the values in a zip64 extra field, and a zip64 end record and locator.
fn zip64(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let plain = zip(entries);
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap()) as usize;
    let eocd = plain.len() - 22;
    let dir_at = u32_at(&plain, eocd + 16);
    let mut out = plain[..dir_at].to_vec();
    let mut dir = Vec::new();
    let mut i = dir_at;
    while i < eocd {
        let n = u16::from_le_bytes([plain[i + 28], plain[i + 29]]) as usize;
        let (size, local) = (u32_at(&plain, i + 24) as u64, u32_at(&plain, i + 42) as u64);
        let mut e = plain[i..i + 46].to_vec();
        e[20..28].copy_from_slice(&[0xff; 8]);
        e[30..32].copy_from_slice(&28u16.to_le_bytes());
        e[42..46].copy_from_slice(&[0xff; 4]);
        e.extend(&plain[i + 46..i + 46 + n]);
        e.extend(1u16.to_le_bytes());
        e.extend(24u16.to_le_bytes());
        for v in [size, size, local] {
            e.extend(v.to_le_bytes());
        }
        dir.extend(e);
        i += 46 + n;
    }
    let new_dir_at = out.len() as u64;
    out.extend(&dir);
    let rec_at = out.len() as u64;
    out.extend(0x0606_4b50u32.to_le_bytes());
    out.extend(44u64.to_le_bytes());
    out.extend([45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let count = entries.len() as u64;
    for v in [count, count, dir.len() as u64, new_dir_at] {
        out.extend(v.to_le_bytes());
    }
    out.extend(0x0706_4b50u32.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    out.extend(rec_at.to_le_bytes());
    out.extend(1u32.to_le_bytes());
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend([0xff; 4]);
    out.extend([0xff; 8]);
    out.extend([0u8; 2]);
    out
}

/// The entries of a PyTorch archive (read with the central directory, independently of ours).
fn unzip(b: &[u8]) -> Vec<(String, Vec<u8>)> {
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]) as usize;
    let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap()) as usize;
    let eocd = (0..b.len() - 21).rev().find(|&i| u32_at(i) == 0x0605_4b50).unwrap();
    let (mut i, n) = (u32_at(eocd + 16), u16_at(eocd + 10));
    let mut out = Vec::new();
    for _ in 0..n {
        let (size, nl, ml, kl, local) = (u32_at(i + 24), u16_at(i + 28), u16_at(i + 30), u16_at(i + 32), u32_at(i + 42));
        let name = String::from_utf8(b[i + 46..i + 46 + nl].to_vec()).unwrap();
        let data_at = local + 30 + u16_at(local + 26) + u16_at(local + 28);
        out.push((name, b[data_at..data_at + size].to_vec()));
        i += 46 + nl + ml + kl;
    }
    out
}

/// v4.pth with its data.pkl changed by `f` (and every other entry kept).
fn with_pickle(f: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let entries: Vec<(String, Vec<u8>)> =
        unzip(&fixture("v4.pth")).into_iter().map(|(n, d)| if n.ends_with("data.pkl") { let d = f(&d); (n, d) } else { (n, d) }).collect();
    zip(&entries.iter().map(|(n, d)| (n.as_str(), d.clone())).collect::<Vec<_>>())
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = hay.windows(from.len()).position(|w| w == from).unwrap_or_else(|| panic!("{:?} not found", String::from_utf8_lossy(from)));
    [&hay[..at], to, &hay[at + from.len()..]].concat()
}

fn refused(input: &[u8], what: &str) -> String {
    match run(input, DType::F16) {
        Ok(_) => panic!("{what}: converted"),
        Err(e) => {
            assert_eq!(e.code, ErrorCode::InvalidModel, "{what}: {e}");
            e.message
        }
    }
}

#[test]
fn our_zip_writer_round_trips_a_checkpoint() {
    // The hostile cases below are made by rewriting the archive; unchanged, it converts the same.
    let same = with_pickle(|p| p.to_vec());
    assert_eq!(convert_ok(&same, DType::F32), convert_ok(&fixture("v4.pth"), DType::F32));
}

#[test]
fn zip64_archives_convert_the_same() {
    let entries = unzip(&fixture("v7.pth"));
    let z = zip64(&entries.iter().map(|(n, d)| (n.as_str(), d.clone())).collect::<Vec<_>>());
    assert_eq!(convert_ok(&z, DType::F16), fixture("v7-FP16.bin"));
    // With a 64 KiB comment after the end record, the zip64 records are still found.
    let mut long = z.clone();
    let n = long.len();
    long[n - 2..].copy_from_slice(&0xffffu16.to_le_bytes());
    long.extend(vec![b'#'; 0xffff]);
    assert_eq!(convert_ok(&long, DType::F16), fixture("v7-FP16.bin"));
}

#[test]
fn pickles_that_call_anything_else_are_refused() {
    let m = refused(&with_pickle(|p| replace(p, b"torch._utils\n_rebuild_tensor_v2\n", b"os\nsystem\n")), "os.system");
    assert!(m.contains("os.system") && m.contains("nothing was run"), "{m}");
    let m = refused(&with_pickle(|p| replace(p, b"collections\nOrderedDict\n", b"builtins\neval\n")), "eval");
    assert!(m.contains("builtins.eval"), "{m}");
    // STACK_GLOBAL with a name from the stack.
    let m = refused(
        &with_pickle(|p| replace(p, b"ccollections\nOrderedDict\n", b"\x8c\x08builtins\x8c\x04exec\x93")),
        "exec by STACK_GLOBAL",
    );
    assert!(m.contains("builtins.exec"), "{m}");
    // Opcodes outside the subset: INST (protocol 0 call), OBJ, NEWOBJ, EXT1.
    for (op, name) in [(&b"ios\nsystem\n"[..], "INST"), (b"(o", "OBJ"), (b"\x81", "NEWOBJ"), (b"\x82\x01", "EXT1")] {
        let m = refused(&with_pickle(|p| replace(p, b"\x80\x02", &[b"\x80\x02", op].concat())), name);
        assert!(m.contains("opcode") && m.contains("refused"), "{name}: {m}");
    }
    // A persistent id that is not a storage.
    let m = refused(&with_pickle(|p| replace(p, b"X\x07\x00\x00\x00storage", b"X\x07\x00\x00\x00Storage")), "persid");
    assert!(m.contains("persistent id"), "{m}");
    // A million nested tuples (dropped without recursion) and a pickle longer than any state dict
    // are refused, without a crash or a large allocation; a memo index near 2^32 costs one entry.
    let nested = [&b"\x80\x02)"[..], &vec![0x85u8; 1 << 20], b"."].concat();
    let m = refused(&with_pickle(|_| nested.clone()), "nested");
    assert!(m.contains("not a state dict") || m.contains("something other"), "{m}");
    let far = with_pickle(|p| replace(p, b"\x80\x02", b"\x80\x02Nr\xff\xff\xff\xff0"));
    assert_eq!(convert_ok(&far, DType::F32), convert_ok(&fixture("v4.pth"), DType::F32));
    let m = refused(&with_pickle(|_| [&b"\x80\x02"[..], &vec![b'N'; 5 << 20], b"."].concat()), "long");
    assert!(m.contains("too long") || m.contains("implausibly large"), "{m}");
    // A truncated pickle.
    let m = refused(&with_pickle(|p| p[..p.len() / 2].to_vec()), "truncated pickle");
    assert!(m.contains("truncated"), "{m}");
}

#[test]
fn storages_outside_the_archive_and_overflowing_sizes_are_refused() {
    // The first tensor's storage is key '0': point it at a key the archive does not have, and at a path.
    let m = refused(&with_pickle(|p| replace(p, b"X\x01\x00\x00\x000q", b"X\x03\x00\x00\x00999q")), "missing storage");
    assert!(m.contains("not in the archive"), "{m}");
    let m = refused(&with_pickle(|p| replace(p, b"X\x01\x00\x00\x000q", b"X\x04\x00\x00\x00../0q")), "path");
    assert!(m.contains("not in the archive"), "{m}");
    // emb.weight is (64, 32), 2048 elements: BININT2 2048 = M\x00\x08.
    let m = refused(&with_pickle(|p| replace(p, b"M\x00\x08t", b"J\xff\xff\xff\x7ft")), "storage larger than its entry");
    assert!(m.contains("claims a storage"), "{m}");
    // A size whose product overflows u64: (2^62, 2^62) as LONG1 8-byte integers.
    let huge = b"\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40";
    let m = refused(&with_pickle(|p| replace(p, b"K@K \x86", &[&huge[..], huge, b"\x86"].concat())), "overflow");
    assert!(m.contains("overflow"), "{m}");
    // A view past the end of its storage: offset 2048.
    let m = refused(&with_pickle(|p| replace(p, b"QK\x00K@K \x86", b"QM\x00\x08K@K \x86")), "offset");
    assert!(m.contains("past the end of its storage"), "{m}");
    // A negative size.
    let m = refused(&with_pickle(|p| replace(p, b"K@K \x86", b"J\xff\xff\xff\xffK \x86")), "negative");
    assert!(m.contains("non-negative"), "{m}");
    // An unsupported dtype.
    let m = refused(&with_pickle(|p| replace(p, b"torch\nFloatStorage\n", b"torch\nDoubleStorage\n")), "float64");
    assert!(m.contains("float32, float16 and bfloat16"), "{m}");
}

#[test]
fn truncated_compressed_and_malformed_archives_are_refused() {
    let good = fixture("v7.pth");
    for cut in [8, 100, good.len() / 2, good.len() - 30, good.len() - 1] {
        let m = refused(&good[..cut], &format!("cut at {cut}"));
        assert!(m.contains("zip") || m.contains("truncated"), "cut at {cut}: {m}");
    }
    // A compressed (deflate) entry: the size on disk would not bound what it expands to.
    let entries = unzip(&good);
    let mut z = zip(&entries.iter().map(|(n, d)| (n.as_str(), d.clone())).collect::<Vec<_>>());
    let dir = z.windows(4).position(|w| w == [0x50, 0x4b, 0x01, 0x02]).unwrap();
    z[dir + 10] = 8;
    let m = refused(&z, "deflate");
    assert!(m.contains("compressed"), "{m}");
    // A bomb-like entry: the directory claims more bytes than it stores, or more than the file has.
    let mut z2 = zip(&entries.iter().map(|(n, d)| (n.as_str(), d.clone())).collect::<Vec<_>>());
    z2[dir + 24..dir + 28].copy_from_slice(&u32::MAX.to_le_bytes());
    let m = refused(&z2, "bomb");
    assert!(m.contains("claims"), "{m}");
    let mut z3 = zip(&entries.iter().map(|(n, d)| (n.as_str(), d.clone())).collect::<Vec<_>>());
    z3[dir + 20..dir + 28].copy_from_slice(&[&(u32::MAX - 1).to_le_bytes()[..], &(u32::MAX - 1).to_le_bytes()].concat());
    let m = refused(&z3, "entry past the end");
    assert!(m.contains("outside the file"), "{m}");
    // Not a checkpoint at all.
    refused(&[0u8; 64], "zeros");
    refused(&fixture("v7-FP32.bin"), "an rwkv.cpp file");
    // A legacy (pre-zip) torch file starts with a pickle.
    let m = refused(b"\x80\x02\x8a\x0alw\xe9\x9c\xfcwwwww", "legacy");
    assert!(m.contains("legacy"), "{m}");
}

#[test]
fn wrong_names_shapes_and_dtypes_are_refused() {
    let m = refused(&with_pickle(|p| replace(p, b"blocks.1.att.key.weight", b"blocks.1.att.kex.weight")), "renamed");
    assert!(m.contains("blocks.1.att.kex.weight"), "{m}");
    let m = refused(&with_pickle(|p| replace(p, b"emb.weight", b"emb.weighs")), "no emb");
    assert!(m.contains("emb.weight"), "{m}");
    // emb.weight (64, 32) read as (32, 64): the other tensors' shapes disagree with it.
    let m = refused(&with_pickle(|p| replace(p, b"K@K \x86q", b"K K@\x86q")), "shape");
    assert!(m.contains("shape"), "{m}");
}

#[test]
fn hostile_safetensors_are_refused() {
    let good = fixture("v7.safetensors");
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(good[8..8 + n].to_vec()).unwrap();
    let with_header = |h: &str| {
        let mut b = (h.len() as u64).to_le_bytes().to_vec();
        b.extend(h.as_bytes());
        b.extend(&good[8 + n..]);
        b
    };
    assert_eq!(convert_ok(&with_header(&header), DType::F16), convert_ok(&good, DType::F16));
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    refused(&huge, "header length");
    let m = refused(&with_header(&header.replacen("\"BF16\"", "\"F64\"", 1)), "F64");
    assert!(m.contains("F64"), "{m}");
    let m = refused(&with_header(&header.replacen("\"data_offsets\":[", "\"data_offsets\":[99999999", 1)), "offsets");
    assert!(m.contains("bytes of data") || m.contains("past the end"), "{m}");
    refused(&with_header(&header[..header.len() / 2]), "cut header");
    refused(&with_header(&"[".repeat(100)), "deep");
    refused(&good[..good.len() - 100], "truncated data");
}
