#!/usr/bin/env bash
# Builds the npm package after setting up the machine: the wasm build in pkg/ (ESM for browsers
# and Node), and the threaded one in pkg-threads/ (shared memory and atomics; see js/thread.js).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
# --mode no-install: use the wasm-bindgen on PATH (pinned by setup.sh), never download.
wasm-pack build --release --target web --mode no-install --out-dir pkg --out-name echo_engine
echo "built pkg/: $(du -h pkg/echo_engine_bg.wasm | cut -f1) wasm"
# std is rebuilt with atomics (build-std, from setup.sh's rust-src; RUSTC_BOOTSTRAP lets stable
# cargo take the unstable flag), so every crate compiles differently: its own target folder. The
# variable replaces .cargo/config.toml's wasm rustflags, hence +simd128 again.
RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD=panic_abort,std \
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/threads" \
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+simd128,+atomics,+bulk-memory" \
  wasm-pack build --release --target web --mode no-install --out-dir pkg-threads --out-name echo_engine
echo "built pkg-threads/: $(du -h pkg-threads/echo_engine_bg.wasm | cut -f1) wasm"
