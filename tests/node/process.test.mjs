// process() and processStream() in Node on the trained demo model (kjv-3m): the three membranes
// and the integration, confidences from token probabilities, reasoning branches from the cached
// prompt state, streaming order, abort, typed errors, the mock backend's shape; and the memory
// file: kept across engines, embedded again for another model, a corrupt one left alone, and
// processes killed while writing never leave a torn file; health(), the 'auto' backend,
// per-membrane metrics, and the CLI's process, forget and list.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { engine, rejection, terminateAll } from '../support/engines.mjs';
import { root } from '../support/models.mjs';

const q8 = join(root, 'www/models/kjv-3m-Q8_0.bin');
const fp16 = join(root, 'www/models/kjv-3m-FP16.bin');
const skip = (!existsSync(join(root, 'pkg/echo_engine_bg.wasm')) && 'pkg/ is not built (run ./build-wasm.sh)') ||
  (!existsSync(q8) && `the demo model is not at ${q8}`);

const temps = [];
function tempDir() {
  const dir = mkdtempSync(join(tmpdir(), 'echo-process-'));
  temps.push(dir);
  return dir;
}

after(() => {
  terminateAll();
  temps.forEach((d) => rmSync(d, { recursive: true, force: true }));
});

async function loaded(options = {}, model = q8) {
  const e = await engine(options);
  await e.loadModel(model);
  return e;
}

const inUnit = (x) => typeof x === 'number' && x >= 0 && x <= 1;

function assertMembranes(r) {
  assert.deepEqual(Object.keys(r.membranes).sort(), ['grammar', 'memory', 'reasoning']);
  for (const [name, m] of Object.entries(r.membranes)) {
    assert.equal(typeof m.output, 'string', name);
    assert.ok(inUnit(m.confidence), `${name} confidence ${m.confidence}`);
    assert.ok(typeof m.ms === 'number' && m.ms >= 0, `${name} ms ${m.ms}`);
  }
  assert.ok(inUnit(r.confidence), `confidence ${r.confidence}`);
  assert.ok(inUnit(r.integration.confidence));
  assert.ok(r.integration.tokens > 0);
  assert.equal(typeof r.integratedResponse, 'string');
}

test('process end to end: three membranes, the remembered fact recalled into the prompt, statements stored', { skip }, async () => {
  const e = await loaded();
  const sister = await e.remember('My sister lives in Lyon.', { metadata: { who: 'sister' } });
  await e.remember('The cat sleeps on the red chair.');
  const r = await e.process({ userInput: 'Where does my sister live?' }, { seed: 1, maxTokens: 32 });
  assertMembranes(r);
  assert.equal(r.backend, 'ggml');
  assert.equal(r.membranes.grammar.analysis.sentenceType, 'question');
  const { recalled, stored } = r.membranes.memory;
  assert.equal(recalled[0].id, sister, JSON.stringify(recalled));
  assert.equal(recalled[0].text, 'My sister lives in Lyon.');
  assert.deepEqual(recalled[0].metadata, { who: 'sister' });
  assert.ok(r.integration.prompt.includes('My sister lives in Lyon.'), r.integration.prompt);
  assert.ok(r.integration.prompt.endsWith('User: Where does my sister live?\n\nAssistant:'), r.integration.prompt);
  assert.equal(stored, null, 'a question is not stored');
  assert.equal(r.membranes.memory.persistent, false, 'no memoryPath: in memory only');
  assert.equal(r.membranes.reasoning.steps.length > 0, true);
  assert.ok(r.membranes.reasoning.steps.every((s) => typeof s.text === 'string' && inUnit(s.confidence)));
  assert.equal((await e.memories()).total, 2);

  const s = await e.process({ userInput: 'My brother keeps bees in Oslo.' }, { seed: 1, maxTokens: 16 });
  assert.equal(s.membranes.grammar.analysis.sentenceType, 'statement');
  assert.equal(s.membranes.memory.stored?.store, 'default');
  const list = await e.memories();
  assert.equal(list.total, 3);
  const item = list.items.find((m) => m.id === s.membranes.memory.stored.id);
  assert.equal(item?.text, 'My brother keeps bees in Oslo.');
  // And the policy can be changed either way.
  const never = await e.process({ userInput: 'The sky is green.' }, { maxTokens: 4, memory: { remember: 'never' } });
  assert.equal(never.membranes.memory.stored, null);
  const always = await e.process({ userInput: 'Is the sky green?' }, { maxTokens: 4, memory: { remember: 'always' } });
  assert.notEqual(always.membranes.memory.stored, null);
  assert.equal((await e.memories()).total, 4);
});

