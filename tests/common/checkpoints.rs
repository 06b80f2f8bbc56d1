//! Comparing converted files with the ones rwkv.cpp's converter writes (tests/convert.rs and
//! tests/wasm_convert.rs).
#![allow(dead_code)]

use echo_engine::convert::{self, Summary};
use echo_engine::format::DType;

/// Converts in memory, reading where the converter asks.
pub fn run(input: &[u8], target: DType) -> echo_engine::Result<(Vec<u8>, Summary)> {
    let mut out = Vec::new();
    let summary = convert::convert(
        input.len() as u64,
        target,
        |offset, buf| {
            buf.copy_from_slice(&input[offset as usize..offset as usize + buf.len()]);
            Ok(())
        },
        |bytes| {
            out.extend_from_slice(bytes);
            Ok(())
        },
    )?;
    Ok((out, summary))
}

/// A tensor of a file: name, type code, shape, data.
pub type Tensor = (String, i32, Vec<i32>, Vec<u8>);

/// A file's header and tensors.
pub fn tensors(b: &[u8]) -> (Vec<u8>, Vec<Tensor>) {
    let i32_at = |at: usize| i32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let mut at = 24;
    let mut out = Vec::new();
    while at < b.len() {
        let (dims, key, ty) = (i32_at(at) as usize, i32_at(at + 4) as usize, i32_at(at + 8));
        at += 12;
        let shape: Vec<i32> = (0..dims).map(|i| i32_at(at + 4 * i)).collect();
        at += 4 * dims;
        let name = String::from_utf8(b[at..at + key].to_vec()).unwrap();
        at += key;
        let n = shape.iter().product::<i32>() as usize * if ty == 0 { 4 } else { 2 };
        out.push((name, ty, shape, b[at..at + n].to_vec()));
        at += n;
    }
    (b[..24].to_vec(), out)
}

/// The tensors rwkv.cpp's converter computes with `exp` (in PyTorch's f32 `exp`, which is not
/// always the nearest f32; ours is).
pub fn exp_transformed(name: &str, version: &str) -> bool {
    match version {
        "v4" => name.ends_with("att.time_decay"),
        "v5.1" => name.ends_with("att.time_decay") || name.ends_with("att.time_first"),
        "v5.2" => name.ends_with("att.time_decay"),
        _ => false,
    }
}

/// Byte for byte, except that an exp-transformed FP32 element may be 1 ulp away; returns how many were.
pub fn assert_same_file(ours: &[u8], theirs: &[u8], version: &str, what: &str) -> usize {
    let ((h1, t1), (h2, t2)) = (tensors(ours), tensors(theirs));
    assert_eq!(h1, h2, "{what}: file headers differ");
    assert_eq!(t1.len(), t2.len(), "{what}: tensor counts differ");
    let mut off_by_one = 0;
    for (a, b) in t1.iter().zip(&t2) {
        assert_eq!((&a.0, a.1, &a.2), (&b.0, b.1, &b.2), "{what}: tensor headers differ");
        if a.3 == b.3 {
            continue;
        }
        assert!(exp_transformed(&a.0, version) && a.1 == 0, "{what}: '{}' differs", a.0);
        for (x, y) in a.3.chunks_exact(4).zip(b.3.chunks_exact(4)) {
            let (x, y) = (i32::from_le_bytes(x.try_into().unwrap()), i32::from_le_bytes(y.try_into().unwrap()));
            assert!((x - y).abs() <= 1, "{what}: '{}' differs by {} ulp", a.0, (x - y).abs());
            off_by_one += (x != y) as usize;
        }
    }
    assert_eq!(ours.len(), theirs.len(), "{what}: sizes differ");
    off_by_one
}

