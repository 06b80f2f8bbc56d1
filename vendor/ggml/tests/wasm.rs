//! wasm tests (`wasm-pack test --node vendor/ggml`, `wasm-pack test --headless --chrome vendor/ggml`), or by hand:
//! `CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
//!  cargo test -p echo-ggml-sys --target wasm32-unknown-unknown`
#![cfg(target_arch = "wasm32")]

#[path = "../../../tests/common/wasm_mode.rs"]
mod wasm_mode;

mod common;

use wasm_bindgen::JsCast;
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test]
fn simd128_build() {
    echo_ggml_sys::init();
    assert_eq!(unsafe { echo_ggml_sys::ggml_cpu_has_wasm_simd() }, 1);
}

/// Nothing may import from WASI or `env` (no browser provides them): only wasm-bindgen glue.
#[wasm_bindgen_test]
fn no_wasi_or_env_imports() {
    let module: js_sys::WebAssembly::Module = wasm_bindgen::module().unchecked_into();
    let imports = js_sys::WebAssembly::Module::imports(&module);
    for imp in imports.iter() {
        let m = js_sys::Reflect::get(&imp, &"module".into()).unwrap().as_string().unwrap();
        let n = js_sys::Reflect::get(&imp, &"name".into()).unwrap().as_string().unwrap();
        assert!(m != "wasi_snapshot_preview1" && m != "env", "forbidden import {m}.{n}");
    }
}

#[wasm_bindgen_test]
fn layout() {
    common::layout();
}

#[wasm_bindgen_test]
fn mul_mat_f32() {
    common::mul_mat_f32();
}

#[wasm_bindgen_test]
fn mul_mat_f16_every_half() {
    common::mul_mat_f16_every_half();
}

#[wasm_bindgen_test]
fn mul_mat_f16_tiles() {
    common::mul_mat_f16_tiles();
}

#[wasm_bindgen_test]
fn mul_mat_f16_finite_flag() {
    common::mul_mat_f16_finite_flag();
}

#[wasm_bindgen_test]
fn mul_mat_quant_tiles() {
    common::mul_mat_quant_tiles();
}

#[wasm_bindgen_test]
fn quant_dot_matches_ggml() {
    common::quant_dot_matches_ggml();
}

/// Same activation bytes as native x86 (the truncation fix), checked by hash.
#[wasm_bindgen_test]
fn mul_mat_q8_0() {
    assert_eq!(common::mul_mat_q8_0(), common::Q8_0_ACT_HASH);
}

#[wasm_bindgen_test]
fn mul_mat_q5_1() {
    assert_eq!(common::mul_mat_q5_1(), common::Q8_1_ACT_HASH);
}

#[wasm_bindgen_test]
fn rwkv_wkv7() {
    common::rwkv_wkv7();
}

#[wasm_bindgen_test]
fn custom_op() {
    common::custom_op();
}

/// C malloc goes through Rust's allocator, so it is counted and obeys the limit.
#[wasm_bindgen_test]
fn memory_limit_and_c_malloc() {
    common::memory_limit();
    // Called through opaque pointers: LLVM knows `malloc` & co. by name and would fold
    // "malloc(n) is not null" to true, dropping the very calls under test.
    let malloc = std::hint::black_box(echo_ggml_sys::wasm::malloc as unsafe extern "C" fn(usize) -> *mut core::ffi::c_void);
    let realloc = std::hint::black_box(
        echo_ggml_sys::wasm::realloc as unsafe extern "C" fn(*mut core::ffi::c_void, usize) -> *mut core::ffi::c_void,
    );
    unsafe {
        let before = echo_ggml_sys::mem::used_bytes();
        let p = malloc(1 << 20);
        assert!(!p.is_null());
        assert!(echo_ggml_sys::mem::used_bytes() >= before + (1 << 20));
        echo_ggml_sys::mem::set_limit(Some(echo_ggml_sys::mem::used_bytes() + (1 << 20)));
        assert!(malloc(4 << 20).is_null(), "C malloc over the limit returns NULL");
        let q = realloc(p, 4 << 20);
        assert!(q.is_null(), "realloc over the limit returns NULL and keeps the block");
        echo_ggml_sys::mem::set_limit(None);
        let q = realloc(p, 4 << 20);
        assert!(!q.is_null());
        echo_ggml_sys::wasm::free(q);
        assert!(echo_ggml_sys::mem::used_bytes() <= before + 64);
    }
    assert!(echo_ggml_sys::mem::wasm_memory_bytes() > 0);
}

