// A short soak (scripts/soak.mjs, 150 mixed requests with aborts, reloads and an oversized load
// on the demo model): every request settles as expected, nothing is left pending, and the memory
// in use (less the bounded caches and the stored memories) stays flat. The long run is
// `node scripts/soak.mjs --requests 1000`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { root } from '../support/models.mjs';

const skip = !existsSync(join(root, 'pkg/echo_engine_bg.wasm')) && 'pkg/ is not built (run ./build-wasm.sh)';

test('150 mixed requests: all settle as expected, none pending, memory flat', { skip }, () => {
  const r = spawnSync(process.execPath, [join(root, 'scripts/soak.mjs'), '--requests', '150', '--seed', '7'], { encoding: 'utf8' });
  const report = JSON.parse(r.stdout);
  assert.deepEqual(report.failures, []);
  assert.deepEqual(report.checks, { everyRequestAsExpected: true, noPendingRequests: true, noAbortListenersLeft: true, flatMemory: true, flatWasmMemory: true });
  assert.equal(r.status, 0, r.stderr);
  const total = Object.values(report.counts).flatMap((c) => Object.values(c)).reduce((a, b) => a + b, 0);
  assert.equal(total, 150, 'every request was counted once');
  assert.equal(report.counts.oversized.model_too_large, 1);
  console.log(`FIGURE soak: ${total} requests in ${report.seconds} s, growth ${report.growthMiB} MiB beyond caches and memories`);
});
