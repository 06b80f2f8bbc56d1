// The memory cap at evaluation time, through the JS API in Node (wasm, where every allocation,
// ggml's included, is counted): under the tightest limit the load check admits, long
// generations never run out of memory, nor need the room kept for loading; a model the header check admits but whose evaluation
// does not fit gets out_of_memory, and the engine goes on working.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { EchoEngine } from '../../js/echo-engine.js';
import { engine, rejection, terminateAll } from '../support/engines.mjs';
import { makeModels, root, synth } from '../support/models.mjs';

const MIB = 1024 * 1024;
const LOAD_SLACK = 4 * MIB;
const haveWasm = existsSync(join(root, 'pkg/echo_engine_bg.wasm'));
const skip = !haveWasm && 'pkg/ is not built (run ./build-wasm.sh)';

let models;

test('a limit below what the engine itself needs is refused, not a crash at the first chunk', { skip }, async () => {
  const err = await rejection(EchoEngine.create({ memoryLimitMb: 1 }));
  assert.equal(err.code, 'invalid_options');
  assert.match(err.message, /what the engine itself needs/);
});

/**
 * An engine with `path` loaded under about the tightest limit its load check admits: each
 * refusal says what was needed (the prompt-state cache's share grows with the limit, hence the loop).
 */
async function loadedAtTightestLimit(path) {
  let limitBytes = 5 * MIB; // above what the engine itself needs, below what any model here needs
  for (let attempt = 0; attempt < 8; attempt++) {
    const e = await engine({ memoryLimitMb: limitBytes / MIB });
    try {
      const info = await e.loadModel(path);
      assert.ok(attempt > 0, 'the first, small limit was admitted: start lower');
      return { e, info, limitBytes };
    } catch (err) {
      assert.equal(err.code, 'model_too_large', err.message);
      limitBytes = err.neededBytes + 4096; // + a page: what the worker allocates meanwhile varies a little
      e.terminate();
    }
  }
  assert.fail('the needed bytes never settled');
}

before(() => {
  if (skip) return;
  models = makeModels();
  // Its evaluation needs more than the load's fixed slack (4 MB), so an evaluation budget that
  // fell short would show.
  models.v7 = synth(join(models.dir, 'v7.bin'), ['--arch', 'v7', '--n-embed', '1536', '--n-layer', '1', '--n-vocab', '256', '--type', 'Q5_1']);
  // An FFN 1024× n_embed wide: a header is budgeted for 4×, so the load check admits it, but a
  // full chunk's FFN activations (~21 MB) exceed the room its evaluation was given.
  models.wide = synth(join(models.dir, 'wide.bin'), ['--arch', 'v4', '--n-embed', '128', '--n-layer', '1', '--n-vocab', '256', '--n-ffn', '131072', '--type', 'Q8_0']);
});
after(() => {
  terminateAll();
  models?.remove();
});

test('under the tightest limit the load admits, long generations never run out of memory', { skip }, async () => {
  for (const path of [models.tiny, models.v7]) {
    const { e, info, limitBytes } = await loadedAtTightestLimit(path);
    const prompt = 'Once upon a time, in a land far away, there lived a model that counted its bytes. '.repeat(3);
    const first = await e.complete(prompt, { maxTokens: 400, temperature: 0.8, seed: 1 });
    assert.ok(first.stats.generatedTokens > 0);
    // The same prompt again (from the prompt-state cache), then a continued conversation.
    const again = await e.complete(prompt, { maxTokens: 200, seed: 2 });
    assert.ok(again.stats.cachedTokens > 0, 'the prompt-state cache was used');
    await e.complete(' And then', { maxTokens: 200, continue: true });
    const logits = await e.evalTokens(Array.from({ length: 100 }, (_, i) => (i * 7) % info.nVocab));
    assert.equal(logits.length, info.nVocab);

    const m = await e.memory();
    assert.equal(m.limitBytes, Math.floor(limitBytes));
    // The load keeps 4 MiB for copying chunks in (LOAD_SLACK_BYTES, src/wasm/engine.rs); evaluating
    // must fit in the rest, the budget it was given.
    assert.ok(m.peakBytes <= m.limitBytes - LOAD_SLACK, `peak ${m.peakBytes}, limit ${m.limitBytes}`);
    console.log(`FIGURE node: ${info.arch} ${info.dataType} (${(info.fileBytes / MIB).toFixed(2)} MiB): limit ` +
      `${(limitBytes / MIB).toFixed(2)} MiB, peak ${(m.peakBytes / MIB).toFixed(2)} MiB after ~1000 generated tokens ` +
      `(${((m.limitBytes - m.peakBytes) / MIB).toFixed(2)} MiB unused, 4 of them the load's slack)`);
  }
});

test('a model the header check admits but whose evaluation does not fit: out_of_memory, then the engine works', { skip }, async () => {
  const { e, info, limitBytes } = await loadedAtTightestLimit(models.wide);
  assert.equal(info.backend, 'ggml');
  const chunk = Array.from({ length: 32 }, (_, i) => i + 65);
  const err = await rejection(e.evalTokens(chunk));
  assert.equal(err.code, 'out_of_memory');
  assert.match(err.message, /could not allocate/);
  console.log(`FIGURE node: wide-FFN model under a ${(limitBytes / MIB).toFixed(2)} MiB limit: ${err.message}`);

  // Smaller inputs fit, and give what an engine with room gives: one token, a short completion.
  const roomy = await engine();
  await roomy.loadModel(models.wide);
  assert.deepEqual(await e.evalTokens([65]), await roomy.evalTokens([65]));
  const [done, want] = await Promise.all([e.complete('ab', { maxTokens: 4, temperature: 0 }), roomy.complete('ab', { maxTokens: 4, temperature: 0 })]);
  assert.deepEqual(done.tokens, want.tokens);
  // The roomy engine evaluates the whole chunk; this one still refuses it, and works after.
  assert.equal((await roomy.evalTokens(chunk)).length, 256);
  assert.equal((await rejection(e.evalTokens(chunk))).code, 'out_of_memory');
  assert.equal((await e.evalTokens([66])).length, 256);
  assert.ok((await e.memory()).peakBytes <= limitBytes);
});