test('confidences are token probabilities: greedy decoding is more confident than temperature 2.5', { skip }, async () => {
  const e = await loaded();
  const context = { userInput: 'And the Lord spake unto Moses, saying' };
  const options = { seed: 7, maxTokens: 48, memory: { remember: 'never' } };
  const greedy = await e.process(context, { ...options, temperature: 0 });
  const hot = await e.process(context, { ...options, temperature: 2.5 });
  const [g, h] = [greedy.membranes.reasoning.confidence, hot.membranes.reasoning.confidence];
  // Greedy picks each step's most probable token; at 2.5 low-probability tokens are drawn often.
  assert.ok(g > h + 0.1, `reasoning confidence: greedy ${g}, hot ${h}`);
  assert.ok(greedy.confidence > hot.confidence + 0.1, `integrated confidence: greedy ${greedy.confidence}, hot ${hot.confidence}`);
  assert.notEqual(greedy.integratedResponse, hot.integratedResponse);
  // Deterministic: the same greedy call gives the same numbers.
  const again = await e.process(context, { ...options, temperature: 0 });
  assert.equal(again.confidence, greedy.confidence);
  assert.equal(again.membranes.reasoning.confidence, g);
});

test('reasoning branches: three chains, the later ones resumed from the cached prompt state', { skip }, async () => {
  const context = { userInput: 'What is the light of the world?' };
  // Fresh engines, so no prefix is cached from an earlier call.
  const one = await (await loaded()).process(context, { seed: 2, maxTokens: 8, reasoning: { branches: 1, maxTokens: 24 } });
  const three = await (await loaded()).process(context, { seed: 2, maxTokens: 8, reasoning: { branches: 3, maxTokens: 24 } });
  const r = three.membranes.reasoning;
  assert.equal(r.branches.length, 3);
  assert.ok(r.branches.every((b) => typeof b.text === 'string' && inUnit(b.confidence) && inUnit(b.agreement)), JSON.stringify(r.branches));
  assert.ok(inUnit(r.agreement));
  assert.ok(r.branches.some((b) => b.text === r.output), 'the output is one of the branches');
  assert.equal(one.membranes.reasoning.branches.length, 1);
  assert.ok(three.stats.cachedTokens > 0);
  // Byte vocabulary: the reasoning prompt is one token a byte. Branches 2 and 3 reuse nearly all
  // of it (the last prompt token may be evaluated again for its logits).
  const reasoningPrompt = Buffer.byteLength(`User: ${context.userInput}\n\nAssistant: Let me think step by step.\n`);
  assert.ok(three.stats.cachedTokens - one.stats.cachedTokens >= 2 * (reasoningPrompt - 1),
    `cached ${three.stats.cachedTokens} with 3 branches, ${one.stats.cachedTokens} with 1; prompt ${reasoningPrompt} tokens`);
  assert.ok(three.stats.generatedTokens > one.stats.generatedTokens);
});

