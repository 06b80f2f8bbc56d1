#!/usr/bin/env node
// Runs one echo-engine CLI command in a headless browser, on the same wasm package and the same
// CLI code as `bin/echo-engine.mjs` runs on Node.js, and prints what it prints: so `bench` and
// `generate --json` give JSON comparable with the native and Node runs ("runtime": "chromium" or
// "firefox").
//
//   node scripts/browser-cli.mjs [--browser chromium|firefox|webkit] [--isolated|--no-isolation] <command> …
//   node scripts/browser-cli.mjs bench --model M.bin [--sample] …
//   node scripts/browser-cli.mjs --browser firefox generate --model M.bin --prompt "…" --json
//
// The browsers are those of tests/browser/browsers.mjs (Debian's chromium through playwright-core,
// firefox-esr through geckodriver). The page is cross-origin isolated unless --no-isolation.
// The files the command reads (--model, --vocab, --file, --memory-path and the grammar files) are
// served from localhost and fetched whole before the command runs, in a worker of the page
// (browser-cli-worker.js); other files cannot be read, nor written. scripts/bench-browser.mjs builds on
// `runInBrowser`.
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './serve.mjs';
import { BROWSERS } from '../tests/browser/browsers.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const FILE_OPTIONS = ['--model', '--vocab', '--file', '--json-schema', '--lark', '--gbnf', '--memory-path'];
/** The page every command runs in (blank: the command imports the package itself). */
export const PAGE = '/scripts/browser-cli.html';

/** Prints an error as the CLI does (one JSON line on stderr) and exits with 1. */
export function fail(message) {
  process.stderr.write(JSON.stringify({ code: 'invalid_options', message }) + '\n');
  process.exit(1);
}

/**
 * Takes this runner's own options (anywhere in `argv`: the CLI has none of these names) from the
 * command's: `{ browser, isolated, args }`, `browser` being an entry of BROWSERS.
 */
export function runnerOptions(argv) {
  let id = 'chromium';
  let isolated = true;
  const args = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--browser') id = argv[++i];
    else if (argv[i] === '--isolated') isolated = true;
    else if (argv[i] === '--no-isolation') isolated = false;
    else args.push(argv[i]);
  }
  const ids = BROWSERS.map((b) => b.name.toLowerCase());
  const browser = BROWSERS.find((b) => b.name.toLowerCase() === id);
  if (!browser) fail(`--browser: expected one of ${ids.join(', ')}, got ${id}`);
  if (browser.missing) fail(`cannot run in ${browser.name}: ${browser.missing}`);
  return { browser, isolated, args };
}

/**
 * Runs the CLI with `args` in a page of `browser`; resolves with `{ code, stdout, stderr,
 * isolated }` (`isolated`: the page was cross-origin isolated). When the command succeeds,
 * `followUp({ browser, server, files })` runs next on the same browser and server (`files`: each
 * file argument → its URL there), and the result's `followUp` is its value. `workerUrl` is the
 * script the page runs the command in (a test's wrapper of browser-cli-worker.js).
 */
export async function runInBrowser({ browser, isolated, args, workerUrl = '/scripts/browser-cli-worker.js' }, followUp) {
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

  // Cross-origin isolated by default, as WebVM pages are: the page's clock then has 5 µs steps in
  // Chromium and 20 µs in Firefox (not 100 µs and 1 ms), and SharedArrayBuffer exists.
  const server = await startServer({ root, mounts, isolated });
  let session;
  try {
    session = await browser.launch();
    const page = await session.newPage();
    await page.goto(`${server.url}${PAGE}`);
    const result = await page.evaluate(runInPage, { args, files, runtime: browser.name.toLowerCase(), workerUrl });
    await page.close();
    if (followUp && result.code === 0) result.followUp = await followUp({ browser: session, server, files });
    return result;
  } finally {
    await session?.close();
    await server.close();
  }
}

/**
 * In the page: runs the CLI in a worker (browser-cli-worker.js), which fetches the files. A pool
 * thread that traps leaves that worker waiting in ggml for good: the thread says so on a
 * BroadcastChannel, and the command ends with the Node CLI's worker_crashed line.
 */
async function runInPage({ args, files, runtime, workerUrl }) {
  const isolated = globalThis.crossOriginIsolated;
  const threads = args.indexOf('--threads');
  if (threads >= 0 && Number(args[threads + 1]) > 1 && !isolated) {
    // Checked here, where it is known: wasm threads share memory, which needs SharedArrayBuffer.
    const message = `--threads ${args[threads + 1]}: wasm threads need SharedArrayBuffer, which this page lacks (not cross-origin isolated: drop --no-isolation)`;
    return { code: 1, stdout: '', stderr: JSON.stringify({ code: 'invalid_options', message }) + '\n', isolated };
  }
  const worker = new Worker(workerUrl, { type: 'module' });
  const crashChannel = `echo-cli-crash-${crypto.randomUUID()}`;
  const crashes = new BroadcastChannel(crashChannel);
  try {
    const result = await new Promise((resolve, reject) => {
      worker.onmessage = (e) => resolve(e.data);
      worker.onerror = (e) => reject(new Error(`the CLI's worker failed: ${e.message}`));
      crashes.onmessage = (e) => resolve({ code: 1, stdout: '', stderr: JSON.stringify({ code: 'worker_crashed', message: e.data }) + '\n' });
      worker.postMessage({ args, files, runtime, crashChannel });
    });
    return { ...result, isolated };
  } finally {
    crashes.close();
    worker.terminate();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === normalize(process.argv[1])) {
  const result = await runInBrowser(runnerOptions(process.argv.slice(2)));
  if (result.stdout) process.stdout.write(result.stdout);
  if (result.stderr) process.stderr.write(result.stderr);
  process.exitCode = result.code;
}
