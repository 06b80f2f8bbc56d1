// The Node (wasm) CLI against the fixtures and against the native CLI: conformance in serial and
// sequence mode, wasm/native agreement, quantization, typed errors, and the module's imports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FIXTURES_MISSING, MODELS, fixtures } from '../support/fixtures.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const nodeCli = join(root, 'bin/echo-engine.mjs');
const nativeCli = join(root, 'target/release/echo-engine');
const PROMPT = '34,105,110';

// The fixture README's diff_sum bounds.
const BOUNDS = {
  '4v0-660K': { FP32: 0.001, FP16: -0.013652, Q5_0: -0.170404, Q5_1: 0.278034 },
  '5v1-730K': { FP32: 0.001, FP16: -0.289921, Q5_0: -163.439407, Q5_1: -18.017435 },
  '5v2-730K': { FP32: 0.001, FP16: 0.455912, Q5_0: 25.273308, Q5_1: 48.068733 },
  '6v0-3m': { Q5_1: 3.576909 },
  '7v0-834K': { FP32: 0.001, FP16: 0.005766, Q5_0: -0.063645, Q5_1: -0.064663 },
};

// Files whose wasm and native logits differ by more than 1e-3 (measured: 8.3e-3, 1.7e-3,
// 7.8e-3; every other file agrees within 1e-5). Both builds quantize activations with the same
// code (the build's Q8 patch; the ggml-sys tests check the bytes), but the floats they quantize
// differ in the last bits (x86 sums dot products in 8 or 16 lanes, wasm in 4), and in these tiny
// random models a value sitting on a rounding boundary to Q8 or f16 flips one step, which moves
// the logits by up to 1e-2 (token "1" alone gives 1.8e-2 on the 5v1 Q5_0 file). Bit-identical
// floats would need the same summation order on every SIMD width, which ggml does not offer.
const ROUNDING_FLIPS = new Set(['tiny-rwkv-5v1-730K-Q5_0.bin', 'tiny-rwkv-5v2-730K-FP16.bin', 'tiny-rwkv-6v0-3m-Q5_1.bin']);


