// Model files for the API tests, made at test time (never committed): random-weight models of
// real sizes from the CLI's `synth`, and damaged files. The tiny model is a fixture when
// ../shared/fixtures is there (trained weights), else a tiny synthetic one — said on stderr as a
// SKIPPED line, which scripts/test.sh lists and CI fails on.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FIXTURES_MISSING, fixtures } from './fixtures.mjs';

export const root = fileURLToPath(new URL('../../', import.meta.url));
const fixture = join(fixtures, 'tiny-rwkv-5v2-730K-FP16.bin');

/** Runs `synth` with the native CLI when built (faster), else the Node one. */
export function synth(out, args) {
  const native = join(root, 'target/release/echo-engine');
  const [cmd, argv] = existsSync(native) ? [native, []] : [process.execPath, [join(root, 'bin/echo-engine.mjs')]];
  execFileSync(cmd, [...argv, 'synth', ...args, '--out', out], { stdio: ['ignore', 'ignore', 'inherit'] });
  return out;
}

/** A temporary folder with the models (all in it, so one server mount serves them); `remove()` deletes it. */
export function makeModels({ big250 = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'echo-models-'));
  const tiny = join(dir, 'tiny.bin');
  if (!FIXTURES_MISSING) copyFileSync(fixture, tiny);
  else {
    process.stderr.write(`SKIPPED: tests on the trained tiny model (${FIXTURES_MISSING}): they run on a random-weight one\n`);
    synth(tiny, ['--arch', 'v5.2', '--n-embed', '128', '--n-layer', '2', '--n-vocab', '256', '--type', 'FP16']);
  }
  const bytes = readFileSync(tiny);
  writeFileSync(join(dir, 'truncated.bin'), bytes.subarray(0, Math.floor(bytes.length * 0.6)));
  writeFileSync(join(dir, 'not-a-model.bin'), readFileSync(join(root, 'README.md')));
  const models = {
    dir,
    tiny,
    truncated: join(dir, 'truncated.bin'),
    notModel: join(dir, 'not-a-model.bin'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
  // ~253 MB (a 169M-parameter-class v4 at Q8_0).
  if (big250) models.big250 = synth(join(dir, 'big250.bin'), ['--arch', 'v4', '--n-embed', '768', '--n-layer', '12', '--n-vocab', '50277', '--type', 'Q8_0']);
  return models;
}
