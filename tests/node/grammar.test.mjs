// Grammar-constrained decoding in wasm (Node), through the JS API and the Node CLI: conformance
// as a property on a random-weight model with the World vocabulary (the cases of
// tests/vectors/grammars.json, shared with tests/grammar.rs; every output that ends with
// stopReason 'grammar' validates: ajv for schemas, whole-match regexes, JSON.parse, an expression
// parser), typed errors for bad grammars (the engine goes on), the same tokens natively and in
// wasm for the same seed, and the CLI's stop_reason.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { TOKENIZERS_MISSING, worldVocab } from '../support/fixtures.mjs';
import { synth } from '../support/models.mjs';
import { engine, rejection, terminateAll } from '../support/engines.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const nativeCli = process.env.ECHO_NATIVE_CLI ?? join(root, 'target/release/echo-engine');
const nodeCli = join(root, 'bin/echo-engine.mjs');
const cases = JSON.parse(readFileSync(join(root, 'tests/vectors/grammars.json'), 'utf8'));
const SEEDS = 50;
const MAX_TOKENS = 96;

const dir = mkdtempSync(join(tmpdir(), 'echo-grammar-'));
after(() => {
  terminateAll();
  rmSync(dir, { recursive: true, force: true });
});
// The same random-weight World model as tests/grammar.rs makes.
let worldModel;
function model() {
  worldModel ??= synth(join(dir, 'world.bin'), ['--arch', 'v5.2', '--n-embed', '64', '--n-layer', '2', '--n-vocab', '65536', '--type', 'FP16', '--seed', '7']);
  return worldModel;
}

let loaded;
async function worldEngine() {
  loaded ??= (async () => {
    const e = await engine();
    await e.loadModel(model(), { tokenizer: 'world', vocab: worldVocab });
    return e;
  })();
  return loaded;
}

/** `expr := term (('+'|'-') term)*`, `term := factor (('*'|'/') factor)*`, `factor := digits | '(' expr ')'`. */
function arithmetic(text) {
  let i = 0;
  const expr = () => { term(); while (text[i] === '+' || text[i] === '-') { i++; term(); } };
  const term = () => { factor(); while (text[i] === '*' || text[i] === '/') { i++; factor(); } };
  const factor = () => {
    if (text[i] === '(') {
      i++;
      expr();
      if (text[i++] !== ')') throw new Error(`')' expected at ${i - 1}`);
      return;
    }
    const start = i;
    while (/[0-9]/.test(text[i] ?? '')) i++;
    if (i === start) throw new Error(`a number expected at ${start}`);
  };
  expr();
  if (i !== text.length) throw new Error(`trailing text at ${i}`);
}

/** Runs every seed; checks each output that ended with the grammar; returns [grammar, length]. */
async function conform(e, grammar, check) {
  let complete = 0;
  let length = 0;
  for (let seed = 0; seed < SEEDS; seed++) {
    const c = await e.complete('Output:', { grammar, seed, maxTokens: MAX_TOKENS });
    if (c.stopReason === 'grammar') {
      complete++;
      try {
        check(c.text);
      } catch (err) {
        assert.fail(`${JSON.stringify(grammar)}, seed ${seed}: ${JSON.stringify(c.text)} does not conform: ${err.message}`);
      }
    } else {
      assert.equal(c.stopReason, 'length');
      assert.equal(c.tokens.length, MAX_TOKENS);
      length++;
    }
  }
  assert.ok(complete * 2 >= SEEDS, `${JSON.stringify(grammar)}: only ${complete} of ${SEEDS} complete`);
  return [complete, length];
}

test('JSON Schema: every complete output validates (ajv)', { skip: TOKENIZERS_MISSING }, async (t) => {
  const e = await worldEngine();
  const ajv = new Ajv({ strict: false });
  addFormats(ajv);
  let complete = 0;
  let length = 0;
  for (const schema of cases.schemas) {
    const validate = ajv.compile(schema);
    const [c, l] = await conform(e, { jsonSchema: schema }, (text) => {
      if (!validate(JSON.parse(text))) throw new Error(ajv.errorsText(validate.errors));
    });
    complete += c;
    length += l;
  }
  t.diagnostic(`json schemas: ${cases.schemas.length} x ${SEEDS} seeds: ${complete} ended 'grammar', ${length} 'length'`);
});