function run(cli, args) {
  const [cmd, argv] = cli === 'node' ? [process.execPath, [nodeCli, ...args]] : [nativeCli, args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 1 << 26 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function json(cli, args) {
  const r = run(cli, args);
  assert.equal(r.status, 0, `${cli} ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function expected(tag) {
  const b = readFileSync(join(fixtures, `expected-logits-${tag}.bin`));
  return new Float32Array(b.buffer, b.byteOffset, 256);
}

const models = MODELS;

test('conformance in Node (wasm) and agreement with native, every fixture', { skip: FIXTURES_MISSING }, () => {
  const rows = [];
  for (const file of models) {
    const [, tag, dtype] = file.match(/^tiny-rwkv-(.+)-(FP32|FP16|Q5_0|Q5_1)\.bin$/);
    const bound = BOUNDS[tag][dtype];
    const want = expected(tag);
    const path = join(fixtures, file);
    const row = [file];
    for (const mode of ['serial', 'sequence']) {
      const wasm = json('node', ['logits', '--model', path, '--tokens', PROMPT, '--mode', mode]).logits;
      const native = json('native', ['logits', '--model', path, '--tokens', PROMPT, '--mode', mode]).logits;
      assert.equal(wasm.length, 256);
      const diffSum = wasm.reduce((s, v, i) => s + (v - want[i]), 0);
      assert.ok(Math.abs(diffSum) <= Math.abs(bound) * 1.05, `${file} ${mode}: diff_sum ${diffSum} vs bound ${bound}`);
      if (dtype === 'FP32') {
        wasm.forEach((v, i) => assert.ok(Math.abs(v - want[i]) <= 1e-3, `${file} ${mode} logit ${i}: ${v} vs ${want[i]}`));
      }
      const maxDiff = Math.max(...wasm.map((v, i) => Math.abs(v - native[i])));
      const limit = ROUNDING_FLIPS.has(file) ? 2e-2 : 1e-3;
      assert.ok(maxDiff <= limit, `${file} ${mode}: wasm and native differ by ${maxDiff}`);
      row.push(diffSum.toFixed(6), maxDiff.toExponential(2));
    }
    rows.push(row.join('\t'));
  }
  console.log('file\tserial diff_sum\twasm-native max|d|\tsequence diff_sum\twasm-native max|d|\n' + rows.join('\n'));
});

test('info reports the model', { skip: FIXTURES_MISSING }, () => {
  const info = json('node', ['info', '--model', join(fixtures, 'tiny-rwkv-6v0-3m-Q5_1.bin')]);
  assert.equal(info.arch, 'v6');
  assert.equal(info.n_vocab, 256);
  assert.equal(info.n_embed, 128);
  assert.equal(info.n_layer, 12);
  assert.equal(info.data_type, 'Q5_1');
  assert.equal(info.version, 101);
  assert.ok(info.memory_bytes > info.file_bytes * 0.9);
});

test('quantizing in wasm writes the same bytes as native', { skip: FIXTURES_MISSING }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'echo-q-'));
  try {
    for (const type of ['Q4_0', 'Q5_1', 'Q8_0']) {
      const input = join(fixtures, 'tiny-rwkv-5v2-730K-FP16.bin');
      const a = join(dir, `node-${type}.bin`);
      const b = join(dir, `native-${type}.bin`);
      json('node', ['quantize', '--in', input, '--out', a, '--type', type]);
      json('native', ['quantize', '--in', input, '--out', b, '--type', type]);
      assert.ok(readFileSync(a).equals(readFileSync(b)), `${type}: wasm and native files differ`);
      const out = json('node', ['logits', '--model', a, '--tokens', PROMPT]).logits;
      assert.ok(out.every(Number.isFinite));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const CHECKPOINTS = join(root, 'tests/fixtures/checkpoints');

test('convert: the same file in wasm and natively from .pth and .safetensors, every version and type; a hostile checkpoint is invalid_model', () => {
  const dir = mkdtempSync(join(tmpdir(), 'echo-convert-'));
  try {
    for (const v of ['v4', 'v5.1', 'v5.2', 'v6', 'v7']) {
      for (const ext of ['pth', 'safetensors']) {
        for (const type of ['FP32', 'FP16', 'Q5_1']) {
          const out = {};
          for (const cli of ['node', 'native']) {
            out[cli] = join(dir, `${cli}-${v}-${type}.bin`);
            const r = json(cli, ['convert', '--in', join(CHECKPOINTS, `${v}.${ext}`), '--out', out[cli], '--type', type]);
            assert.deepEqual([r.arch, r.type, r.n_layer, r.n_vocab], [v, type, 2, 64], `${cli} ${v}.${ext}`);
            assert.equal(r.bytes, readFileSync(out[cli]).length);
            assert.ok(r.peak_memory_bytes > 0, `${cli}: ${JSON.stringify(r)}`);
          }
          assert.ok(readFileSync(out.node).equals(readFileSync(out.native)), `${v}.${ext} ${type}: wasm and native files differ`);
        }
        // Byte for byte rwkv.cpp's file where no exp is involved (v6, v7; tests/convert.rs checks the rest).
        if (v === 'v6' || v === 'v7') {
          for (const type of ['FP32', 'FP16']) {
            assert.ok(readFileSync(join(dir, `node-${v}-${type}.bin`)).equals(readFileSync(join(CHECKPOINTS, `${v}-${type}.bin`))), `${v} ${type}`);
          }
        }
      }
      // The converted FP32 model's logits are the PyTorch model's (fed one token at a time).
      const want = readFileSync(join(CHECKPOINTS, `${v}-logits.bin`));
      const expected = new Float32Array(want.buffer, want.byteOffset, want.length / 4);
      const got = json('node', ['logits', '--model', join(dir, `node-${v}-FP32.bin`), '--tokens', '3,17,42,5,60,1,33,8']).logits;
      const max = Math.max(...got.map((x, i) => Math.abs(x - expected[i])));
      assert.ok(max <= 1e-4, `${v}: logits differ from PyTorch's by ${max}`);
    }
    for (const cli of ['node', 'native']) {
      const r = run(cli, ['convert', '--in', join(CHECKPOINTS, 'v7-FP32.bin'), '--out', join(dir, 'x.bin')]);
      assert.equal(r.status, 1);
      assert.equal(JSON.parse(r.stderr).code, 'invalid_model', r.stderr);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('synth and bench work for every architecture, in Node and natively, and agree on the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'echo-arch-'));
  try {
    for (const arch of ['v4', 'v5.1', 'v5.2', 'v6', 'v7']) {
      const files = {};
      for (const cli of ['node', 'native']) {
        files[cli] = join(dir, `${cli}-${arch}.bin`);
        json(cli, ['synth', '--arch', arch, '--n-embed', '64', '--n-layer', '2', '--n-vocab', '300', '--type', 'Q5_1', '--out', files[cli]]);
        const b = json(cli, ['bench', '--model', files[cli], '--prompt', '40', '--decode', '3']);
        assert.deepEqual([b.arch, b.data_type, b.prompt_tokens, b.decode_tokens], [arch, 'Q5_1', 40, 3], `${cli} ${arch}`);
        assert.ok(b.decode_ms_per_token_median > 0 && b.prompt_tokens_per_s > 0, `${cli} ${arch}: ${JSON.stringify(b)}`);
      }
      assert.ok(readFileSync(files.node).equals(readFileSync(files.native)), `${arch}: wasm and native synth files differ`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--head Q8_0 on bench and generate quantizes the head as the model loads, as quantize --head does to a file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'echo-head-'));
  try {
    const [fp16, plain, withHead] = ['fp16.bin', 'q5_1.bin', 'q5_1-head.bin'].map((f) => join(dir, f));
    json('native', ['synth', '--arch', 'v5.2', '--n-embed', '64', '--n-layer', '2', '--n-vocab', '300', '--type', 'FP16', '--out', fp16]);
    json('native', ['quantize', '--in', fp16, '--out', plain, '--type', 'Q5_1']);
    json('native', ['quantize', '--in', fp16, '--out', withHead, '--type', 'Q5_1', '--head', 'Q8_0']);
    const generate = (cli, model, ...extra) => {
      const r = run(cli, ['generate', '--model', model, '--tokenizer', 'byte', '--prompt', 'In the', '--max-tokens', '16', '--seed', '3', '--json', ...extra]);
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout).tokens;
    };
    for (const cli of ['node', 'native']) {
      const want = generate(cli, withHead);
      assert.deepEqual(generate(cli, plain, '--head', 'Q8_0'), want, cli);
      assert.deepEqual(generate(cli, plain, '--head', 'Q8_0', '--memory-limit-mb', '64'), want, `${cli}, under a limit`);
      assert.notDeepEqual(generate(cli, plain), want, `${cli}: the FP16 head gives other tokens`);
      assert.equal(json(cli, ['bench', '--model', plain, '--decode', '2', '--prompt', '4', '--head', 'Q8_0']).decode_tokens, 2);
      const bad = run(cli, ['bench', '--model', plain, '--head', 'FP16']);
      assert.equal(JSON.parse(bad.stderr.trim()).code, 'invalid_options', cli);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad input gives one JSON error line and a non-zero exit', () => {
  const dir = mkdtempSync(join(tmpdir(), 'echo-e-'));
  try {
    const r1 = run('node', ['info', '--model', join(dir, 'missing.bin')]);
    assert.notEqual(r1.status, 0);
    assert.equal(JSON.parse(r1.stderr.trim()).code, 'load_failed');
    const r2 = run('node', ['info', '--model', nodeCli]);
    assert.equal(JSON.parse(r2.stderr.trim()).code, 'invalid_model');
    const r3 = run('node', ['frobnicate']);
    assert.equal(JSON.parse(r3.stderr.trim()).code, 'invalid_options');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a token the model does not have is a typed error', { skip: FIXTURES_MISSING }, () => {
  const model = join(fixtures, 'tiny-rwkv-4v0-660K-FP32.bin');
  const r = run('node', ['logits', '--model', model, '--tokens', '1,999']);
  assert.equal(JSON.parse(r.stderr.trim()).code, 'invalid_options');
});

test('the wasm module imports only wasm-bindgen glue, and has SIMD128', async () => {
  const bytes = readFileSync(join(root, 'pkg/echo_engine_bg.wasm'));
  const mod = new WebAssembly.Module(bytes);
  const modules = new Set(WebAssembly.Module.imports(mod).map((i) => i.module));
  assert.ok(modules.size > 0);
  for (const m of modules) assert.ok(m === 'wbg' || m === './echo_engine_bg.js', `unexpected import module ${m}`);
  const maxPages = execFileSync('wasm-objdump', ['-x', '-j', 'Memory', join(root, 'pkg/echo_engine_bg.wasm')], { encoding: 'utf8' });
  assert.match(maxPages, /max=9600\b/, 'the module is capped at 600 MiB');
  const { default: init, hasWasmSimd } = await import(join(root, 'pkg/echo_engine.js'));
  await init({ module_or_path: bytes });
  assert.equal(hasWasmSimd(), true);
});
