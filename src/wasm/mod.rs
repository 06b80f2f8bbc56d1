//! The JavaScript boundary (wasm32 only). Nothing here panics across it: every export returns a
//! `Result` whose error is a JS object `{code, message, …}` built from our typed `Error`.

mod cli;
mod convert;
mod engine;
mod js;
mod metrics;

use wasm_bindgen::prelude::*;

use crate::error::Error;

#[wasm_bindgen(start)]
fn start() {
    echo_ggml_sys::wasm::init();
    console_error_panic_hook::set_once();
}

/// Our typed error as a JS `Error` with `code` (and byte counts for `model_too_large`), so `?`
/// turns a crate `Result` into what the exports return.
impl From<Error> for JsValue {
    fn from(e: Error) -> JsValue {
        let err = js_sys::Error::new(&e.message);
        let set = |k: &str, v: JsValue| {
            let _ = js_sys::Reflect::set(&err, &JsValue::from_str(k), &v);
        };
        set("name", JsValue::from_str("EchoError"));
        set("code", JsValue::from_str(e.code.as_str()));
        if let (Some(n), Some(l)) = (e.needed_bytes, e.limit_bytes) {
            set("neededBytes", JsValue::from_f64(n as f64));
            set("limitBytes", JsValue::from_f64(l as f64));
        }
        err.into()
    }
}

#[wasm_bindgen]
extern "C" {
    // `catch`: a scope without `performance` throws, and we fall back to Date.now().
    #[wasm_bindgen(js_namespace = performance, js_name = now, catch)]
    fn performance_now() -> Result<f64, JsValue>;
}

/// Milliseconds from an arbitrary origin, for timings.
pub(crate) fn now_ms() -> f64 {
    performance_now().unwrap_or_else(|_| js_sys::Date::now())
}

/// Whether ggml was built with wasm SIMD128 (`ggml_cpu_has_wasm_simd()`).
#[wasm_bindgen(js_name = hasWasmSimd)]
pub fn has_wasm_simd() -> bool {
    crate::backend::simd() == "wasm-simd128"
}

/// A pool worker's start (threaded build, `js/thread.js`): takes a slot for one ggml thread;
/// the worker then tells the host it is ready and calls [`thread_park`] with the slot.
#[cfg(target_feature = "atomics")]
#[wasm_bindgen(js_name = threadRegister)]
pub fn thread_register() -> usize {
    echo_ggml_sys::threads::register()
}

/// Runs the ggml threads handed to `slot`, never returning (the worker's life).
#[cfg(target_feature = "atomics")]
#[wasm_bindgen(js_name = threadPark)]
pub fn thread_park(slot: usize) {
    echo_ggml_sys::threads::park(slot)
}

/// The module's shared memory, for the host to post to its pool workers with the module.
#[cfg(target_feature = "atomics")]
#[wasm_bindgen(js_name = threadMemory)]
pub fn thread_memory() -> JsValue {
    wasm_bindgen::memory()
}
