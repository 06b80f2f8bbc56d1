// Memory stores and process() in headless Chromium, Firefox and WebKit on the demo model (kjv-3m): memories in
// IndexedDB outlive a page reload and the engine; a full quota and a missing IndexedDB each give
// storage_failed once and memories kept in memory; process() end to end and processStream aborted.
// The page is e2e.html; each scenario is sent with page.evaluate and returns plain data.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { root } from '../support/models.mjs';
import { BROWSERS, describeInBrowsers } from './browsers.mjs';
import { startServer } from '../../scripts/serve.mjs';

const models = join(root, 'www/models');
const noModel = !existsSync(join(models, 'kjv-3m-Q8_0.bin')) && `the demo model is not in ${models}`;

// One server for every browser that runs.
let server;

before(async () => {
  if (noModel || BROWSERS.every((b) => b.missing)) return;
  server = await startServer({ root, mounts: { '/models/': models } });
});

after(async () => {
  await server?.close();
});

/**
 * Runs `scenario(engineModule, args)` in the page (it is sent as source: it may use only its
 * arguments); `args.model` is the demo model's URL.
 */
function inPage(page, scenario, args = {}) {
  return page.evaluate(async ([source, args]) => {
    const module = await import('/js/echo-engine.js');
    // eslint-disable-next-line no-new-func
    return new Function(`return (${source})`)()(module, args);
  }, [scenario.toString(), { model: `${server.url}/models/kjv-3m-Q8_0.bin`, ...args }]);
}

async function reload(page) {
  await page.reload();
  await page.waitForFunction(() => document.getElementById('status').textContent === 'ready');
}

/** An error as data (`memoryId` included), or the value. Used inside the page (see inPage). */
const SETTLE = `async (p) => {
  try { return { ok: true, value: await p }; } catch (e) { return { ok: false, error: { name: e.name, code: e.code, message: e.message, memoryId: e.memoryId } }; }
}`;

