// What the README promises of the JS API, each checked so that a broken promise fails: continuing
// a conversation, reset, evalTokens/loadState before generate, states across backends, aborts
// (queued, running, leaving the loop), every source kind on the ggml backend, sampler options
// from JS, unsupported versions and the metrics of an abort. Greedy decoding (temperature 0) on the
// tiny byte-level model makes every expectation exact.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { engine, rejection, terminateAll } from '../support/engines.mjs';
import { makeModels, root, synth } from '../support/models.mjs';

const haveWasm = existsSync(join(root, 'pkg/echo_engine_bg.wasm'));
const skip = !haveWasm && 'pkg/ is not built (run ./build-wasm.sh)';

const GREEDY = { temperature: 0, presencePenalty: 0, frequencyPenalty: 0 };
const bytes = (text) => [...Buffer.from(text)];

let models;
/** An engine with `model` (by default the tiny one) loaded. */
async function loaded(options, model = models.tiny) {
  const e = await engine(options);
  await e.loadModel(model);
  return e;
}

before(() => {
  if (!skip) models = makeModels();
});
after(() => {
  terminateAll();
  models?.remove();
});

test('continue: true goes on from the conversation; without it a call starts afresh', { skip }, async () => {
  const e = await loaded();
  const first = await e.complete('The river', { ...GREEDY, maxTokens: 12 });
  const continued = await e.complete(' and', { ...GREEDY, maxTokens: 12, continue: true });
  // The same conversation fed by hand (by tokens: a random-weight stand-in's reply may not be
  // valid UTF-8, so its text would not give its tokens back).
  await e.reset();
  await e.evalTokens([...bytes('The river'), ...first.tokens]);
  const whole = await e.complete(' and', { ...GREEDY, maxTokens: 12, continue: true });
  assert.deepEqual(continued.tokens, whole.tokens);
  const fresh = await e.complete(' and', { ...GREEDY, maxTokens: 12 });
  assert.notDeepEqual(fresh.tokens, continued.tokens, 'the tiny model answers " and" alone differently');
  assert.deepEqual((await e.complete(' and', { ...GREEDY, maxTokens: 12 })).tokens, fresh.tokens);
});

test('reset() empties the conversation: the next evaluation starts from the initial state', { skip }, async () => {
  const e = await loaded();
  assert.deepEqual(await e.metrics(), {}, 'the warm-up after loading is no request of the user');
  const initial = await e.evalTokens([65]);
  const advanced = await e.evalTokens([65]);
  assert.notDeepEqual(advanced, initial, 'a second token sees the first');
  await e.reset();
  assert.deepEqual(await e.evalTokens([65]), initial);
});

test('evalTokens and loadState, then generate with continue, go on from that state', { skip }, async () => {
  const e = await loaded();
  const prompt = 'Once upon';
  await e.evalTokens(bytes(prompt));
  const afterEval = await e.complete(' a', { ...GREEDY, maxTokens: 10, continue: true });
  const direct = await e.complete(`${prompt} a`, { ...GREEDY, maxTokens: 10 });
  assert.equal(afterEval.text, direct.text);

  await e.reset();
  await e.evalTokens(bytes(prompt));
  const saved = await e.saveState();
  await e.complete('something else entirely', { ...GREEDY, maxTokens: 10 });
  await e.loadState(saved);
  assert.equal((await e.complete(' a', { ...GREEDY, maxTokens: 10, continue: true })).text, direct.text);
});

test('a state saved on one backend loads on another and gives its logits; a state of another model is refused', { skip }, async () => {
  const ggml = await loaded({ backend: 'ggml' });
  const reference = await loaded({ backend: 'reference' });
  const maxDiff = (a, b) => Math.max(...a.map((v, i) => Math.abs(v - b[i])));
  // How far the two backends are apart on this FP16 model anyway (ggml rounds activations to
  // f16 for FP16 weights, the reference stays in f32): a state crossing over may add no more.
  const apart = maxDiff(await ggml.evalTokens(bytes('Hello!')), await reference.evalTokens(bytes('Hello!')));
  await ggml.reset();
  await ggml.evalTokens(bytes('Hello'));
  const state = await ggml.saveState();
  const expected = await ggml.evalTokens([33]);
  await reference.loadState(state);
  const crossed = maxDiff(await reference.evalTokens([33]), expected);
  assert.ok(crossed <= 1.5 * apart + 1e-5, `max |Δ| ${crossed} after loading the state, ${apart} from scratch`);

  // A state of another model (a v7 with a different state size) is refused and changes nothing.
  const other = await loaded({}, synth(join(models.dir, 'v7.bin'), ['--arch', 'v7', '--n-embed', '64', '--n-layer', '1', '--n-vocab', '256', '--type', 'FP32']));
  await other.evalTokens([1]);
  const before = await ggml.saveState();
  assert.equal((await rejection(ggml.loadState(await other.saveState()))).code, 'invalid_options');
  assert.deepEqual(await ggml.saveState(), before);
});