test('processStream: the membranes first (grammar, memory, reasoning), then text that adds up to the answer', { skip }, async () => {
  const e = await loaded();
  await e.remember('Bread is baked in the oven.');
  const stream = e.processStream({ userInput: 'Where is bread baked?' }, { seed: 4, maxTokens: 40 });
  const events = [];
  for await (const ev of stream) events.push(ev);
  const result = await stream.result;
  const membranes = events.filter((ev) => ev.type === 'membrane');
  assert.deepEqual(membranes.map((m) => m.name), ['grammar', 'memory', 'reasoning']);
  const firstText = events.findIndex((ev) => ev.type === 'text');
  assert.ok(firstText > events.findIndex((ev) => ev.name === 'reasoning'), 'no text before the last membrane');
  assert.ok(events.every((ev) => ev.type === 'membrane' || ev.type === 'text'));
  const text = events.filter((ev) => ev.type === 'text').map((ev) => ev.text).join('');
  assert.ok(text.length > 0);
  assert.equal(text.trim(), result.integratedResponse);
  assertMembranes(result);
  for (const m of membranes) assert.equal(m.result.output, result.membranes[m.name].output, m.name);
  assert.equal(membranes[1].result.recalled[0].text, 'Bread is baked in the oven.');
});

test('processStream aborted by a signal or by abort(): aborted, then the engine generates as a fresh one', { skip }, async () => {
  const file = join(tempDir(), 'memories.bin');
  const e = await loaded({ memoryPath: file });
  const long = { seed: 5, maxTokens: 400, stop: [], reasoning: { maxTokens: 256 } };

  const controller = new AbortController();
  const bySignal = e.processStream({ userInput: 'In the beginning God created' }, { ...long, signal: controller.signal });
  const seen = [];
  const err = await rejection((async () => {
    for await (const ev of bySignal) {
      seen.push(ev.name ?? ev.type);
      if (seen.length === 1) controller.abort();
    }
  })());
  assert.equal(err.code, 'aborted');
  assert.equal(seen[0], 'grammar');
  assert.equal((await rejection(bySignal.result)).code, 'aborted');

  const byCall = e.processStream({ userInput: 'And God said' }, long);
  let texts = 0;
  const err2 = await rejection((async () => {
    for await (const ev of byCall) {
      if (ev.type === 'text' && ++texts === 1) byCall.abort();
    }
  })());
  assert.equal(err2.code, 'aborted');
  assert.equal(texts >= 1, true);

  // The non-streaming call takes a signal too.
  const c3 = new AbortController();
  const pending = e.process({ userInput: 'Let there be light' }, { ...long, signal: c3.signal });
  c3.abort();
  assert.equal((await rejection(pending)).code, 'aborted');

  const done = await e.complete('In the beginning', { maxTokens: 8, temperature: 0 });
  const fresh = await (await loaded()).complete('In the beginning', { maxTokens: 8, temperature: 0 });
  assert.deepEqual(done.tokens, fresh.tokens);
  assert.equal(done.text, fresh.text);
  assert.equal(done.tokens.length, 8);

  // The inputs are statements, stored by the memory membrane before the abort: whatever an
  // aborted call leaves in the store, the file must hold the same (written through).
  const live = await e.memories();
  assert.equal(live.persistent, true);
  const reread = await (await loaded({ memoryPath: file })).memories();
  assert.deepEqual(reread.items, live.items, 'the memory file differs from the live store after aborted process calls');
});

test('bad input is invalid_options, and the engine goes on working', { skip }, async () => {
  const e = await loaded();
  const bad = [
    [{}, {}],
    [{ sessionId: 'a' }, {}],
    [{ userInput: 42 }, {}],
    [{ userInput: '   ' }, {}],
    [{ userInput: 'hi', mood: 'x' }, {}],
    [{ userInput: 'hi' }, { colour: 'red' }],
    [{ userInput: 'hi' }, { reasoning: { branches: 99 } }],
    [{ userInput: 'hi' }, { reasoning: { branches: 1.5 } }],
    [{ userInput: 'hi' }, { memory: { remember: 'sometimes' } }],
    [{ userInput: 'hi' }, { temperature: 'hot' }],
    ['hi', {}],
  ];
  for (const [context, options] of bad) {
    const what = JSON.stringify([context, options]);
    const err = await rejection(e.process(context, options));
    assert.equal(err.code, 'invalid_options', `${what}: ${err.message}`);
    const stream = e.processStream(context, options);
    assert.equal((await rejection(stream.result)).code, 'invalid_options', `stream ${what}`);
  }
  assert.equal((await e.memories()).total, 0, 'nothing was stored by a refused call');
  const r = await e.process({ userInput: 'Hello there.' }, { maxTokens: 4, reasoning: { branches: 8, maxTokens: 4 } });
  assert.equal(r.membranes.reasoning.branches.length, 8, 'the maximum number of branches is accepted');
  assertMembranes(r);
});

