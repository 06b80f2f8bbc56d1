#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test Echo Engine. Idempotent: each
# step checks first, so a second run does nothing but checks.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(clang-19 lld-19 llvm-19 wasi-libc libc++-19-dev-wasm32 libc++abi-19-dev-wasm32
  libclang-rt-19-dev-wasm32 chromium chromium-driver firefox-esr webkit2gtk-driver xvfb wabt curl
  ca-certificates)
WASM_BINDGEN_VERSION=0.2.130   # must equal the wasm-bindgen version in Cargo.lock
WASM_PACK_VERSION=0.15.1
GECKODRIVER_VERSION=0.37.1     # drives firefox-esr (Debian packages no geckodriver)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if command -v node >/dev/null 2>&1; then :; else missing+=(nodejs npm); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
# std's sources: the threaded wasm build (pkg-threads/) rebuilds std with atomics (build-std).
rustup component list --installed | grep -qx rust-src || rustup component add rust-src

if ! wasm-bindgen --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION"; then
  # Not --locked: its lockfile pins a webpki-roots version the registry no longer has.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi
if ! wasm-pack --version 2>/dev/null | grep -q " $WASM_PACK_VERSION"; then
  cargo install wasm-pack --version "$WASM_PACK_VERSION" --locked --force
fi
if ! geckodriver --version 2>/dev/null | grep -Eq "^geckodriver $GECKODRIVER_VERSION( |$)"; then
  cargo install geckodriver --version "$GECKODRIVER_VERSION" --locked --force
fi

# ggml's C sources come from the pinned crates.io package in Cargo.lock; vendor/ggml/build.rs
# unpacks them from cargo's download cache.
cargo fetch --locked >/dev/null 2>&1 || cargo fetch --locked

# The JS test tools (playwright-core drives Debian's chromium, ws speaks WebDriver BiDi to
# geckodriver for firefox-esr; typescript checks the .d.ts), at the exact versions in
# package-lock.json; skipped when node_modules already matches the lockfile.
if [ ! node_modules/.package-lock.json -nt package-lock.json ]; then
  npm ci --ignore-scripts --no-audit --no-fund
fi
