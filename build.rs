//! Root build script: caps the wasm module's memory, and tells the wasm tests where the fixtures are.

use std::path::Path;

/// The engine's hard memory cap (600 MiB) as the wasm module's maximum memory. The JS API can only
/// lower it at run time.
const MAX_MEMORY_BYTES: u64 = 600 * 1024 * 1024;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ECHO_MAX_MEMORY_MB");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        let bytes = std::env::var("ECHO_MAX_MEMORY_MB")
            .ok()
            .and_then(|mb| mb.parse::<u64>().ok())
            .map_or(MAX_MEMORY_BYTES, |mb| mb * 1024 * 1024);
        println!("cargo:rustc-link-arg-cdylib=--max-memory={bytes}");
        if std::env::var("CARGO_CFG_TARGET_FEATURE").is_ok_and(|f| f.split(',').any(|f| f == "atomics")) {
            // The threaded build (pkg-threads/): a shared memory the host imports, and the TLS
            // symbols wasm-bindgen needs to give each worker its thread-locals (rustc no longer
            // passes these for +atomics). Debian's wasi-libc and libc++ have no threaded build,
            // and wasm-ld refuses their objects (marked `-shared-mem`) without
            // --no-check-features: fine, as pool threads only run ggml's compute loops, which
            // use neither errno nor stdio.
            for arg in ["--shared-memory", "--import-memory", "--no-check-features"] {
                println!("cargo:rustc-link-arg={arg}");
            }
            for symbol in ["__wasm_init_tls", "__tls_size", "__tls_align", "__tls_base"] {
                println!("cargo:rustc-link-arg=--export={symbol}");
            }
        }
        // The engine reads the cap too: a run-time memory limit may only lower it.
        println!("cargo:rustc-env=ECHO_MAX_MEMORY_BYTES={bytes}");
    }

    // Wasm tests cannot read files at run time (no file system in a browser), so they embed the
    // fixtures. The cfgs also mark, natively too, the tests that need them: without the fixtures
    // those tests are ignored, with the reason (tests/common/mod.rs).
    for (dir, cfg, env) in [("rwkv-tiny", "echo_fixtures", "ECHO_FIXTURES"), ("tokenizers", "echo_tokenizers", "ECHO_TOKENIZERS")] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures").join(dir);
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_dir() {
            println!("cargo:rustc-cfg={cfg}");
            println!("cargo:rustc-env={env}={}", path.canonicalize().unwrap().display());
        }
    }
}
