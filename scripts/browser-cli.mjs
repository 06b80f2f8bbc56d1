#!/usr/bin/env node
// Runs one echo-engine CLI command in headless Chromium, on the same wasm package and the same
// CLI code as `bin/echo-engine.mjs` runs on Node.js, and prints what it prints: so `bench` and
// `generate --json` give JSON comparable with the native and Node runs ("runtime": "chromium").
//
//   node scripts/browser-cli.mjs bench --model M.bin [--sample] …
//   node scripts/browser-cli.mjs generate --model M.bin --prompt "…" --prompt "…" --json
//
// The files the command reads (--model, --vocab, --file, --memory-path and the grammar files) are served from
// localhost and fetched whole by the page before the command runs (the CLI reads synchronously);
// other files cannot be read, nor written.
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../tests/browser/server.mjs';
import { CHROMIUM_MISSING, launchChromium } from '../tests/browser/chromium.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const FILE_OPTIONS = ['--model', '--vocab', '--file', '--json-schema', '--lark', '--gbnf', '--memory-path'];

const args = process.argv.slice(2);
if (CHROMIUM_MISSING) {
  fail(`cannot run in Chromium: ${CHROMIUM_MISSING}`);
}
// Each input file is mounted under its own prefix and named to the page by URL.
const mounts = {};
const files = {};
args.forEach((arg, i) => {
  if (FILE_OPTIONS.includes(arg) && i + 1 < args.length) {
    const path = resolve(args[i + 1]);
    if (!existsSync(path) || !statSync(path).isFile()) fail(`${arg}: no such file: ${args[i + 1]}`);
    const prefix = `/files/${Object.keys(mounts).length}/`;
    mounts[prefix] = dirname(path);
    files[args[i + 1]] = prefix + encodeURIComponent(basename(path));
  }
});

// Cross-origin isolated, as WebVM pages are: the page's clock then has 5 µs steps, not 100 µs.
const server = await startServer({ root, mounts, isolated: true });
const browser = await launchChromium();
let result;
try {
  const page = await browser.newPage();
  await page.goto(`${server.url}/scripts/browser-cli.html`);
  result = await page.evaluate(runInPage, { args, files });
} finally {
  await browser.close();
  await server.close();
}
if (result.stdout) process.stdout.write(result.stdout);
if (result.stderr) process.stderr.write(result.stderr);
process.exitCode = result.code;

function fail(message) {
  process.stderr.write(JSON.stringify({ code: 'invalid_options', message }) + '\n');
  process.exit(1);
}

/** In the page: fetches the files, then runs the CLI with an io over them. */
async function runInPage({ args, files }) {
  const { default: init, runCli } = await import('/pkg/echo_engine.js');
  await init();
  const contents = new Map();
  for (const [path, url] of Object.entries(files)) {
    const response = await fetch(url);
    contents.set(path, new Uint8Array(await response.arrayBuffer()));
  }
  const offsets = new Map();
  let stdout = '';
  let stderr = '';
  const io = {
    open(path) {
      if (!contents.has(path)) throw new Error('only the files named by --model, --vocab, --file, --json-schema, --lark, --gbnf and --memory-path can be read in the browser');
      offsets.set(path, 0);
      return contents.get(path).length;
    },
    seek(path, offset) {
      offsets.set(path, offset);
    },
    read(path, into) {
      const at = offsets.get(path);
      const chunk = contents.get(path).subarray(at, at + into.length);
      into.set(chunk);
      offsets.set(path, at + chunk.length);
      return chunk.length;
    },
    create() {
      throw new Error('commands that write files are not run in the browser');
    },
    append() {
      throw new Error('commands that write files are not run in the browser');
    },
    rename() {
      throw new Error('commands that write files are not run in the browser');
    },
    exists: (path) => contents.has(path),
    stdout(line) { stdout += line + '\n'; },
    stdoutRaw(text) { stdout += text; },
    stderr(line) { stderr += line + '\n'; },
    runtime: () => 'chromium',
  };
  const code = runCli(args, io);
  return { code, stdout, stderr };
}
