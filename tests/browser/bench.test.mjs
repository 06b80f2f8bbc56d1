// scripts/bench-browser.mjs in each browser of browsers.mjs: the Node CLI's bench JSON, with the
// browser as `runtime`, whether the page was isolated, and the load speed by URL and from a Blob; `--threads` on
// a plain page (which cannot run threads) is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { FIXTURES_MISSING, fixtures } from '../support/fixtures.mjs';
import { root } from '../support/models.mjs';
import { BROWSERS } from './browsers.mjs';

const MODEL = join(fixtures, 'tiny-rwkv-7v0-834K-FP16.bin');
const ARGS = ['--model', MODEL, '--decode', '4', '--prompt', '8'];

function run(script, args) {
  return spawnSync(process.execPath, [join(root, script), ...args], { encoding: 'utf8' });
}

let nodeKeys;
/** The fields `echo-engine bench` prints in Node, for the same arguments. */
function nodeBenchKeys() {
  if (!nodeKeys) {
    const r = run('bin/echo-engine.mjs', ['bench', ...ARGS]);
    assert.equal(r.status, 0, r.stderr);
    nodeKeys = Object.keys(JSON.parse(r.stdout));
  }
  return nodeKeys;
}

for (const { name, missing } of BROWSERS) {
  const id = name.toLowerCase();
  const skip = missing || FIXTURES_MISSING;

  test(`${name}: bench-browser prints the Node bench fields with runtime "${id}", isolated, and the load by URL and from a Blob`, { skip }, () => {
    const r = run('scripts/bench-browser.mjs', ['--browser', id, ...ARGS]);
    assert.equal(r.status, 0, r.stderr);
    const b = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(b), [...nodeBenchKeys(), 'isolated', 'load_url_mb_per_s', 'load_url_ready_ms', 'load_blob_mb_per_s', 'load_blob_ready_ms']);
    assert.equal(b.runtime, id);
    assert.equal(b.isolated, true);
    assert.equal(b.simd, 'wasm-simd128');
    assert.equal(b.decode_tokens, 4);
    for (const k of ['file_mb', 'load_mb_per_s', 'prompt_tokens_per_s', 'decode_ms_per_token_median', 'peak_memory_bytes', 'load_url_mb_per_s', 'load_url_ready_ms',
      'load_blob_mb_per_s', 'load_blob_ready_ms']) {
      assert.ok(b[k] > 0, `${k}: ${r.stdout}`);
    }
  });

  test(`${name}: --no-isolation benches a plain page; --threads 2 there is refused with the reason`, { skip }, () => {
    const plain = run('scripts/bench-browser.mjs', ['--browser', id, '--no-isolation', ...ARGS]);
    assert.equal(plain.status, 0, plain.stderr);
    assert.equal(JSON.parse(plain.stdout).isolated, false);
    const r = run('scripts/bench-browser.mjs', ['--browser', id, '--no-isolation', '--threads', '2', ...ARGS]);
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    const e = JSON.parse(r.stderr);
    assert.equal(e.code, 'invalid_options');
    assert.match(e.message, /--threads 2: wasm threads need SharedArrayBuffer.*not cross-origin isolated/);
  });
}

test('an unknown --browser is refused, naming the browsers there are', () => {
  const r = run('scripts/bench-browser.mjs', ['--browser', 'netscape', ...ARGS]);
  assert.equal(r.status, 1);
  assert.equal(JSON.parse(r.stderr).code, 'invalid_options');
  assert.match(JSON.parse(r.stderr).message, /expected one of chromium, firefox, webkit, got netscape/);
});
