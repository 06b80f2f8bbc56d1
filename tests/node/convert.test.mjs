// engine.convert in Node (worker_threads): checkpoints made with PyTorch (tests/fixtures/checkpoints,
// see scripts/make-checkpoint-fixtures.py) from a Blob, a path and bytes, to the bytes rwkv.cpp's
// converter writes and to a model whose logits are the PyTorch model's; progress; typed errors.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { engine, rejection, terminateAll } from '../support/engines.mjs';
import { root } from '../support/models.mjs';

const haveWasm = existsSync(join(root, 'pkg/echo_engine_bg.wasm'));
const skip = !haveWasm && 'pkg/ is not built (run ./build-wasm.sh)';
const dir = join(root, 'tests/fixtures/checkpoints');
const TOKENS = [3, 17, 42, 5, 60, 1, 33, 8];

after(() => terminateAll());

const bytesOf = async (blob) => Buffer.from(await blob.arrayBuffer());

test('convert from a Blob, a path and bytes: rwkv.cpp\'s bytes (v6, v7), with progress', { skip }, async () => {
  const e = await engine();
  for (const v of ['v6', 'v7']) {
    for (const ext of ['pth', 'safetensors']) {
      const file = join(dir, `${v}.${ext}`);
      for (const type of ['FP32', 'FP16']) {
        const want = readFileSync(join(dir, `${v}-${type}.bin`));
        const events = [];
        const fromBlob = await e.convert(new Blob([readFileSync(file)]), { type, onProgress: (p) => events.push(p) });
        assert.deepEqual([fromBlob.arch, fromBlob.dataType, fromBlob.nLayer, fromBlob.nVocab], [v, type, 2, 64]);
        assert.ok((await bytesOf(fromBlob.blob)).equals(want), `${v}.${ext} ${type} from a Blob`);
        assert.ok(events.length > 0 && events.every((p) => p.phase === 'convert'));
        const last = events.at(-1);
        assert.ok(last.total > 0 && last.loaded === last.total, JSON.stringify(last));
        assert.ok((await bytesOf((await e.convert(file, { type })).blob)).equals(want), `${v}.${ext} ${type} from a path`);
        assert.ok((await bytesOf((await e.convert(new Uint8Array(readFileSync(file)), { type })).blob)).equals(want), `${v}.${ext} ${type} from bytes`);
      }
    }
  }
});

test('a converted checkpoint loads and its logits are the PyTorch model\'s, every version', { skip }, async () => {
  const e = await engine();
  for (const v of ['v4', 'v5.1', 'v5.2', 'v6', 'v7']) {
    const { blob } = await e.convert(new Blob([readFileSync(join(dir, `${v}.pth`))]), { type: 'FP32' });
    await e.loadModel(blob);
    const logits = await e.evalTokens(TOKENS);
    const want = readFileSync(join(dir, `${v}-logits.bin`));
    const expected = new Float32Array(want.buffer, want.byteOffset, want.length / 4);
    const max = Math.max(...Array.from(logits, (x, i) => Math.abs(x - expected[i])));
    assert.ok(max <= 1e-4, `${v}: logits differ from PyTorch's by ${max}`);
  }
  const q = await e.convert(join(dir, 'v7.safetensors'), { type: 'Q5_1' });
  assert.equal(q.dataType, 'Q5_1');
  assert.ok(q.quantized > 0);
  assert.equal((await e.loadModel(q.blob)).dataType, 'Q5_1');
});

test('convert from a ReadableStream (read into a Blob first); an aborted signal rejects with aborted', { skip }, async () => {
  const e = await engine();
  const bytes = readFileSync(join(dir, 'v7.pth'));
  const stream = new ReadableStream({
    start(c) {
      for (let i = 0; i < bytes.length; i += 10000) c.enqueue(new Uint8Array(bytes.subarray(i, i + 10000)));
      c.close();
    },
  });
  const r = await e.convert(stream, { type: 'FP16' });
  assert.ok((await bytesOf(r.blob)).equals(readFileSync(join(dir, 'v7-FP16.bin'))));
  const controller = new AbortController();
  controller.abort();
  assert.equal((await rejection(e.convert(join(dir, 'v7.pth'), { signal: controller.signal }))).code, 'aborted');
});

test('a file that is not a checkpoint, or a hostile one, is invalid_model; the engine stays usable', { skip }, async () => {
  const e = await engine();
  const notCkpt = await rejection(e.convert(join(dir, 'v7-FP32.bin')));
  assert.equal(notCkpt.code, 'invalid_model');
  const pth = readFileSync(join(dir, 'v4.pth'));
  const truncated = await rejection(e.convert(new Blob([pth.subarray(0, pth.length >> 1)])));
  assert.equal(truncated.code, 'invalid_model');
  assert.match(truncated.message, /truncated/);
  const badType = await rejection(e.convert(join(dir, 'v4.pth'), { type: 'Q9' }));
  assert.equal(badType.code, 'invalid_options');
  const ok = await e.convert(join(dir, 'v4.pth'));
  assert.equal(ok.dataType, 'FP16');
});
