// The shared fixtures (../shared/fixtures, outside the repository) and the reason a test is
// skipped without them. A test that needs them passes `{ skip: FIXTURES_MISSING }` (or
// TOKENIZERS_MISSING): node's runner then names it with the reason and counts it, and
// scripts/test.sh lists every skip at the end (and fails under CI=true). A folder that is there but
// incomplete is an error, not a skip: a test must never pass on an empty folder.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
export const fixtures = join(root, '../shared/fixtures/rwkv-tiny');
export const tokenizers = join(root, '../shared/fixtures/tokenizers');
export const worldVocab = join(tokenizers, 'rwkv_vocab_v20230424.txt');
export const neoxJson = join(tokenizers, '20B_tokenizer.json');

/** Every model fixture, by tag and data type (the fixture README's table). */
export const MODELS = [
  ...['4v0-660K', '5v1-730K', '5v2-730K', '7v0-834K'].flatMap((tag) => ['FP32', 'FP16', 'Q5_0', 'Q5_1'].map((t) => `tiny-rwkv-${tag}-${t}.bin`)),
  'tiny-rwkv-6v0-3m-Q5_1.bin',
].sort();
const EXPECTED = ['4v0-660K', '5v1-730K', '5v2-730K', '6v0-3m', '7v0-834K'].map((tag) => `expected-logits-${tag}.bin`);

function missing(dir, files) {
  if (!existsSync(dir)) return `fixtures not found at ${dir}`;
  const absent = files.filter((f) => !existsSync(join(dir, f)));
  if (absent.length > 0) throw new Error(`the fixture folder ${dir} lacks ${absent.join(', ')}`);
  return false;
}

/** false, or why the model fixtures are not there. */
export const FIXTURES_MISSING = missing(fixtures, [...MODELS, ...EXPECTED]);
/** false, or why the tokenizer fixtures are not there. */
export const TOKENIZERS_MISSING = missing(tokenizers, ['rwkv_vocab_v20230424.txt', '20B_tokenizer.json']);
