// The text commands of the Node (wasm) CLI, against the native CLI: generate (streamed and
// --json, stop strings, prefix-cache reuse across prompts), tokenize and detokenize (the World
// known vector of the fixture README), and typed errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FIXTURES_MISSING, TOKENIZERS_MISSING, fixtures, neoxJson, worldVocab } from '../support/fixtures.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const nodeCli = join(root, 'bin/echo-engine.mjs');
// ECHO_NATIVE_CLI: a native build in another target directory.
const nativeCli = process.env.ECHO_NATIVE_CLI ?? join(root, 'target/release/echo-engine');
const model = join(fixtures, 'tiny-rwkv-5v2-730K-FP32.bin');


// The fixture README's World vector.
const WORLD_TEXT = "I'll 'd test блабла 以下は、]) -> <|endoftext|><|padding|> int";
const WORLD_IDS = [74, 5229, 274, 101, 32223, 5092, 27980, 2795, 27980, 33, 10399, 10258, 10139, 10079, 1682, 3463, 295, 125, 25258, 7588, 2318, 125, 790, 125, 49520, 125, 63, 21888];

function run(cli, args) {
  const [cmd, argv] = cli === 'node' ? [process.execPath, [nodeCli, ...args]] : [nativeCli, args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 1 << 26 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(cli, args) {
  const r = run(cli, args);
  assert.equal(r.status, 0, `${cli} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const lines = (cli, args) => ok(cli, args).trim().split('\n').map((l) => JSON.parse(l));

function errorCode(cli, args) {
  const r = run(cli, args);
  assert.notEqual(r.status, 0, `${cli} ${args.join(' ')} should fail`);
  return JSON.parse(r.stderr.trim()).code;
}

const GEN = ['generate', '--model', model, '--prompt', 'The quick brown fox', '--max-tokens', '48', '--seed', '7'];

test('generate: seeded output is repeatable, streamed text equals the JSON text, native agrees', { skip: FIXTURES_MISSING }, () => {
  const [a] = lines('node', [...GEN, '--json']);
  const [b] = lines('node', [...GEN, '--json']);
  assert.deepEqual(a, { ...b, stats: a.stats });
  assert.equal(a.stop_reason, 'length');
  assert.equal(a.tokens.length, 48);
  assert.equal(a.stats.prompt_tokens, 'The quick brown fox'.length);
  assert.equal(a.stats.generated_tokens, 48);
  assert.ok(a.stats.decode_tokens_per_s > 0);
  assert.ok(a.stats.decode_ms_median > 0 && a.stats.decode_ms_median <= a.stats.decode_ms, JSON.stringify(a.stats));
  // The byte tokenizer: the text is the tokens' bytes, decoded as UTF-8 (lossy).
  assert.equal(a.text, Buffer.from(a.tokens).toString('utf8'));
  assert.equal(ok('node', GEN), a.text + '\n');
  // Another seed, another text.
  const [c] = lines('node', [...GEN.slice(0, -1), '8', '--json']);
  assert.notDeepEqual(c.tokens, a.tokens);
  // Native and wasm logits agree to ~1e-5 on this fixture, and the sampled tokens are the same.
  const [n] = lines('native', [...GEN, '--json']);
  assert.deepEqual(n.tokens, a.tokens);
  assert.equal(n.text, a.text);
});

test('generate: stop strings (JSON array or repeated) cut the text and are not printed', { skip: FIXTURES_MISSING }, () => {
  const [free] = lines('node', [...GEN, '--temperature', '0', '--json']);
  const stop = free.text.slice(10, 13);
  const want = free.text.slice(0, free.text.indexOf(stop));
  for (const args of [['--stop', JSON.stringify([stop, 'zzz'])], ['--stop', 'zzz', '--stop', stop]]) {
    const [r] = lines('node', [...GEN, '--temperature', '0', ...args, '--json']);
    assert.equal(r.stop_reason, 'stop');
    assert.equal(r.text, want);
    assert.equal(ok('node', [...GEN, '--temperature', '0', ...args]), want + '\n');
  }
});

test('generate: a second prompt sharing a prefix resumes from the prefix cache', { skip: FIXTURES_MISSING }, () => {
  const prefix = 'A long shared system prompt, the same for every request in this process. ';
  const args = ['generate', '--model', model, '--max-tokens', '8', '--json'];
  const [first, second] = lines('node', [...args, '--prompt', prefix, '--prompt', `${prefix}Question?`]);
  assert.equal(first.stats.cached_tokens, 0);
  assert.equal(second.stats.cached_tokens, prefix.length);
  assert.equal(second.stats.evaluated_prompt_tokens, 'Question?'.length);
  // The same answer as without the cache.
  const [cold] = lines('node', [...args, '--prompt', `${prefix}Question?`, '--cache-mb', '0']);
  assert.equal(cold.stats.evaluated_prompt_tokens, prefix.length + 'Question?'.length);
  assert.deepEqual(cold.tokens, second.tokens);
});

test('tokenize and detokenize: the World vector, NeoX, bytes; Node equals native', { skip: TOKENIZERS_MISSING }, () => {
  const world = ['--tokenizer', 'world', '--vocab', worldVocab];
  for (const cli of ['node', 'native']) {
    assert.deepEqual(JSON.parse(ok(cli, ['tokenize', ...world, '--text', WORLD_TEXT])), WORLD_IDS);
    assert.equal(JSON.parse(ok(cli, ['detokenize', ...world, '--ids', WORLD_IDS.join(','), '--json'])), WORLD_TEXT);
    assert.equal(ok(cli, ['detokenize', ...world, '--ids', WORLD_IDS.join(',')]), WORLD_TEXT + '\n');
  }
  const neox = ['--tokenizer', 'neox', '--vocab', neoxJson];
  const text = 'Hello, world! This is a test.';
  const ids = [12092, 13, 1533, 2, 831, 310, 247, 1071, 15];
  assert.deepEqual(JSON.parse(ok('node', ['tokenize', ...neox, '--text', text])), ids);
  assert.equal(JSON.parse(ok('node', ['detokenize', ...neox, '--ids', ids.join(','), '--json'])), text);
  assert.deepEqual(JSON.parse(ok('node', ['tokenize', '--tokenizer', 'byte', '--text', 'héllo'])), [104, 195, 169, 108, 108, 111]);
  // Bytes that are not UTF-8 come out as U+FFFD.
  assert.equal(JSON.parse(ok('node', ['detokenize', '--tokenizer', 'byte', '--ids', '104,195', '--json'])), 'h\uFFFD');
});

test('text commands: bad input is a typed error', () => {
  assert.equal(errorCode('node', ['tokenize', '--tokenizer', 'klingon', '--text', 'x']), 'invalid_options');
  assert.equal(errorCode('node', ['tokenize', '--tokenizer', 'world', '--text', 'x']), 'invalid_options');
  assert.equal(errorCode('node', ['detokenize', '--tokenizer', 'byte', '--ids', '1,256']), 'invalid_options');
  assert.equal(errorCode('node', ['detokenize', '--tokenizer', 'byte', '--ids', '1,x']), 'invalid_options');
  assert.equal(errorCode('node', ['tokenize', '--tokenizer', 'world', '--vocab', join(root, 'missing.txt'), '--text', 'x']), 'load_failed');
});

test('generate: bad options are typed errors', { skip: FIXTURES_MISSING }, () => {
  assert.equal(errorCode('node', [...GEN, '--temperature', '-1']), 'invalid_options');
  assert.equal(errorCode('node', [...GEN, '--top-p', 'lots']), 'invalid_options');
  assert.equal(errorCode('node', [...GEN, '--stop-tokens', '999']), 'invalid_options');
  assert.equal(errorCode('node', ['generate', '--model', model]), 'invalid_options');
});

test('generate: a World tokenizer on a 256-token model gives ids the model lacks, a typed error', { skip: FIXTURES_MISSING || TOKENIZERS_MISSING }, () => {
  assert.equal(errorCode('node', [...GEN, '--tokenizer', 'world', '--vocab', worldVocab]), 'invalid_options');
});