test('the mock backend gives a response of the same shape, backend mock', { skip }, async () => {
  const context = { userInput: 'Who built the ark?' };
  const options = { seed: 1, maxTokens: 16, reasoning: { branches: 2, maxTokens: 16 } };
  const real = await (await loaded()).process(context, options);
  const mock = await (await loaded({ backend: 'mock' })).process(context, options);
  assert.equal(mock.backend, 'mock');
  assert.equal(real.backend, 'ggml');
  assertMembranes(mock);
  const keys = (o) => Object.keys(o).sort();
  assert.deepEqual(keys(mock), keys(real));
  for (const name of ['grammar', 'memory', 'reasoning']) assert.deepEqual(keys(mock.membranes[name]), keys(real.membranes[name]), name);
  assert.deepEqual(keys(mock.integration), keys(real.integration));
  assert.deepEqual(keys(mock.stats), keys(real.stats));
  assert.equal(mock.membranes.reasoning.branches.length, 2);
});

test('memoryPath: memories outlive the engine; another model embeds them again and still recalls them', { skip }, async () => {
  const file = join(tempDir(), 'memories.bin');
  const texts = [
    ['Noah built an ark of gopher wood.', { n: 1 }],
    ['The garden had a river that parted into four heads.', { n: 2, tags: ['eden'] }],
    ['My dentist appointment is on Tuesday.', null],
  ];
  const first = await loaded({ memoryPath: file });
  for (const [text, metadata] of texts) await first.remember(text, { metadata });
  assert.equal((await first.memories()).persistent, true);
  first.terminate();

  const second = await loaded({ memoryPath: file });
  const list = await second.memories();
  assert.equal(list.total, 3);
  assert.equal(list.persistent, true);
  assert.equal(list.storageError, undefined);
  assert.deepEqual(list.items.map((m) => [m.text, m.metadata]), texts);
  second.terminate();

  const before = readFileSync(file);
  const other = await engine({ memoryPath: file });
  // The file's vectors are Q8_0's: read after this load, they are embedded again on import.
  await other.loadModel(fp16);
  const again = await other.memories();
  assert.equal(again.total, 3);
  assert.equal(again.persistent, true);
  assert.deepEqual(again.items.map((m) => [m.text, m.metadata]), texts);
  assert.equal((await other.recall('When is the dentist appointment?', { k: 3 }))[0].text, 'My dentist appointment is on Tuesday.');
  assert.equal((await other.recall('gopher wood ark', { k: 3 }))[0].text, 'Noah built an ark of gopher wood.');
  // The file now holds the FP16 model's vectors (rewritten after the new embedding).
  assert.notDeepEqual(readFileSync(file), before);
  // Back to Q8_0 in the same engine: the stores it holds are embedded again, and saved.
  const fp16Bytes = readFileSync(file);
  await other.loadModel(q8);
  assert.equal((await other.memories()).total, 3);
  assert.equal((await other.recall('river parted into four heads', { k: 3 }))[0].text, texts[1][0]);
  assert.notDeepEqual(readFileSync(file), fp16Bytes);
  assert.deepEqual(readFileSync(file), before, 'Q8_0 embeds the texts as it did the first time');
});