/// A tensor freed among live small blocks is there again after many small allocations (from
/// dlmalloc's heap, they would be cut out of it and the next tensor would grow memory); tensor
/// blocks are counted and capped like any other.
#[wasm_bindgen_test]
fn tensor_space_is_kept_for_tensors() {
    use echo_ggml_sys::mem::{alloc_tensor, dealloc_tensor, set_limit, used_bytes, wasm_memory_bytes};
    use std::alloc::Layout;
    let layout = Layout::from_size_align(48 << 20, 64).unwrap();
    // More small blocks than all the free memory there is besides the tensor holds.
    let n = (wasm_memory_bytes() - used_bytes()) / 96 + 50_000;
    unsafe {
        let before = used_bytes();
        let t = alloc_tensor(layout);
        assert!(!t.is_null() && t as usize % 64 == 0);
        assert_eq!(used_bytes(), before + (48 << 20));
        t.write_bytes(1, 48 << 20);
        let pins: Vec<Box<[u8; 64]>> = (0..64).map(|_| Box::new([0; 64])).collect();
        // The list of small blocks is itself a big block (in the tensor space): asked for first.
        let mut small: Vec<Box<[u8; 96]>> = Vec::with_capacity(n);
        let pinned = used_bytes();
        dealloc_tensor(t, layout);
        assert_eq!(used_bytes(), pinned - (48 << 20));
        small.extend((0..n).map(|i| Box::new([i as u8; 96])));
        let grown = wasm_memory_bytes();
        let again = alloc_tensor(layout);
        assert_eq!(wasm_memory_bytes(), grown, "the freed tensor space was reused");
        again.write_bytes(2, 48 << 20);
        assert!(small.iter().enumerate().all(|(i, s)| s.iter().all(|&b| b == i as u8)));
        // Two halves of the freed block, then the whole again (the halves merged when freed).
        dealloc_tensor(again, layout);
        let half = Layout::from_size_align(24 << 20, 64).unwrap();
        let (a, b) = (alloc_tensor(half), alloc_tensor(half));
        assert_eq!(wasm_memory_bytes(), grown);
        dealloc_tensor(a, half);
        dealloc_tensor(b, half);
        let whole = alloc_tensor(layout);
        assert_eq!(wasm_memory_bytes(), grown);
        dealloc_tensor(whole, layout);
        set_limit(Some(used_bytes() + (1 << 20)));
        assert!(alloc_tensor(layout).is_null(), "over the limit");
        set_limit(None);
        drop(pins);
    }
}

/// A reservation grows memory once by what the free ranges lack, and not again for what is
/// free already; the tensors then take the space.
#[wasm_bindgen_test]
fn reserving_tensor_space_grows_what_is_missing() {
    use echo_ggml_sys::mem::{alloc_tensor, dealloc_tensor, free_tensor_space, reserve_tensor_space, wasm_memory_bytes};
    use std::alloc::Layout;
    let layout = Layout::from_size_align(free_tensor_space() + (40 << 20) + 64, 64).unwrap();
    let (before, free) = (wasm_memory_bytes(), free_tensor_space());
    reserve_tensor_space(layout.size());
    let grown = wasm_memory_bytes() - before;
    assert_eq!(grown, (layout.size() - free).div_ceil(65536) * 65536, "one growth, of what was missing");
    assert!(free_tensor_space() >= layout.size());
    reserve_tensor_space(layout.size());
    reserve_tensor_space(1 << 20);
    assert_eq!(wasm_memory_bytes() - before, grown, "the space is there already");
    // The growth is one range of at least 40 MiB: a tensor that size fits without another.
    let tensor = Layout::from_size_align(40 << 20, 64).unwrap();
    unsafe {
        let t = alloc_tensor(tensor);
        assert!(!t.is_null());
        assert_eq!(wasm_memory_bytes() - before, grown, "the tensor grew memory again");
        dealloc_tensor(t, tensor);
    }
}

/// Blocks of `BIG_BLOCK` bytes or more from Rust's allocator live in the tensor space: a
/// reallocation moves the contents into, within and out of it intact, counted.
#[wasm_bindgen_test]
fn big_blocks_move_in_and_out_of_the_tensor_space() {
    use echo_ggml_sys::mem::{used_bytes, BIG_BLOCK};
    let pattern = |n: usize| (0..n).map(|i| (i % 251) as u8);
    let before = used_bytes();
    let mut v: Vec<u8> = pattern(BIG_BLOCK / 2).collect();
    for capacity in [2 * BIG_BLOCK, 5 * BIG_BLOCK, BIG_BLOCK / 4] {
        v.truncate(capacity.min(BIG_BLOCK / 2));
        v.shrink_to_fit();
        v.reserve_exact(capacity - v.len());
        assert!(v.iter().copied().eq(pattern(v.len())), "capacity {capacity}");
        assert_eq!(used_bytes(), before + v.capacity());
    }
}

/// The same sizes asked for again in the same order, after all of them were freed, land where they
/// were (first fit by address), whatever else was allocated between them the first time: a
/// reloaded model's tensors and its refilled prefix cache need no new memory. (Best fit fails this.)
#[wasm_bindgen_test]
fn tensor_space_repeats_a_sequence_in_place() {
    use echo_ggml_sys::mem::{alloc_tensor, dealloc_tensor, wasm_memory_bytes};
    use std::alloc::Layout;
    let mut seed = 7u32;
    let mut next = |n: u32| {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (seed >> 8) % n
    };
    let layouts: Vec<Layout> = (0..40).map(|_| Layout::from_size_align(64 + 4096 * next(600) as usize, 64).unwrap()).collect();
    // The first time, tensor blocks kept until the end come between them.
    let pin = Layout::from_size_align(4096, 64).unwrap();
    let mut pins = Vec::new();
    let mut first = Vec::new();
    for &layout in &layouts {
        first.push(unsafe { alloc_tensor(layout) });
        if next(3) == 0 {
            pins.push(unsafe { alloc_tensor(pin) });
        }
    }
    let grown = wasm_memory_bytes();
    for round in 0..3 {
        for (&p, &layout) in first.iter().zip(&layouts) {
            unsafe { dealloc_tensor(p, layout) };
        }
        let again: Vec<*mut u8> = layouts.iter().map(|&l| unsafe { alloc_tensor(l) }).collect();
        assert_eq!(again, first, "round {round}");
        assert_eq!(wasm_memory_bytes(), grown);
    }
    for (&p, &layout) in first.iter().zip(&layouts) {
        unsafe { dealloc_tensor(p, layout) };
    }
    for p in pins {
        unsafe { dealloc_tensor(p, pin) };
    }
}
