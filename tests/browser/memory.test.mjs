// The memory cap at evaluation time in headless Chromium, Firefox and WebKit (the same checks as
// tests/node/memory.test.mjs, by URL): long generations under the tightest limit the load check
// admits never run out of memory; a model the header check admits but whose evaluation does not
// fit gets out_of_memory, and the engine goes on working. The page is e2e.html; the scenario
// is sent with page.evaluate.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { basename, join } from 'node:path';
import { makeModels, root, synth } from '../support/models.mjs';
import { BROWSERS, describeInBrowsers } from './browsers.mjs';
import { startServer } from '../../scripts/serve.mjs';

const MIB = 1024 * 1024;

// One set of models and one server for every browser that runs.
let models;
let server;
const url = (path) => `${server.url}/models/${basename(path)}`;

before(async () => {
  if (BROWSERS.every((b) => b.missing)) return;
  models = makeModels();
  // Its evaluation needs more than the load's fixed slack (4 MB), so an evaluation budget that
  // fell short would show.
  models.v7 = synth(join(models.dir, 'v7.bin'), ['--arch', 'v7', '--n-embed', '1536', '--n-layer', '1', '--n-vocab', '256', '--type', 'Q5_1']);
  models.wide = synth(join(models.dir, 'wide.bin'), ['--arch', 'v4', '--n-embed', '128', '--n-layer', '1', '--n-vocab', '256', '--n-ffn', '131072', '--type', 'Q8_0']);
  server = await startServer({ root, mounts: { '/models/': models.dir } });
});

after(async () => {
  await server?.close();
  models?.remove();
});

/**
 * In the page: loads `modelUrl` under about the tightest limit its load check admits (each
 * refusal says what was needed), then runs `work(engine, info)`; returns plain data.
 */
function inPage(page, modelUrl, workName) {
  return page.evaluate(async ([modelUrl, workName]) => {
    const { EchoEngine } = await import('/js/echo-engine.js');
    const failure = (e) => ({ code: e.code, message: e.message });
    const MB = 1024 * 1024;
    let limitBytes = 5 * MB;
    let engine;
    let info;
    for (let attempt = 0; attempt < 8 && !info; attempt++) {
      engine?.terminate();
      engine = await EchoEngine.create({ memoryLimitMb: limitBytes / MB });
      try {
        info = await engine.loadModel(modelUrl);
      } catch (e) {
        if (e.code !== 'model_too_large') return { error: failure(e) };
        limitBytes = e.neededBytes + 4096;
      }
    }
    const works = {
      async generate(e) {
        const prompt = 'Once upon a time, in a land far away, there lived a model that counted its bytes. '.repeat(3);
        const first = await e.complete(prompt, { maxTokens: 400, temperature: 0.8, seed: 1 });
        const again = await e.complete(prompt, { maxTokens: 200, seed: 2 });
        await e.complete(' And then', { maxTokens: 200, continue: true });
        const logits = await e.evalTokens(Array.from({ length: 100 }, (_, i) => (i * 7) % info.nVocab));
        return { generated: first.stats.generatedTokens, cached: again.stats.cachedTokens, logits: logits.length };
      },
      async overflow(e) {
        const chunk = Array.from({ length: 32 }, (_, i) => i + 65);
        const refused = await e.evalTokens(chunk).then(() => null, failure);
        const roomy = await EchoEngine.create();
        await roomy.loadModel(modelUrl);
        const same = JSON.stringify(await e.evalTokens([65])) === JSON.stringify(await roomy.evalTokens([65]));
        const done = await e.complete('ab', { maxTokens: 4, temperature: 0 });
        const want = await roomy.complete('ab', { maxTokens: 4, temperature: 0 });
        roomy.terminate();
        return { refused, same, tokens: done.tokens, want: want.tokens };
      },
    };
    try {
      const result = await works[workName](engine, info);
      return { info, limitBytes, result, memory: await engine.memory() };
    } catch (e) {
      return { info, limitBytes, error: failure(e) };
    } finally {
      engine.terminate();
    }
  }, [modelUrl, workName]);
}

describeInBrowsers({ server: () => server }, ({ name, id, skip, page }) => {
  test(`${name}: under the tightest limit the load admits, long generations never run out of memory`, { skip }, async () => {
    for (const path of [models.tiny, models.v7]) {
      const r = await inPage(page(), url(path), 'generate');
      assert.equal(r.error, undefined, JSON.stringify(r.error));
      assert.ok(r.result.generated > 0 && r.result.cached > 0 && r.result.logits === r.info.nVocab, JSON.stringify(r.result));
      assert.equal(r.memory.limitBytes, Math.floor(r.limitBytes));
      // The load keeps 4 MiB for copying chunks in (LOAD_SLACK_BYTES, src/wasm/engine.rs); evaluating
      // must fit in the rest, the budget it was given.
      assert.ok(r.memory.peakBytes <= r.memory.limitBytes - 4 * MIB, JSON.stringify(r.memory));
      console.log(`FIGURE ${id}: ${r.info.arch} ${r.info.dataType}: limit ${(r.limitBytes / MIB).toFixed(2)} MiB, ` +
        `peak ${(r.memory.peakBytes / MIB).toFixed(2)} MiB after ~1000 generated tokens`);
    }
  });

  test(`${name}: a model the header check admits but whose evaluation does not fit: out_of_memory, then the engine works`, { skip }, async () => {
    const r = await inPage(page(), url(models.wide), 'overflow');
    assert.equal(r.error, undefined, JSON.stringify(r.error));
    assert.equal(r.result.refused?.code, 'out_of_memory', JSON.stringify(r.result));
    assert.ok(r.result.same, 'one token after the failure gives the logits of an engine with room');
    assert.deepEqual(r.result.tokens, r.result.want);
    assert.ok(r.memory.peakBytes <= r.memory.limitBytes);
    console.log(`FIGURE ${id}: wide-FFN model under a ${(r.limitBytes / MIB).toFixed(2)} MiB limit: ${r.result.refused.message}`);
  });
});
