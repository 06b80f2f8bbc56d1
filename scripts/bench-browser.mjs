#!/usr/bin/env node
// `echo-engine bench` in a headless browser, for figures comparable with the native and Node runs:
//
//   node scripts/bench-browser.mjs --model M.bin [--browser chromium|firefox|webkit] [--isolated|--no-isolation]
//                                  [--threads N] [--decode 64] [--prompt 128] [--sample] …
//
// It prints the CLI's bench JSON as scripts/browser-cli.mjs runs it ("runtime": "chromium" or
// "firefox"), with more fields: `isolated` (the page was cross-origin isolated) and, with --model,
// `load_url_mb_per_s` and `load_url_ready_ms`: the model loaded the way a page loads it, by
// `EchoEngine.loadModel(url, { onProgress })` from this localhost server, in a fresh page after
// the bench (the CLI's own `load_mb_per_s` parses bytes already in memory); then
// `load_blob_mb_per_s` and `load_blob_ready_ms`, the same file loaded from a Blob (a file the user
// picked, or one the page already holds). A rate counts the bytes' phase (until progress says
// 'prepare'); ready_ms is the whole call, with the backend's start and warm-up. `--threads N` goes
// to the CLI as it is; a page that cannot run threads refuses it.
import { fail, PAGE, runInBrowser, runnerOptions } from './browser-cli.mjs';

const { browser, isolated, args } = runnerOptions(process.argv.slice(2));
const at = args.indexOf('--model');
const model = at >= 0 ? args[at + 1] : undefined;
if (at >= 0 && model === undefined) fail('--model: expected a file');

const result = await runInBrowser({ browser, isolated, args: ['bench', ...args] }, model && (async ({ browser, server, files }) => {
  const page = await browser.newPage();
  await page.goto(`${server.url}${PAGE}`);
  return page.evaluate(loadTimes, files[model]);
}));
if (result.stderr) process.stderr.write(result.stderr);
if (result.code !== 0) {
  process.exitCode = result.code;
} else {
  // Appended to the CLI's text, so its fields stay exactly as it printed them.
  const load = result.followUp;
  if (load?.error) fail(`loading ${model} failed: ${load.error}`);
  const fields = (name, l) => `,"load_${name}_mb_per_s":${(l.bytes / 1e6 / l.bytesSeconds).toFixed(1)},"load_${name}_ready_ms":${l.readyMs.toFixed(0)}`;
  const extra = `,"isolated":${result.isolated}` + (load ? fields('url', load.url) + fields('blob', load.blob) : '');
  process.stdout.write(result.stdout.replace(/}\s*$/, `${extra}}\n`));
}

/** In the page: loads the model at `url` into a new engine, then the same bytes from a Blob into
 * another; for each, its bytes, the seconds they took, and the milliseconds until the engine was
 * ready. */
async function loadTimes(url) {
  const { EchoEngine } = await import('/js/echo-engine.js');
  const timed = async (what, source) => {
    const engine = await EchoEngine.create();
    try {
      let last, bytesDone;
      const start = performance.now();
      await engine.loadModel(source, {
        onProgress: (p) => {
          last = p;
          if (p.phase === 'prepare') bytesDone ??= performance.now();
        },
      });
      const readyMs = performance.now() - start;
      if (last?.phase !== 'ready' || last.loaded !== last.total) throw new Error(`the last progress was ${JSON.stringify(last)}`);
      return { bytes: last.total, bytesSeconds: (bytesDone - start) / 1000, readyMs };
    } catch (e) {
      throw new Error(`from ${what}: ${e.code ?? ''} ${e.message}`);
    } finally {
      engine.terminate();
    }
  };
  try {
    const byUrl = await timed('its URL', url);
    const blob = await (await fetch(url)).blob();
    return { url: byUrl, blob: await timed('a Blob', blob) };
  } catch (e) {
    return { error: e.message };
  }
}