test('leaving the for await loop ends the generation with stopReason abort', { skip }, async () => {
  const e = await loaded();
  const generation = e.generate('Once', { maxTokens: 100000 });
  for await (const chunk of generation) if (chunk.text) break;
  const result = await generation.result;
  assert.equal(result.stopReason, 'abort');
  assert.ok(result.stats.generatedTokens < 100000);
  const m = (await e.metrics()).ggml;
  assert.equal(m.aborted, 1);
  assert.equal(m.errors, 0, 'an abort is not an error');
});

test('aborting a queued request rejects it with aborted; aborting a running complete() resolves with abort', { skip }, async () => {
  const e = await loaded();
  const running = new AbortController();
  const long = e.complete('Once', { maxTokens: 100000, signal: running.signal });
  const queued = new AbortController();
  const waiting = e.complete('Twice', { maxTokens: 4, signal: queued.signal });
  queued.abort();
  setTimeout(() => running.abort(), 100);
  const [a, b] = await Promise.allSettled([long, waiting]);
  assert.equal(a.status, 'fulfilled');
  assert.equal(a.value.stopReason, 'abort');
  assert.ok(a.value.stats.generatedTokens > 0 && a.value.stats.generatedTokens < 100000);
  assert.equal(b.status, 'rejected');
  assert.equal(b.reason.code, 'aborted');
  assert.equal((await e.complete('x', { maxTokens: 2 })).stopReason, 'length', 'the engine goes on');
});

test('every Node source kind gives the same logits as a file path on the ggml backend', { skip }, async () => {
  const e = await engine({ backend: 'ggml' });
  await e.loadModel(models.tiny);
  const expected = await e.evalTokens([1, 2, 3]);
  const sources = {
    fileUrl: pathToFileURL(models.tiny),
    uint8Array: new Uint8Array(readFileSync(models.tiny)),
    arrayBuffer: new Uint8Array(readFileSync(models.tiny)).buffer,
    blob: new Blob([readFileSync(models.tiny)]),
    stream: Readable.toWeb(createReadStream(models.tiny, { highWaterMark: 1000 })),
  };
  for (const [kind, source] of Object.entries(sources)) {
    await e.loadModel(source);
    assert.deepEqual(await e.evalTokens([1, 2, 3]), expected, kind);
  }
});

test('sampler options reach the sampler from JS: bannedTokens, logitBias, stopTokens, topK, minP', { skip }, async () => {
  const e = await loaded();
  const greedy = await e.complete('The ', { ...GREEDY, maxTokens: 8 });
  const first = greedy.tokens[0];
  const banned = await e.complete('The ', { ...GREEDY, maxTokens: 8, bannedTokens: [first] });
  assert.notEqual(banned.tokens[0], first);
  assert.ok(!banned.tokens.includes(first));
  const biased = await e.complete('The ', { ...GREEDY, maxTokens: 8, logitBias: { 90: 1000 } });
  assert.deepEqual(biased.tokens, Array(8).fill(90));
  // A stop token ends the reply: it is the last of `tokens`, and adds no text.
  const stopAt = greedy.tokens.indexOf(greedy.tokens[2]);
  const stopped = await e.complete('The ', { ...GREEDY, maxTokens: 8, stopTokens: [greedy.tokens[2]] });
  assert.equal(stopped.stopReason, 'stop');
  assert.deepEqual(stopped.tokens, greedy.tokens.slice(0, stopAt + 1));
  assert.equal(stopped.text, Buffer.from(greedy.tokens.slice(0, stopAt)).toString());
  // With sampling on, topK 1 and minP 1 leave only the most likely token: greedy output.
  for (const only of [{ topK: 1 }, { minP: 1 }]) {
    const r = await e.complete('The ', { temperature: 1, topP: 1, presencePenalty: 0, frequencyPenalty: 0, maxTokens: 8, seed: 3, ...only });
    assert.deepEqual(r.tokens, greedy.tokens, JSON.stringify(only));
  }
  const sampled = await e.complete('The ', { temperature: 1, topP: 1, presencePenalty: 0, frequencyPenalty: 0, maxTokens: 8, seed: 3 });
  assert.notDeepEqual(sampled.tokens, greedy.tokens, 'plain sampling differs from greedy (so the checks above could fail)');
});

test('a model file of an unknown version is unsupported_version through the JS API', { skip }, async () => {
  const e = await engine();
  const file = readFileSync(models.tiny);
  file.writeInt32LE(99, 4);
  const path = join(models.dir, 'version-99.bin');
  writeFileSync(path, file);
  const err = await rejection(e.loadModel(path));
  assert.equal(err.code, 'unsupported_version');
  assert.match(err.message, /version 99/);
  assert.equal((await e.loadModel(models.tiny)).fileBytes, file.length, 'the engine loads after the refusal');
});
