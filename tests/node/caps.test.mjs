// Caps under attack, in wasm (Node): inputs built to exhaust memory or the stack are refused with
// a typed error, or bounded, before they can trap the worker — a 10-million-token prompt, 20
// million token ids, a huge memory import, memory exports and states claiming huge sizes,
// grammars whose rules or $refs nest thousands deep — and the engine answers the next call.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { engine, rejection, terminateAll } from '../support/engines.mjs';
import { root } from '../support/models.mjs';

const model = join(root, 'www/models/kjv-3m-Q8_0.bin');
const skip = (!existsSync(join(root, 'pkg/echo_engine_bg.wasm')) && 'pkg/ is not built (run ./build-wasm.sh)') ||
  (!existsSync(model) && `the demo model is not at ${model}`);
const MIB = 1024 * 1024;

after(terminateAll);

async function small() {
  const e = await engine({ memoryLimitMb: 64 });
  await e.loadModel(model);
  return e;
}

/** The engine still answers, and never went past its limit. */
async function stillWorks(e) {
  const c = await e.complete('And God said', { maxTokens: 4, temperature: 0 });
  assert.equal(c.tokens.length, 4);
  const m = await e.memory();
  assert.ok(m.peakBytes <= m.limitBytes, `peak ${m.peakBytes} over the limit ${m.limitBytes}`);
}

test('inputs too large for the memory left are out_of_memory before they reach wasm', { skip }, async () => {
  const e = await small();
  for (const [what, call] of [
    ['a 10-million-token prompt', () => e.complete('a'.repeat(10_000_000), { maxTokens: 1 })],
    ['20 million token ids', () => e.evalTokens(new Array(20_000_000).fill(1))],
    ['a 40 MB memory import', () => e.importMemories(new Uint8Array(40 * MIB))],
    ['a 40 MB state', () => e.loadState(new Uint8Array(40 * MIB))],
    ['a 10 MB text to remember', () => e.remember('b'.repeat(10 * MIB))],
  ]) {
    const err = await rejection(call());
    assert.equal(err.code, 'out_of_memory', what);
    assert.match(err.message, /memory limit/, what);
    await stillWorks(e);
  }
});

test('under the full cap a 10-million-token prompt is bounded: it runs until aborted, then the engine goes on', { skip }, async () => {
  const e = await engine();
  await e.loadModel(model);
  const g = e.generate('a'.repeat(10_000_000), { maxTokens: 1 });
  setTimeout(() => g.abort(), 1000);
  for await (const _ of g);
  assert.equal((await g.result).stopReason, 'abort');
  await e.reset();
  await stillWorks(e);
});

test('exports and states claiming huge sizes are invalid_options and allocate nothing', { skip }, async () => {
  const e = await small();
  await e.remember('My sister lives in Lyon.');
  const file = await e.exportMemories();
  const view = new DataView(file.buffer, file.byteOffset);
  // The file's store count, then the first store's export length, claim 4 billion.
  for (const offset of [12, 16 + 4 + 'default'.length]) {
    const forged = file.slice();
    new DataView(forged.buffer).setUint32(offset, 0xffffffff, true);
    assert.equal((await rejection(e.importMemories(forged))).code, 'invalid_options', `offset ${offset}`);
  }
  assert.equal(view.getUint32(12, true), 1);
  const state = await e.saveState();
  const forged = state.slice();
  new DataView(forged.buffer).setUint32(8 + 6 * 4, 0x7fffffff, true); // the token count
  assert.equal((await rejection(e.loadState(forged))).code, 'invalid_options');
  assert.equal((await e.memories()).total, 1, 'the memories are as they were');
  await stillWorks(e);
});

test('grammars nested thousands deep are invalid_options, not a stack overflow', { skip }, async () => {
  const e = await small();
  const n = 3000;
  const gbnf = Array.from({ length: n }, (_, i) => `r${i} ::= "a" r${i + 1} | "b"`).join('\n').replace('r0 ::=', 'root ::=') + `\nr${n} ::= "c"\n`;
  const lark = `start: r0\n${Array.from({ length: n }, (_, i) => `r${i}: "a" r${i + 1} | "b"`).join('\n')}\nr${n}: "c"\n`;
  const defs = Object.fromEntries(Array.from({ length: n }, (_, i) => [`a${i}`, { type: 'array', items: { $ref: `#/$defs/a${i + 1}` } }]));
  defs[`a${n}`] = { type: 'integer' };
  let nested = { type: 'integer' };
  for (let i = 0; i < n; i++) nested = { type: 'array', items: nested };
  for (const grammar of [{ gbnf }, { lark }, { jsonSchema: { $ref: '#/$defs/a0', $defs: defs } }, { jsonSchema: nested }]) {
    const err = await rejection(e.complete('x', { maxTokens: 4, grammar }));
    assert.equal(err.code, 'invalid_options', Object.keys(grammar)[0]);
    assert.match(err.message, /nest|recursion limit/);
  }
  // A regex that repeats a million times is bounded by maxTokens.
  const c = await e.complete('x', { maxTokens: 8, grammar: { regex: '((a{1,1000}){1,1000}){1,1000}' } });
  assert.equal(c.stopReason, 'length');
  await stillWorks(e);
});
