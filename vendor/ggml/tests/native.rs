//! Host tests: `cargo test -p echo-ggml-sys`.
#![cfg(not(target_arch = "wasm32"))]

mod common;

#[test]
fn layout() {
    common::layout();
}

#[test]
fn mul_mat_f32() {
    common::mul_mat_f32();
}

#[test]
fn mul_mat_f16_every_half() {
    common::mul_mat_f16_every_half();
}

#[test]
fn mul_mat_f16_tiles() {
    common::mul_mat_f16_tiles();
}

#[test]
fn mul_mat_f16_finite_flag() {
    common::mul_mat_f16_finite_flag();
}

#[test]
fn mul_mat_quant_tiles() {
    common::mul_mat_quant_tiles();
}

#[test]
fn quant_dot_matches_ggml() {
    common::quant_dot_matches_ggml();
}

#[test]
fn mul_mat_q8_0() {
    let h = common::mul_mat_q8_0();
    println!("Q8_0 activation bytes hash: {h:#018x}");
    assert_eq!(h, common::Q8_0_ACT_HASH);
}

#[test]
fn mul_mat_q5_1() {
    let h = common::mul_mat_q5_1();
    println!("Q8_1 activation bytes hash: {h:#018x}");
    assert_eq!(h, common::Q8_1_ACT_HASH);
}

#[test]
fn rwkv_wkv7() {
    common::rwkv_wkv7();
}

#[test]
fn custom_op() {
    common::custom_op();
}

/// Our host build uses ggml's AVX2 kernels (the reference the wasm kernels are held to).
#[cfg(target_arch = "x86_64")]
#[test]
fn cpu_has_avx2() {
    assert_eq!(unsafe { echo_ggml_sys::ggml_cpu_has_avx2() }, 1);
}
