#!/usr/bin/env bash
# Coverage-guided fuzzing (README "Fuzzing"): runs every target of fuzz/ for N seconds each
# (default 60) on nightly, growing fuzz/corpus/<target>/. A crash stops the run and leaves its
# input in fuzz/artifacts/<target>/; once fixed, copy it to fuzz/regressions/<target>/, where the
# `fuzz_corpus` test replays it on every `cargo test`.
#   scripts/fuzz.sh [seconds per target] [target …]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
# The version the figures in the README were taken with.
cargo_fuzz_version=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q " $cargo_fuzz_version\$"; then
  cargo install cargo-fuzz --locked --version "$cargo_fuzz_version"
fi
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
for t in "${targets[@]}"; do
  echo "== $t (${seconds}s)"
  # AddressSanitizer makes the grammar target's many small allocations 15-25x slower (17-31
  # against ~470 executions/s) and finds little there: llguidance and our grammar code are safe
  # Rust (toktrie's two unchecked bit writes aside). It runs without; its corpus is replayed under
  # AddressSanitizer with -runs=0 (README "Fuzzing").
  sanitizer=address
  [ "$t" = grammar ] && sanitizer=none
  # -runs caps the fast targets; the per-input timeout and RSS limit turn a hang or a memory
  # blow-up into a reported crash.
  cargo +nightly fuzz run --sanitizer "$sanitizer" "$t" -- -max_total_time="$seconds" -runs=1000000 -rss_limit_mb=2048 \
    -timeout=10 -print_final_stats=1
done
