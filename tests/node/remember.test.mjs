// The memory commands on the Node (wasm) CLI: remember into a file and recall from it, another
// model's or a corrupt file refused with nothing lost, and a remember killed mid-way leaves the
// old file or the new one, never a torn one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FIXTURES_MISSING, fixtures } from '../support/fixtures.mjs';

const cli = fileURLToPath(new URL('../../bin/echo-engine.mjs', import.meta.url));
const model = join(fixtures, 'tiny-rwkv-5v2-730K-FP32.bin');

function run(args) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
}

function json(args) {
  const r = run(args);
  assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function error(args) {
  const r = run(args);
  assert.notEqual(r.status, 0, `${args.join(' ')} should fail`);
  return JSON.parse(r.stderr.trim().split('\n').pop());
}

test('remember, then recall the memory from the file', { skip: FIXTURES_MISSING }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'echo-memory-'));
  try {
    const file = join(dir, 'memories.bin');
    const first = json(['remember', '--model', model, '--memory-path', file, '--metadata', '{"from":"test"}',
      '--text', 'The capital of France is Paris.', '--text', 'Honey never spoils if it is kept sealed.']);
    assert.deepEqual(first, { ids: [1, 2], memories: 2 });
    assert.deepEqual(json(['remember', '--model', model, '--memory-path', file, '--text', 'Octopuses have three hearts.']),
      { ids: [3], memories: 3 });
    const { hits } = json(['recall', '--model', model, '--memory-path', file, '--query', 'How many hearts does an octopus have?', '--k', '2']);
    assert.equal(hits.length, 2);
    assert.equal(hits[0].text, 'Octopuses have three hearts.');
    assert.equal(hits[0].lexical, 1);
    assert.ok(hits[0].score > hits[1].score);
    assert.ok(hits.every((h) => h.cosine >= -1 && h.cosine <= 1.001), JSON.stringify(hits));
    const paris = json(['recall', '--model', model, '--memory-path', file, '--query', 'Paris', '--k', '1']).hits[0];
    assert.deepEqual([paris.id, paris.metadata], [1, { from: 'test' }]);
    assert.ok(!existsSync(`${file}.tmp`), 'the temporary file was renamed');

    // Another model embeds the memories again (ids, texts and metadata kept) and never mixes
    // its vectors with the first model's; a corrupt file is a typed error and stays as it was.
    const other = join(fixtures, 'tiny-rwkv-7v0-834K-FP32.bin');
    assert.deepEqual(json(['remember', '--model', other, '--memory-path', file, '--text', 'Bees dance to show the way.']), { ids: [4], memories: 4 });
    const moved = json(['recall', '--model', other, '--memory-path', file, '--query', 'How many hearts does an octopus have?', '--k', '1']).hits[0];
    assert.deepEqual([moved.id, moved.text], [3, 'Octopuses have three hearts.']);
    const back = json(['recall', '--model', model, '--memory-path', file, '--query', 'Paris', '--k', '1']).hits[0];
    assert.deepEqual([back.id, back.metadata], [1, { from: 'test' }]);
    const before = readFileSync(file);
    const corrupt = join(dir, 'corrupt.bin');
    writeFileSync(corrupt, before.subarray(0, before.length - 5));
    assert.equal(error(['recall', '--model', model, '--memory-path', corrupt, '--query', 'x']).code, 'invalid_options');
    assert.equal(error(['remember', '--model', model, '--memory-path', corrupt, '--text', 'x']).code, 'invalid_options');
    assert.equal(readFileSync(corrupt).length, before.length - 5);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a remember killed at any point leaves the old file or the new one', { skip: FIXTURES_MISSING }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'echo-memory-'));
  try {
    const file = join(dir, 'memories.bin');
    json(['remember', '--model', model, '--memory-path', file, '--text', 'first memory']);
    const texts = Array.from({ length: 100 }, (_, i) => ['--text', `memory ${i} `.repeat(10)]).flat();
    // Kills spread over one and a half runs' time, so some land before the rename and some after.
    const start = performance.now();
    json(['remember', '--model', model, '--memory-path', file, ...texts]);
    const full = performance.now() - start;
    const outcomes = new Set();
    for (const delay of [0.2, 0.4, 0.6, 0.8, 0.9, 1, 1.1, 1.5].map((f) => f * full)) {
      const saved = join(dir, 'saved.bin');
      copyFileSync(file, saved);
      const child = spawn(process.execPath, [cli, 'remember', '--model', model, '--memory-path', file, ...texts]);
      const closed = new Promise((resolve) => child.on('close', resolve));
      await new Promise((resolve) => setTimeout(resolve, delay));
      child.kill('SIGKILL');
      await closed;
      // A torn file would be refused: recall reads the whole file.
      assert.ok(json(['recall', '--model', model, '--memory-path', file, '--query', 'memory', '--k', '1']).hits.length > 0);
      outcomes.add(readFileSync(file).equals(readFileSync(saved)) ? 'old' : 'new');
    }
    console.log(`killed remembers left the ${[...outcomes].join(' and the ')} file`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
