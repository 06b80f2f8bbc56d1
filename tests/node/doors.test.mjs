// The doors a newcomer opens: the package from `node -e` and `--input-type=module` (the worker must
// not inherit flags it cannot take), `echo-engine --help`, and the packed tarball installed into an
// empty project and imported by name. (The same tarball in a page, through an import map, is in
// tests/browser/package.test.mjs.)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { makeModels, root } from '../support/models.mjs';
import { installPacked } from '../support/package.mjs';

const haveWasm = existsSync(join(root, 'pkg/echo_engine_bg.wasm'));
const skip = !haveWasm && 'pkg/ is not built (run ./build-wasm.sh)';

let models;
let packed;
before(() => {
  if (skip) return;
  models = makeModels();
  packed = installPacked();
});
after(() => {
  models?.remove();
  packed?.remove();
});

/** Loads the tiny model by name-import and generates 8 tokens; prints one JSON line. */
const SCRIPT = (model) => `
  const { EchoEngine } = await import('echo-engine');
  const engine = await EchoEngine.create();
  await engine.loadModel(${JSON.stringify(model)});
  const { tokens, stopReason } = await engine.complete('Hello', { maxTokens: 8, seed: 1 });
  engine.terminate();
  console.log(JSON.stringify({ tokens: tokens.length, stopReason }));`;

function node(args, cwd) {
  const r = spawnSync(process.execPath, args, { cwd, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `node ${args.slice(0, -1).join(' ')}: exit ${r.status}\n${r.stderr}`);
  return r.stdout;
}

function assertGenerated(stdout) {
  assert.deepEqual(JSON.parse(stdout.trim().split('\n').at(-1)), { tokens: 8, stopReason: 'length' });
}

test('an engine starts from node --input-type=module -e, importing the package by name', { skip }, () => {
  assertGenerated(node(['--input-type=module', '-e', SCRIPT(models.tiny)], root));
});

test('an engine starts from plain node -e and under other parent flags', { skip }, () => {
  assertGenerated(node(['-e', `(async () => { ${SCRIPT(models.tiny)} })()`], root));
  // A loader flag and a V8 flag in the parent's execArgv.
  assertGenerated(node(['--import', 'data:text/javascript,', '--stack-size=2000', '--input-type=module', '-e', SCRIPT(models.tiny)], root));
});

test('echo-engine --help prints the usage and succeeds; no arguments is an error with the usage', { skip }, () => {
  for (const flag of ['--help', '-h', 'help']) {
    const r = spawnSync(process.execPath, [join(root, 'bin/echo-engine.mjs'), flag], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^usage: echo-engine <info\|logits/);
  }
  const r = spawnSync(process.execPath, [join(root, 'bin/echo-engine.mjs')], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(JSON.parse(r.stderr).message, /^usage: echo-engine/);
});

test('the packed tarball installs into an empty project; import by name and npx echo-engine work there', { skip }, () => {
  for (const f of ['pkg/echo_engine_bg.wasm', 'pkg/echo_engine.js', 'js/echo-engine.js', 'js/worker.js', 'js/sources.js', 'js/echo-engine.d.ts', 'bin/echo-engine.mjs']) {
    assert.ok(packed.files.includes(f), `the tarball lacks ${f}`);
  }
  assert.ok(!packed.files.some((f) => f.startsWith('src/') || f.startsWith('tests/')), 'the tarball carries sources or tests');
  assertGenerated(node(['--input-type=module', '-e', SCRIPT(models.tiny)], packed.app));
  // --no-install: the local bin or nothing (never a download).
  const r = spawnSync('npx', ['--no-install', 'echo-engine', 'info', '--model', models.tiny], { cwd: packed.app, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).n_vocab, 256);
});
