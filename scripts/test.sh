#!/usr/bin/env bash
# Sets up the machine, then runs every test: native (cargo test), wasm in Node and in headless
# Chromium and Firefox (wasm-pack test, the commands a newcomer types), the Node CLI against the
# native one, the JS API in Node and, in headless Chromium (playwright-core), Firefox
# (geckodriver) and WebKit (WebKitWebDriver on Xvfb; tests/browser/browsers.mjs), end to end. Ends with one
# line of totals over every harness and the list of skipped tests; with CI=true a skip fails the
# run (CI has the fixtures, the browser and the package: nothing may silently not run there).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Runs a step with its output also kept for the summary.
step() {
  echo "== $1"
  shift
  "$@" 2>&1 | tee -a "$log"
}

step "native tests" cargo test --workspace --locked

# wasm-pack picks Node or the browser for the runner; tests/common/wasm_mode.rs makes the test
# binaries follow it. Each crate of the workspace is its own wasm-pack project.
export WASM_BINDGEN_TEST_TIMEOUT=600
for crate in . vendor/ggml; do
  step "wasm tests of $crate in Node.js" wasm-pack test --node --mode no-install "$crate" --locked
done
for crate in . vendor/ggml; do
  step "wasm tests of $crate in headless Chromium" wasm-pack test --headless --chrome --mode no-install "$crate" --locked
done
# webdriver.json gives geckodriver Debian's firefox-esr; scripts/setup.sh installs geckodriver.
for crate in . vendor/ggml; do
  step "wasm tests of $crate in headless Firefox" wasm-pack test --headless --firefox --mode no-install "$crate" --locked
done

echo "== package: types, Node CLI and API tests, end-to-end tests in headless Chromium, Firefox and WebKit"
./build-wasm.sh
cargo build --release --locked --bin echo-engine
node_modules/.bin/tsc --noEmit -p tests/types
step "Node and browser tests" node --test --test-reporter=tap tests/node/ tests/browser/

# Totals: cargo and wasm-bindgen-test print "test result: … N passed; N failed; N ignored",
# node's runner "# pass N", "# fail N", "# skipped N".
read -r passed failed skipped < <(awk '
  /^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?/) p += $(i-1); if ($(i) ~ /^failed;?/) f += $(i-1); if ($(i) ~ /^ignored;?/) s += $(i-1) } }
  /^# pass / { p += $3 } /^# fail / { f += $3 } /^# skipped / { s += $3 }
  END { print p + 0, f + 0, s + 0 }' "$log")
# Each skipped test with its reason, whatever the harness: "… ignored, reason" (cargo,
# wasm-bindgen-test), "# SKIP reason" (node), "SKIPPED: …" (a fallback announced by a test helper).
skips=$(grep -E ' \.\.\. ignored|# SKIP|SKIPPED:' "$log" || true)
if [ -n "$skips" ]; then
  echo "== skipped"
  echo "$skips"
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
if [ -n "$skips" ] && [ "${CI:-}" = true ]; then
  echo "CI=true: every test must run here (../shared/fixtures, pkg/, chromium, firefox-esr, geckodriver, webkit2gtk-driver, xvfb); the skips above fail the run" >&2
  exit 1
fi
