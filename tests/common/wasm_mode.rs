//! Where wasm-bindgen-test-runner runs a wasm test binary: in the browser under `wasm-pack test
//! --chrome` (or `--firefox`), in Node otherwise. wasm-pack tells the runner which tests it wants
//! through `WASM_BINDGEN_TEST_ONLY_WEB`/`_NODE` and skips a binary configured for the other side;
//! `wasm_bindgen_test_configure!` can only name one side. So this writes the custom section that
//! macro writes, with the side chosen when the binary is built (cargo rebuilds a binary when a
//! variable read by `option_env!` changes). Included by every wasm test file with
//! `#[path = "…/common/wasm_mode.rs"] mod wasm_mode;`.

/// 0x01: browser (main thread); 0x05: Node (ES module).
#[cfg(target_arch = "wasm32")]
#[used]
#[link_section = "__wasm_bindgen_test_unstable"]
static WASM_TEST_MODE: [u8; 1] = [if option_env!("WASM_BINDGEN_TEST_ONLY_WEB").is_some() { 0x01 } else { 0x05 }];
