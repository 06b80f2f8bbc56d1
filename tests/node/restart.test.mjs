// Worker recovery (`autoRestart`): a worker that dies mid-generation or while writing the memory
// file is replaced, the last model reloaded from its path and the memories read back; the next
// call succeeds and answers as a fresh engine would; a crash while saving loses at most that memory.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { engine, rejection, terminateAll } from '../support/engines.mjs';
import { root } from '../support/models.mjs';

const model = join(root, 'www/models/kjv-3m-Q8_0.bin');
const skip = (!existsSync(join(root, 'pkg/echo_engine_bg.wasm')) && 'pkg/ is not built (run ./build-wasm.sh)') ||
  (!existsSync(model) && `the demo model is not at ${model}`);
const dir = mkdtempSync(join(tmpdir(), 'echo-restart-'));

after(() => {
  terminateAll();
  rmSync(dir, { recursive: true, force: true });
});

const greedy = { maxTokens: 12, temperature: 0 };

test('autoRestart: a worker killed mid-generation or mid-write is replaced, with the model and the memories', { skip }, async () => {
  const fresh = await engine();
  await fresh.loadModel(model);
  const want = await fresh.complete('In the beginning', greedy);

  const restarts = [];
  const memoryPath = join(dir, 'memories.bin');
  const e = await engine({
    autoRestart: true,
    memoryPath,
    workerUrl: new URL('./workers/crash-on-cue.js', import.meta.url),
    onRestart: (event) => restarts.push(event),
  });
  await e.loadModel(model);
  await e.remember('My sister lives in Lyon.');
  await e.remember('The garden has three apple trees.');

  const crashed = await rejection(e.complete('crash mid-generation', { maxTokens: 2000, stop: [] }));
  assert.equal(crashed.code, 'worker_crashed');
  assert.equal(crashed.restarting, true);
  // The next call waits for the restart, then runs on the reloaded model.
  const again = await e.complete('In the beginning', greedy);
  assert.deepEqual([again.text, again.tokens], [want.text, want.tokens]);
  assert.equal(restarts.length, 1);
  assert.equal(restarts[0].reloaded, true);
  assert.match(restarts[0].reason, /exited with code 70/);
  assert.equal((await e.memories()).total, 2, 'the memories were read back from the file');
  assert.equal((await e.health()).restarts, 1);

  const during = await rejection(e.remember('crash while saving'));
  assert.equal(during.code, 'worker_crashed');
  const { total, items, persistent } = await e.memories();
  assert.ok(total === 2 || total === 3, `at most the memory being written is lost (${total})`);
  assert.deepEqual(items.slice(0, 2).map((m) => m.text), ['My sister lives in Lyon.', 'The garden has three apple trees.']);
  assert.equal(persistent, true, 'the file was read back whole');
  const id = await e.remember('Bread is baked at dawn.');
  assert.equal((await e.recall('When is bread baked?', { k: 1 }))[0].id, id);
  assert.equal(restarts.length, 2);
});

test('without autoRestart a crash is final; a restart that cannot reload says why', { skip }, async () => {
  const e = await engine({ workerUrl: new URL('./workers/crash-on-cue.js', import.meta.url) });
  await e.loadModel(model);
  const crashed = await rejection(e.complete('crash mid-generation', { maxTokens: 2000, stop: [] }));
  assert.equal(crashed.restarting, false);
  assert.equal((await rejection(e.memory())).code, 'worker_crashed');

  // Bytes are transferred to the worker: after a crash there is nothing to reload.
  const events = [];
  const r = await engine({ autoRestart: true, workerUrl: new URL('./workers/crash-on-cue.js', import.meta.url), onRestart: (ev) => events.push(ev) });
  const { readFileSync } = await import('node:fs');
  await r.loadModel(new Uint8Array(readFileSync(model)));
  await rejection(r.complete('crash mid-generation', { maxTokens: 2000, stop: [] }));
  assert.equal((await rejection(r.complete('In the beginning', greedy))).code, 'no_model', 'restarted with no model');
  assert.deepEqual([events.length, events[0].reloaded], [1, false]);
});