test('a corrupt memory file: the model loads, memories are kept in memory only, the file is left as it was', { skip }, async () => {
  const file = join(tempDir(), 'memories.bin');
  const garbage = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) % 256));
  writeFileSync(file, garbage);
  const e = await engine({ memoryPath: file });
  const info = await e.loadModel(q8);
  assert.equal(info.nVocab, 256);
  const list = await e.memories();
  assert.equal(list.persistent, false);
  assert.equal(list.storageError?.code, 'storage_failed', JSON.stringify(list));
  assert.equal(list.total, 0);
  const id = await e.remember('Kept in memory only.');
  assert.equal((await e.recall('memory only', { k: 1 }))[0].id, id);
  const r = await e.process({ userInput: 'This is stored in memory.' }, { maxTokens: 4 });
  assert.notEqual(r.membranes.memory.stored, null);
  assert.equal(r.membranes.memory.persistent, false);
  assert.equal((await e.memories()).total, 2);
  assert.deepEqual(readFileSync(file), garbage);
  assert.ok(!existsSync(`${file}.tmp`), 'nothing was written next to it either');
});

test('engines killed while remembering never leave a torn memory file', { skip }, async () => {
  const dir = tempDir();
  const file = join(dir, 'memories.bin');
  const child = join(dir, 'child.mjs');
  writeFileSync(child, `
    import { EchoEngine } from ${JSON.stringify(pathToFileURL(join(root, 'js/echo-engine.js')).href)};
    const e = await EchoEngine.create({ memoryPath: ${JSON.stringify(file)} });
    await e.loadModel(${JSON.stringify(q8)});
    for (let i = 0; i < 300; i++) console.log(await e.remember('memory number ' + i + ' of a killed process. '.repeat(3)));
    e.terminate();
  `);
  let total = 0;
  for (let round = 0; round < 5; round++) {
    const proc = spawn(process.execPath, [child], { stdio: ['ignore', 'pipe', 'inherit'] });
    // Kill once a random number of ids (1 to 40) has come, after a random extra delay.
    const target = 1 + Math.floor(Math.random() * 40);
    let out = '';
    let killed = false;
    const closed = new Promise((resolve) => proc.on('close', resolve));
    proc.stdout.on('data', (d) => {
      out += d;
      if (!killed && out.split('\n').length - 1 >= target) {
        killed = true;
        setTimeout(() => proc.kill('SIGKILL'), Math.random() * 30);
      }
    });
    const code = await closed;
    assert.ok(killed, `the child ended on its own (${code}) before printing ${target} ids`);
    // Every id printed was written (remember resolves after the rename), even those read after the kill.
    const printed = out.split('\n').filter((l) => /^\d+$/.test(l)).map(Number);
    assert.ok(printed.length >= target);

    const check = await loaded({ memoryPath: file });
    const list = await check.memories({ limit: 0 });
    assert.equal(list.storageError, undefined, `round ${round}: ${JSON.stringify(list.storageError)}`);
    assert.equal(list.persistent, true);
    // At most one more: a write renamed in place just before the kill, its id not yet printed.
    assert.ok(list.total >= total + printed.length && list.total <= total + printed.length + 1,
      `round ${round}: ${list.total} memories after ${total} + ${printed.length} printed`);
    const last = (await check.memories({ offset: total + printed.length - 1, limit: 1 })).items[0];
    assert.equal(last.id, printed.at(-1));
    assert.match(last.text, /^memory number \d+ of a killed process/);
    check.terminate();
    total = list.total;
  }
});

