// scripts/browser-cli.mjs: the CLI in each browser of browsers.mjs prints what the Node CLI prints —
// the same logits (one wasm build), the same seeded generation, and bench JSON with the same fields.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES_MISSING, fixtures } from '../support/fixtures.mjs';
import { root, synth } from '../support/models.mjs';
import { BROWSERS } from './browsers.mjs';
import { runInBrowser } from '../../scripts/browser-cli.mjs';

const MODEL = join(fixtures, 'tiny-rwkv-7v0-834K-FP16.bin');
// Sampling the fixture's 256 tokens takes about one step of Firefox's clock (20 µs), so its
// sampler time read 0 or 0.02 ms by chance: bench runs on a World-sized vocabulary instead.
const dir = mkdtempSync(join(tmpdir(), 'echo-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const BENCH_MODEL = synth(join(dir, 'world-vocab.bin'), ['--arch', 'v7', '--n-embed', '64', '--n-layer', '1', '--n-vocab', '65536', '--type', 'FP16']);

/** The CLI in `where`: 'node', or a browser's id ('chromium', 'firefox'). */
function run(where, args) {
  const [script, runner] = where === 'node' ? ['bin/echo-engine.mjs', []] : ['scripts/browser-cli.mjs', ['--browser', where]];
  const r = spawnSync(process.execPath, [join(root, script), ...runner, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

for (const browser of BROWSERS) {
  const { name, missing, lacks } = browser;
  const id = name.toLowerCase();
  const skip = missing || FIXTURES_MISSING;

  test(`${name}: logits and a seeded generation equal the Node CLI output`, { skip }, () => {
    for (const args of [
      ['logits', '--model', MODEL, '--tokens', '34,105,110'],
      ['generate', '--model', MODEL, '--tokenizer', 'byte', '--prompt', 'In the', '--max-tokens', '12', '--seed', '7', '--json'],
    ]) {
      const [browser, node] = [run(id, args), run('node', args)];
      assert.equal(browser.status, 0, browser.stderr);
      assert.equal(node.status, 0, node.stderr);
      // generate's stats hold timings; everything else must be identical.
      const strip = (out) => out.replace(/"stats":\{[^}]*\}/g, '"stats":{}');
      assert.equal(strip(browser.stdout), strip(node.stdout), args[0]);
      assert.ok(browser.stdout.length > 100, `${args[0]} printed ${browser.stdout}`);
    }
  });

  test(`${name}: bench prints the Node fields, with runtime "${id}"`, { skip }, () => {
    const args = ['bench', '--model', BENCH_MODEL, '--decode', '4', '--prompt', '8', '--sample'];
    const [browser, node] = [run(id, args), run('node', args)];
    assert.equal(browser.status, 0, browser.stderr);
    const [b, n] = [JSON.parse(browser.stdout), JSON.parse(node.stdout)];
    assert.deepEqual(Object.keys(b), Object.keys(n));
    assert.equal(b.runtime, id);
    assert.equal(n.runtime, 'node');
    assert.equal(b.simd, 'wasm-simd128');
    assert.ok(b.decode_ms_per_token_median > 0 && b.sample_ms_per_token_median > 0, browser.stdout);
  });

  test(`${name}: a file the command names outside --model and --vocab is a typed error`, { skip: missing }, () => {
    const r = run(id, ['info', '--model', join(root, 'no-such-model.bin')]);
    assert.equal(r.status, 1);
    assert.equal(JSON.parse(r.stderr).code, 'invalid_options');
    const q = run(id, ['quantize', '--in', join(root, 'package.json'), '--out', join(root, 'x.bin'), '--type', 'Q8_0']);
    assert.equal(q.status, 1);
    assert.match(JSON.parse(q.stderr).message, /only the files named by --model, --vocab, --file/);
  });

  if (!lacks.includes('SharedArrayBuffer')) test(`${name}: with --threads 2, a pool thread that hangs ggml, then traps, ends the command with worker_crashed`, { skip, timeout: 120_000 }, async () => {
    const args = ['bench', '--model', MODEL, '--threads', '2'];
    const r = await runInBrowser({ browser, isolated: true, args, workerUrl: '/tests/browser/pages/pool-thread-traps.js?worker=/scripts/browser-cli-worker.js' });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    const error = JSON.parse(r.stderr);
    assert.equal(error.code, 'worker_crashed');
    assert.match(error.message, /pool thread trapped/);
  });
}
