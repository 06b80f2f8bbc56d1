#!/usr/bin/env bash
# Builds the npm package in pkg/ (ESM for browsers and Node) after setting up the machine.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
# --mode no-install: use the wasm-bindgen on PATH (pinned by setup.sh), never download.
wasm-pack build --release --target web --mode no-install --out-dir pkg --out-name echo_engine
echo "built pkg/: $(du -h pkg/echo_engine_bg.wasm | cut -f1) wasm"
