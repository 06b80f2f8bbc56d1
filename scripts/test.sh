#!/usr/bin/env bash
# Sets up the machine, then runs every test: native (cargo test), wasm in Node and in headless
# Chromium (wasm-bindgen-test), the Node CLI against the native one, the JS API in Node and, in
# headless Chromium through playwright-core, end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== native tests"
cargo test --workspace --locked

echo "== wasm tests in Node.js, then in headless Chromium"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export CHROMEDRIVER=/usr/bin/chromedriver
export WASM_BINDGEN_TEST_TIMEOUT=600
wasm_tests=(--locked --target wasm32-unknown-unknown --workspace --tests)
cargo test "${wasm_tests[@]}"
WASM_BINDGEN_USE_BROWSER=1 cargo test "${wasm_tests[@]}"

echo "== package: types, Node CLI and API tests, end-to-end tests in headless Chromium"
./build-wasm.sh
cargo build --release --locked --bin echo-engine
node_modules/.bin/tsc --noEmit -p tests/types
node --test tests/node/ tests/browser/