test('regex and GBNF: every complete output matches', { skip: TOKENIZERS_MISSING }, async (t) => {
  const e = await worldEngine();
  const whole = (rx) => (text) => { if (!new RegExp(`^(?:${rx})$`, 'u').test(text)) throw new Error('no whole match'); };
  for (const [kind, list] of [['regex', cases.regexes], ['gbnf', cases.gbnf]]) {
    let complete = 0;
    let length = 0;
    for (const item of list) {
      const grammar = kind === 'regex' ? { regex: item } : { gbnf: item.grammar };
      const check = kind === 'regex' ? whole(item)
        : item.check === 'json' ? (text) => JSON.parse(text)
        : item.check === 'arithmetic' ? arithmetic
        : whole(item.check.slice('regex:'.length));
      const [c, l] = await conform(e, grammar, check);
      complete += c;
      length += l;
    }
    t.diagnostic(`${kind}: ${list.length} x ${SEEDS} seeds: ${complete} ended 'grammar', ${length} 'length'`);
  }
});

test('grammar: a JSON Schema as text, streaming, and bad grammars as invalid_options', { skip: TOKENIZERS_MISSING }, async () => {
  const e = await worldEngine();
  const schema = cases.schemas[0];
  const a = await e.complete('Output:', { grammar: { jsonSchema: JSON.stringify(schema) }, seed: 5, maxTokens: MAX_TOKENS });
  const b = await e.complete('Output:', { grammar: { jsonSchema: schema }, seed: 5, maxTokens: MAX_TOKENS });
  assert.deepEqual(a.tokens, b.tokens);
  let streamed = '';
  const generation = e.generate('Output:', { grammar: { jsonSchema: schema }, seed: 5, maxTokens: MAX_TOKENS });
  for await (const chunk of generation) streamed += chunk.text;
  assert.equal(streamed, a.text);
  assert.equal((await generation.result).stopReason, a.stopReason);
  const bad = [
    [{ jsonSchema: '{"type": "object",\n "properties": {]}' }, /line 2 column/],
    [{ jsonSchema: { type: 'strin' } }, /strin/],
    [{ regex: '[a-' }, /^regex/],
    [{ lark: 'start: foo\n' }, /foo/],
    [{ gbnf: 'root ::= item\n' }, /line 1, column 10/],
    [{ yaml: 'x' }, /grammar/],
    [{ regex: 'a', gbnf: 'root ::= "a"' }, /grammar/],
    ['[0-9]+', /grammar/],
  ];
  for (const [grammar, reason] of bad) {
    const err = await rejection(e.complete('Output:', { grammar, maxTokens: 8 }));
    assert.equal(err.code, 'invalid_options', `${JSON.stringify(grammar)}: ${err.message}`);
    assert.match(err.message, reason);
  }
  const ok = await e.complete('Output:', { grammar: { regex: '(yes|no)' }, seed: 1 });
  assert.equal(ok.stopReason, 'grammar');
  assert.ok(['yes', 'no'].includes(ok.text), ok.text);
});

function cli(which, args) {
  const [cmd, argv] = which === 'node' ? [process.execPath, [nodeCli, ...args]] : [nativeCli, args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, `${which} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l));
}

test('CLI: --json-schema, --regex, --gbnf, --lark give stop_reason grammar, the same tokens natively and in wasm', { skip: TOKENIZERS_MISSING }, () => {
  const schemaFile = join(dir, 'schema.json');
  writeFileSync(schemaFile, JSON.stringify(cases.schemas[8]));
  const gbnfFile = join(dir, 'list.gbnf');
  writeFileSync(gbnfFile, cases.gbnf[1].grammar);
  const larkFile = join(dir, 'yes.lark');
  writeFileSync(larkFile, 'start: ("yes" | "no") "!"\n');
  const base = ['generate', '--model', model(), '--vocab', worldVocab, '--prompt', 'Output:', '--max-tokens', String(MAX_TOKENS), '--json'];
  for (const [flag, value, check] of [
    ['--json-schema', schemaFile, (t) => JSON.parse(t)],
    ['--regex', '[0-9]{4}-[0-9]{2}', (t) => assert.match(t, /^[0-9]{4}-[0-9]{2}$/)],
    ['--gbnf', gbnfFile, (t) => assert.match(t, /^\[("[a-z]{1,5}"(, "[a-z]{1,5}"){0,3})?\]$/)],
    ['--lark', larkFile, (t) => assert.match(t, /^(yes|no)!$/)],
  ]) {
    for (const seed of ['1', '2']) {
      const [w] = cli('node', [...base, flag, value, '--seed', seed]);
      const [n] = cli('native', [...base, flag, value, '--seed', seed]);
      assert.equal(w.stop_reason, 'grammar', `${flag} ${seed}: ${JSON.stringify(w)}`);
      check(w.text);
      assert.deepEqual(n.tokens, w.tokens, `${flag} seed ${seed}: native and wasm differ`);
      assert.equal(n.text, w.text);
    }
  }
  const r = spawnSync(process.execPath, [nodeCli, ...base, '--regex', '[a-', '--seed', '1'], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.equal(JSON.parse(r.stderr.trim()).code, 'invalid_options');
});
