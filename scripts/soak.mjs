#!/usr/bin/env node
// Soak and chaos in Node (scripts/soak-core.js says what runs and what is checked): prints one
// JSON object with the counts and the memory curve; exits 1 if a check fails.
//
//   node scripts/soak.mjs [--requests 1000] [--model www/models/kjv-3m-Q8_0.bin] [--tokenizer auto]
//                         [--vocab FILE] [--seed 1] [--sample-every 10]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { EchoEngine } from '../js/echo-engine.js';
import { soak } from './soak-core.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const { values: opts } = parseArgs({
  options: {
    requests: { type: 'string', default: '1000' },
    model: { type: 'string', default: join(root, 'www/models/kjv-3m-Q8_0.bin') },
    tokenizer: { type: 'string', default: 'auto' },
    vocab: { type: 'string' },
    seed: { type: 'string', default: '1' },
    'sample-every': { type: 'string', default: '10' },
  },
});

const dir = mkdtempSync(join(tmpdir(), 'echo-soak-'));
const engine = await EchoEngine.create({ memoryPath: join(dir, 'memories.bin') });
const report = await soak(engine, {
  requests: Number(opts.requests),
  load: () => engine.loadModel(opts.model, { tokenizer: opts.tokenizer, vocab: opts.vocab }),
  seed: Number(opts.seed),
  sampleEvery: Number(opts['sample-every']),
});
console.log(JSON.stringify({ model: opts.model, ...report }));
engine.terminate();
rmSync(dir, { recursive: true, force: true });
process.exit(Object.values(report.checks).every(Boolean) ? 0 : 1);