describeInBrowsers({ server: () => server, skip: noModel }, ({ name, skip, page }) => {
  test(`${name}: memories in IndexedDB survive a page reload and a new engine; a forget does too`, { skip }, async () => {
    const memoryDatabase = `echo-test-${process.pid}-${Date.now()}`;
    const ids = await inPage(page(), async ({ EchoEngine }, { model, memoryDatabase }) => {
      const e = await EchoEngine.create({ memoryDatabase });
      await e.loadModel(model);
      const a = await e.remember('The lamp is lit in the tabernacle.', { metadata: { n: 1 } });
      const b = await e.remember('My neighbour grows figs in his garden.', { metadata: { n: 2 } });
      e.terminate();
      return [a, b];
    }, { memoryDatabase });
    await reload(page());
    const read = ({ EchoEngine }, { model, memoryDatabase, forget }) => (async () => {
      const e = await EchoEngine.create({ memoryDatabase });
      try {
        await e.loadModel(model);
        const list = await e.memories();
        const figs = await e.recall('Who grows figs?', { k: 2 });
        const lamp = await e.recall('Where is the lamp lit?', { k: 2 });
        const forgotten = forget === undefined ? null : await e.forget(forget);
        return { list, figs, lamp, forgotten };
      } finally {
        e.terminate();
      }
    })();
    const r = await inPage(page(), read, { memoryDatabase, forget: ids[0] });
    assert.equal(r.list.total, 2, JSON.stringify(r.list));
    assert.equal(r.list.persistent, true);
    assert.equal(r.list.storageError, undefined);
    assert.deepEqual(r.list.items.map((m) => [m.id, m.metadata]), [[ids[0], { n: 1 }], [ids[1], { n: 2 }]]);
    assert.equal(r.figs[0].text, 'My neighbour grows figs in his garden.');
    assert.equal(r.lamp[0].text, 'The lamp is lit in the tabernacle.');
    assert.equal(r.forgotten, true);

    await reload(page());
    const r2 = await inPage(page(), read, { memoryDatabase });
    assert.equal(r2.list.total, 1, JSON.stringify(r2.list));
    assert.equal(r2.list.persistent, true);
    assert.deepEqual(r2.list.items.map((m) => m.text), ['My neighbour grows figs in his garden.']);
    assert.equal(r2.figs.length, 1);

    // Another database name is another set of stores.
    const other = await inPage(page(), read, { memoryDatabase: `${memoryDatabase}-other` });
    assert.equal(other.list.total, 0);
  });

  test(`${name}: a full storage quota: remember rejects with storage_failed (memoryId), the memory is kept, later ones work in memory`, { skip }, async () => {
    const r = await inPage(page(), async ({ EchoEngine }, { model, settleSource, memoryDatabase }) => {
      const settle = new Function(`return (${settleSource})`)();
      const e = await EchoEngine.create({ memoryDatabase, workerUrl: '/tests/browser/pages/quota-worker.js' });
      try {
        await e.loadModel(model);
        const before = await e.memories();
        const first = await settle(e.remember('The ark rested upon the mountains of Ararat.', { metadata: { n: 1 } }));
        const list = await e.memories();
        const second = await settle(e.remember('The dove came back with an olive leaf.'));
        const third = await settle(e.remember('A raven went forth to and fro.'));
        const after = await e.memories();
        const recall = await e.recall('olive leaf', { k: 1 });
        return { before, first, list, second, third, after, recall };
      } finally {
        e.terminate();
      }
    }, { settleSource: SETTLE, memoryDatabase: `echo-quota-${process.pid}-${Date.now()}` });
    assert.equal(r.before.persistent, true, 'nothing failed before the first write');
    assert.equal(r.first.ok, false);
    assert.equal(r.first.error.name, 'EchoError');
    assert.equal(r.first.error.code, 'storage_failed', JSON.stringify(r.first.error));
    assert.match(r.first.error.message, /quota/);
    assert.equal(typeof r.first.error.memoryId, 'number');
    assert.equal(r.list.total, 1);
    assert.equal(r.list.items[0].id, r.first.error.memoryId);
    assert.deepEqual(r.list.items[0].metadata, { n: 1 });
    assert.equal(r.list.persistent, false);
    assert.equal(r.list.storageError?.code, 'storage_failed');
    // One error only: from then on the stores work in memory.
    assert.equal(r.second.ok, true, JSON.stringify(r.second));
    assert.equal(r.third.ok, true, JSON.stringify(r.third));
    assert.equal(r.after.total, 3);
    assert.equal(r.after.persistent, false);
    assert.equal(r.recall[0].id, r.second.value);
  });

  test(`${name}: no IndexedDB at all: nothing throws, memories are kept in memory, persistent false with storageError`, { skip }, async () => {
    const r = await inPage(page(), async ({ EchoEngine }, { model, settleSource }) => {
      const settle = new Function(`return (${settleSource})`)();
      const e = await EchoEngine.create({ workerUrl: '/tests/browser/pages/no-indexeddb-worker.js' });
      try {
        const load = await settle(e.loadModel(model));
        const id = await settle(e.remember('Manna fell in the wilderness.'));
        const list = await e.memories();
        const processed = await settle(e.process({ userInput: 'Quails came up at even.' }, { maxTokens: 4 }).then((p) => p.membranes.memory));
        return { load: load.ok, id, list, processed, after: await e.memories({ limit: 0 }) };
      } finally {
        e.terminate();
      }
    }, { settleSource: SETTLE });
    assert.equal(r.load, true);
    assert.equal(r.id.ok, true, JSON.stringify(r.id));
    assert.equal(r.list.total, 1);
    assert.equal(r.list.items[0].text, 'Manna fell in the wilderness.');
    assert.equal(r.list.persistent, false);
    assert.equal(r.list.storageError?.code, 'storage_failed', JSON.stringify(r.list));
    assert.equal(r.processed.ok, true, JSON.stringify(r.processed));
    assert.equal(r.processed.value.persistent, false);
    assert.notEqual(r.processed.value.stored, null);
    assert.equal(r.after.total, 2);
  });

  test(`${name}: process: three membranes, the memory in the prompt; processStream aborted, then complete works`, { skip }, async () => {
    const r = await inPage(page(), async ({ EchoEngine }, { model, settleSource, memoryDatabase }) => {
      const settle = new Function(`return (${settleSource})`)();
      const e = await EchoEngine.create({ memoryDatabase });
      const fresh = await EchoEngine.create({ persistMemories: false });
      try {
        await e.loadModel(model);
        await fresh.loadModel(model);
        await e.remember('My sister lives in Lyon.');
        await e.remember('The cat sleeps on the red chair.');
        const processed = await e.process({ userInput: 'Where does my sister live?' }, { seed: 1, maxTokens: 24 });
        const controller = new AbortController();
        const stream = e.processStream({ userInput: 'In the beginning God created' },
          { seed: 2, maxTokens: 400, stop: [], reasoning: { maxTokens: 256 }, signal: controller.signal });
        const seen = [];
        const iterated = await settle((async () => {
          for await (const ev of stream) {
            seen.push(ev.type === 'membrane' ? ev.name : 'text');
            if (seen.length === 2) controller.abort();
          }
        })());
        const result = await settle(stream.result);
        const byCall = e.processStream({ userInput: 'And God said' }, { seed: 3, maxTokens: 400, stop: [] });
        const called = await settle((async () => {
          for await (const ev of byCall) if (ev.type === 'text') byCall.abort();
        })());
        const done = await e.complete('In the beginning', { maxTokens: 8, temperature: 0 });
        const want = await fresh.complete('In the beginning', { maxTokens: 8, temperature: 0 });
        const list = await e.memories();
        const off = await fresh.memories();
        e.terminate();
        // What IndexedDB holds, read by a new engine.
        const again = await EchoEngine.create({ memoryDatabase });
        await again.loadModel(model);
        const stored = await again.memories();
        again.terminate();
        return { processed, seen, iterated, result, called, done, want, list, stored, off };
      } finally {
        e.terminate();
        fresh.terminate();
      }
    }, { settleSource: SETTLE, memoryDatabase: `echo-process-${process.pid}-${Date.now()}` });
    const p = r.processed;
    assert.deepEqual(Object.keys(p.membranes).sort(), ['grammar', 'memory', 'reasoning']);
    for (const [name, m] of Object.entries(p.membranes)) {
      assert.equal(typeof m.output, 'string', name);
      assert.ok(m.confidence >= 0 && m.confidence <= 1, `${name}: ${m.confidence}`);
      assert.ok(m.ms >= 0, name);
    }
    assert.ok(p.confidence >= 0 && p.confidence <= 1);
    assert.equal(p.backend, 'ggml');
    assert.equal(p.membranes.grammar.analysis.sentenceType, 'question');
    assert.equal(p.membranes.memory.recalled[0].text, 'My sister lives in Lyon.');
    assert.ok(p.integration.prompt.includes('My sister lives in Lyon.'), p.integration.prompt);
    assert.equal(p.membranes.memory.stored, null);
    assert.equal(p.membranes.memory.persistent, true);
    assert.ok(r.list.total >= 2);
    assert.deepEqual(r.list.items.slice(0, 2).map((m) => m.text), ['My sister lives in Lyon.', 'The cat sleeps on the red chair.']);
    // The aborted inputs are statements, stored by the memory membrane before the abort: whatever
    // an aborted call leaves in the store, IndexedDB must hold the same (written through).
    assert.equal(r.list.persistent, true);
    assert.deepEqual(r.stored.items, r.list.items, 'IndexedDB differs from the live store after aborted process calls');

    // Aborted after the memory membrane: grammar and memory came, in that order.
    assert.deepEqual(r.seen.slice(0, 2), ['grammar', 'memory']);
    assert.equal(r.iterated.ok, false);
    assert.equal(r.iterated.error.code, 'aborted', JSON.stringify(r.iterated));
    assert.equal(r.result.error?.code, 'aborted');
    assert.equal(r.called.error?.code, 'aborted', JSON.stringify(r.called));
    assert.equal(r.done.tokens.length, 8);
    // persistMemories: false is off, not failed.
    assert.equal(r.off.persistent, false);
    assert.equal(r.off.storageError, undefined);
    assert.deepEqual(r.done.tokens, r.want.tokens);
    assert.equal(r.done.text, r.want.text);
  });
});
