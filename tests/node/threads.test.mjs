// The threaded wasm build (pkg-threads/) through the Node CLI and the JS API: with 2 threads (one
// parked pool worker) the fixtures give the same logits, to the bit, as the single-threaded build
// (pkg/) on one thread, one token at a time and as a chunked sequence. (All 17 files agree too;
// a few keep the test short: each CLI run loads Node and the module.)
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FIXTURES_MISSING, fixtures } from '../support/fixtures.mjs';
import { engine, rejection, terminateAll } from '../support/engines.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const THREADS_MISSING = !existsSync(join(root, 'pkg-threads/echo_engine_bg.wasm')) && 'pkg-threads/ not built (./build-wasm.sh)';
const LONG = Array.from({ length: 71 }, (_, i) => (i * 37 + 11) % 256).join(',');

function logits(file, tokens, mode, threads) {
  const args = ['logits', '--model', join(fixtures, file), '--tokens', tokens, '--mode', mode, '--threads', String(threads)];
  const r = spawnSync(process.execPath, [join(root, 'bin/echo-engine.mjs'), ...args], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout).logits;
}

const FILES = ['4v0-660K-FP16', '4v0-660K-Q5_1', '6v0-3m-Q5_1', '7v0-834K-FP16', '7v0-834K-Q5_1'].map((m) => `tiny-rwkv-${m}.bin`);

test('2 threads in pkg-threads give the bits of 1 thread in pkg: v4, v6, v7, FP16 and Q5_1', { skip: FIXTURES_MISSING || THREADS_MISSING }, () => {
  for (const file of FILES) {
    for (const [tokens, mode] of [['34,105,110', 'serial'], [LONG, 'sequence']]) {
      const one = logits(file, tokens, mode, 1);
      assert.ok(one.some((l) => l !== 0), `${file}: no logits`);
      assert.deepEqual(logits(file, tokens, mode, 2), one, `${file} ${mode}`);
    }
  }
});

after(terminateAll);

test('EchoEngine({ threads: 2 }) computes on 2 threads, with the logits of 1', { skip: FIXTURES_MISSING || THREADS_MISSING }, async () => {
  const model = join(fixtures, 'tiny-rwkv-7v0-834K-Q5_1.bin');
  const ids = LONG.split(',').map(Number);
  const [one, two] = [await engine({ threads: 1 }), await engine({ threads: 2 })];
  for (const e of [one, two]) await e.loadModel(model);
  const info = await two.info();
  assert.equal(info.threads, 2);
  assert.equal(info.threadsWhy, null);
  assert.equal((await one.info()).threads, 1);
  const health = await two.health();
  assert.deepEqual([health.threads, health.threadsWhy], [2, null]);
  assert.deepEqual(await two.evalTokens(ids), await one.evalTokens(ids));
});

test('a pool thread that hangs ggml, then traps, is worker_crashed, not a silent hang', { skip: FIXTURES_MISSING || THREADS_MISSING, timeout: 60_000 }, async () => {
  const model = join(fixtures, 'tiny-rwkv-7v0-834K-Q5_1.bin');
  const e = await engine({ threads: 2, workerUrl: new URL('./workers/pool-thread-traps.js', import.meta.url) });
  // Loading computes (a health check), which hands the pool thread work it never does.
  const crashed = await rejection(e.loadModel(model));
  assert.equal(crashed.code, 'worker_crashed');
  assert.match(crashed.message, /pool thread trapped/);
  assert.equal((await rejection(e.info())).code, 'worker_crashed');
  // The threads of the engine that crashed are gone with it: a new engine computes on 2 threads.
  const next = await engine({ threads: 2 });
  await next.loadModel(model);
  assert.equal((await next.info()).threads, 2);
});

test('in the Node CLI, a pool thread that hangs ggml, then traps, ends the process with worker_crashed', { skip: FIXTURES_MISSING || THREADS_MISSING, timeout: 60_000 }, () => {
  const preload = new URL('./workers/trapping-threads.mjs', import.meta.url).href;
  const model = join(fixtures, 'tiny-rwkv-7v0-834K-Q5_1.bin');
  const r = spawnSync(process.execPath, ['--import', preload, join(root, 'bin/echo-engine.mjs'), 'bench', '--model', model, '--threads', '2'],
    { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.error, undefined, 'the CLI hung'); // ETIMEDOUT
  assert.notEqual(r.status, 0);
  const error = JSON.parse(r.stderr.trim().split('\n').at(-1));
  assert.equal(error.code, 'worker_crashed');
  assert.match(error.message, /pool thread trapped/);
  assert.equal(r.stdout, '');
});