test("health, the 'auto' backend and per-membrane metrics", { skip }, async () => {
  const e = await engine({ backend: 'auto' });
  const before = await e.health();
  assert.equal(before.ok, false, 'no model yet');
  assert.equal(before.backend, null);
  const info = await e.loadModel(q8, { tokenizer: 'byte' });
  assert.equal(info.backend, 'ggml', 'auto starts with ggml, which passes its check');
  await e.process({ userInput: 'What is the light?' }, { maxTokens: 8, reasoning: { maxTokens: 8 } });
  const metrics = await e.metrics();
  assert.deepEqual(Object.keys(metrics.membranes).sort(), ['grammar', 'integration', 'memory', 'reasoning']);
  assert.equal(metrics.ggml.requests, 1, 'one process call is one request of the backend');
  assert.ok(metrics.membranes.reasoning.latencyMs.p95 >= metrics.membranes.reasoning.latencyMs.p50);
  const failed = await rejection(e.process({ userInput: '' }));
  assert.equal(failed.code, 'invalid_options');
  const h = await e.health();
  assert.equal(h.ok, true);
  assert.equal(h.backend, 'ggml');
  assert.deepEqual(h.fallbacks, []);
  assert.ok(h.memory.headroomBytes > 0 && h.memory.headroomBytes === h.memory.limitBytes - h.memory.usedBytes);
  assert.deepEqual([h.lastError.op, h.lastError.code], ['process', 'invalid_options']);
  assert.equal((await rejection(engine({ backend: 'gpu' }))).code, 'invalid_options');
});

test('the CLI: process on a context file, forget and list on a memory file', { skip }, async () => {
  const { spawnSync } = await import('node:child_process');
  const dir = tempDir();
  const file = join(dir, 'memories.bin');
  const ctx = join(dir, 'ctx.json');
  writeFileSync(ctx, JSON.stringify({ userInput: 'Where does my sister live?', processingGoals: ['answer briefly'] }));
  const opts = join(dir, 'opts.json');
  writeFileSync(opts, JSON.stringify({ maxTokens: 8, reasoning: { branches: 2, maxTokens: 8 } }));
  const native = join(root, 'target/release/echo-engine');
  const clis = [[process.execPath, [join(root, 'bin/echo-engine.mjs')]], ...(existsSync(native) ? [[native, []]] : [])];
  for (const [cmd, pre] of clis) {
    rmSync(file, { force: true });
    const run = (...args) => {
      const r = spawnSync(cmd, [...pre, ...args], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
      return JSON.parse(r.stdout);
    };
    run('remember', '--model', q8, '--memory-path', file, '--text', 'My sister lives in Lyon.', '--text', 'Bread is baked at dawn.');
    const r = run('process', '--model', q8, '--context', ctx, '--options', opts, '--memory-path', file);
    assert.equal(r.membranes.memory.recalled[0].text, 'My sister lives in Lyon.');
    assert.equal(r.membranes.reasoning.branches.length, 2);
    assert.ok(r.integration.prompt.includes('- My sister lives in Lyon.') && r.integration.prompt.includes('Goals: answer briefly'));
    assert.deepEqual(run('forget', '--model', q8, '--memory-path', file, '--id', '1', '--id', '7'), { forgotten: [1] });
    const list = run('list', '--model', q8, '--memory-path', file);
    assert.deepEqual([list.total, list.items.map((m) => m.text)], [1, ['Bread is baked at dawn.']]);
  }
});

test('a model that cannot embed the memories still loads; the memory calls say why, and the file is kept', { skip }, async () => {
  const small = join(root, 'tests/fixtures/checkpoints/v7-FP16.bin'); // 64 tokens: no tokenizer fits it
  const memoryPath = join(tempDir(), 'memories.bin');
  const e = await loaded({ memoryPath });
  await e.remember('My sister lives in Lyon.');
  const before = readFileSync(memoryPath);
  const info = await e.loadModel(small);
  assert.deepEqual([info.nVocab, info.tokenizer], [64, null]);
  assert.equal((await rejection(e.remember('Another fact.'))).code, 'invalid_options');
  const refused = await rejection(e.memories());
  assert.equal(refused.code, 'invalid_options');
  assert.match(refused.message, /cannot embed them again \(this model has no tokenizer/);
  assert.equal((await rejection(e.process({ userInput: 'Hello' }))).code, 'invalid_options');
  assert.equal((await e.evalTokens([1, 2, 3])).length, 64, 'the model itself works');
  assert.deepEqual(readFileSync(memoryPath), before, 'nothing was written');
  await e.loadModel(q8);
  assert.deepEqual((await e.memories()).items.map((m) => m.text), ['My sister lives in Lyon.']);
});
