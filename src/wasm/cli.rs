//! `runCli(args, io)`: the shared CLI (`crate::cli`) driven from JavaScript, with the file system
//! supplied by `bin/echo-engine.mjs` on Node.js, or by `scripts/browser-cli.mjs` in a browser.

use js_sys::Uint8Array;
use wasm_bindgen::prelude::*;

use crate::cli::{io_error, Io};
use crate::error::Result;

#[wasm_bindgen]
extern "C" {
    /// The JS object `bin/echo-engine.mjs` (or `scripts/browser-cli.mjs`) passes in.
    pub type CliIo;
    #[wasm_bindgen(method, catch)]
    fn open(this: &CliIo, path: &str) -> std::result::Result<f64, JsValue>;
    /// Fills the start of `into` (a view of wasm memory) with the file's next bytes; returns how many.
    #[wasm_bindgen(method, catch)]
    fn read(this: &CliIo, path: &str, into: &Uint8Array) -> std::result::Result<f64, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn seek(this: &CliIo, path: &str, offset: f64) -> std::result::Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn create(this: &CliIo, path: &str) -> std::result::Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn append(this: &CliIo, path: &str, bytes: &[u8]) -> std::result::Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn rename(this: &CliIo, from: &str, to: &str) -> std::result::Result<(), JsValue>;
    #[wasm_bindgen(method)]
    fn exists(this: &CliIo, path: &str) -> bool;
    #[wasm_bindgen(method)]
    fn stdout(this: &CliIo, line: &str);
    #[wasm_bindgen(method, js_name = stdoutRaw)]
    fn stdout_raw(this: &CliIo, text: &str);
    #[wasm_bindgen(method)]
    fn stderr(this: &CliIo, line: &str);
    #[wasm_bindgen(method, js_name = runtime)]
    fn js_runtime(this: &CliIo) -> String;
}

fn js_detail(e: JsValue) -> String {
    js_sys::Error::from(e).message().into()
}

impl Io for CliIo {
    fn open(&mut self, path: &str) -> Result<u64> {
        CliIo::open(self, path).map(|n| n as u64).map_err(|e| io_error("open", path, js_detail(e)))
    }
    fn read(&mut self, path: &str, buf: &mut [u8]) -> Result<usize> {
        // Read in place: no JS buffer per chunk (its allocation and collection cost more than
        // the copy). SAFETY: JS writes `buf`, which nothing else touches during the call.
        let view = unsafe { Uint8Array::view_mut_raw(buf.as_mut_ptr(), buf.len()) };
        let n = CliIo::read(self, path, &view).map_err(|e| io_error("read", path, js_detail(e)))?;
        Ok((n as usize).min(buf.len()))
    }
    fn seek(&mut self, path: &str, offset: u64) -> Result<()> {
        CliIo::seek(self, path, offset as f64).map_err(|e| io_error("seek", path, js_detail(e)))
    }
    fn create(&mut self, path: &str) -> Result<()> {
        CliIo::create(self, path).map_err(|e| io_error("create", path, js_detail(e)))
    }
    fn append(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        CliIo::append(self, path, bytes).map_err(|e| io_error("write", path, js_detail(e)))
    }
    fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        CliIo::rename(self, from, to).map_err(|e| io_error("rename", from, js_detail(e)))
    }
    fn exists(&mut self, path: &str) -> bool {
        CliIo::exists(self, path)
    }
    fn stdout(&mut self, line: &str) {
        CliIo::stdout(self, line)
    }
    fn stdout_raw(&mut self, text: &str) {
        CliIo::stdout_raw(self, text)
    }
    fn stderr(&mut self, line: &str) {
        CliIo::stderr(self, line)
    }
    fn clock(&self) -> Box<dyn Fn() -> f64> {
        Box::new(super::now_ms)
    }
    fn runtime(&self) -> String {
        self.js_runtime()
    }
    fn peak_memory_bytes(&self) -> u64 {
        echo_ggml_sys::mem::wasm_memory_bytes() as u64
    }
}

/// Runs one CLI command; returns the exit code (errors are printed as JSON on stderr).
#[wasm_bindgen(js_name = runCli)]
pub fn run_cli(args: Vec<String>, mut io: CliIo) -> i32 {
    crate::cli::run(&args, &mut io)
}
