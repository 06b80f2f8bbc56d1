// The demo page (www/) in each browser of browsers.mjs, served by scripts/serve.mjs started
// in-process: once cross-origin isolated with every scenario, once plainly (load, status, chat,
// files, a slow download). The page is driven through the driver-neutral page API: what a user
// does is real input (click, fill, press); what the test reads, it reads from the DOM. Screenshots
// go to tests/browser/output/. The oversized model is a valid header claiming a huge model, then
// zeros.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { root } from '../support/models.mjs';
import { BROWSERS } from './browsers.mjs';
import { startServer } from '../../scripts/serve.mjs';

const OUTPUT = join(root, 'tests/browser/output');
const DEMO = '/models/kjv-3m-Q8_0.bin';
const DEMO_BYTES = statSync(join(root, 'www', DEMO)).size;
const HUGE = '/test-models/huge.bin';
const SLOW = '/models/kjv-3m-FP16.bin';
// Big enough that what a browser reads ahead before a cancel reaches its network layer is a small
// part of it: on loopback Chromium read under 2 MB, Firefox 3 MB, and up to 56 MB on a busy machine.
const HUGE_BYTES = 1024 * 1024 * 1024;
const CHECKPOINTS = join(root, 'tests/fixtures/checkpoints');
const DESKTOP = { width: 1280, height: 800 };
const MOBILE = { width: 375, height: 812 };
const XSS = '<img src=x onerror="window.__pwned=1">';

let extra;

before(() => {
  if (BROWSERS.every((b) => b.missing)) return;
  extra = mkdtempSync(join(tmpdir(), 'echo-demo-'));
  // The demo model's header (magic, version, vocabulary, width, layers, type) made to claim a
  // 65536 × 8192 × 64-layer FP16 model (gigabytes), followed by zeros (a sparse file).
  const header = Buffer.from(readFileSync(join(root, 'www', DEMO)).subarray(0, 24));
  header.writeUInt32LE(65536, 8);
  header.writeUInt32LE(8192, 12);
  header.writeUInt32LE(64, 16);
  header.writeUInt32LE(1, 20);
  const fd = openSync(join(extra, 'huge.bin'), 'w');
  writeSync(fd, header);
  ftruncateSync(fd, HUGE_BYTES);
  closeSync(fd);
  mkdirSync(OUTPUT, { recursive: true });
});

after(() => {
  if (extra) rmSync(extra, { recursive: true, force: true });
});

const isMonotonic = (xs) => xs.every((x, i) => i === 0 || x >= xs[i - 1]);
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// What the test reads from the page, by CSS selector.
const textOf = (page, selector) => page.evaluate((s) => document.querySelector(s).textContent, selector);
const count = (page, selector) => page.evaluate((s) => document.querySelectorAll(s).length, selector);
const inputValue = (page, selector) => page.evaluate((s) => document.querySelector(s).value, selector);
const attribute = (page, selector, name) => page.evaluate(([s, n]) => document.querySelector(s).getAttribute(n), [selector, name]);
const enabled = (page, selector) => page.evaluate((s) => !document.querySelector(s).disabled, selector);
const shown = (page, selector) => page.evaluate((s) => document.querySelector(s).getClientRects().length > 0, selector);
/** How many elements match `selector` with `part` in their text. */
const countWithText = (page, selector, part) => page.evaluate(([s, t]) => [...document.querySelectorAll(s)].filter((e) => e.textContent.includes(t)).length, [selector, part]);
const waitFor = (page, selector) => page.waitForFunction((s) => document.querySelector(s) !== null, selector);
const listsMemory = (page, t) => page.waitForFunction((m) => [...document.querySelectorAll('#memory-list .memory-text')].some((e) => e.textContent === m), t);

/** A fresh tab on the demo, its console errors and page errors collected in `errors`. */
async function openDemo(browser, server) {
  const page = await browser.newPage();
  const errors = [];
  page.on('console', (m) => m.type === 'error' && errors.push(m.text));
  page.on('pageerror', (e) => errors.push(e.message));
  await page.setViewportSize(DESKTOP);
  await page.goto(`${server.url}/`);
  await waitFor(page, 'body[data-engine="ready"]');
  return { page, errors };
}

async function reload(page) {
  await page.reload();
  await waitFor(page, 'body[data-engine="ready"]');
}

/** Presses a load button and waits for the load to settle; resolves to the page's message. */
async function load(page, press) {
  const before = await page.evaluate(() => Number(document.body.dataset.loadsSettled ?? 0));
  await press();
  await page.waitForFunction((n) => Number(document.body.dataset.loadsSettled ?? 0) > n, before);
  return textOf(page, '#load-message');
}

async function setSetting(page, id, value) {
  await page.evaluate(() => { document.getElementById('settings').open = true; });
  await page.fill(`#${id}`, String(value));
}

/**
 * Sends `text` in `mode`; with `whileRunning`, calls it once the answer is streaming. Resolves to
 * the answer's text, chunk count, stop reason, meta line and badge, plus the lengths its text had
 * at each change (to see it grow).
 */
async function send(page, text, { mode = 'chat', maxTokens, whileRunning } = {}) {
  await page.click(`input[name="mode"][value="${mode}"]`);
  if (maxTokens) await setSetting(page, 'max-tokens', maxTokens);
  const index = await count(page, '.msg.assistant');
  await page.evaluate((n) => {
    window.__lengths = [];
    new MutationObserver(() => {
      const answer = document.querySelectorAll('.msg.assistant .text')[n];
      if (answer) window.__lengths.push(answer.textContent.length);
    }).observe(document.getElementById('transcript'), { subtree: true, childList: true, characterData: true });
  }, index);
  await page.fill('#prompt', text);
  await page.press('#prompt', 'Enter');
  if (whileRunning) await whileRunning(index);
  await page.waitForFunction((n) => document.querySelectorAll('.msg.assistant')[n]?.dataset.stopReason, index, { timeout: 60_000 });
  await waitFor(page, 'body[data-generating="false"]');
  return page.evaluate((n) => {
    const msg = document.querySelectorAll('.msg.assistant')[n];
    return {
      text: msg.querySelector('.text').textContent,
      chunks: Number(msg.dataset.chunks),
      stopReason: msg.dataset.stopReason,
      meta: msg.querySelector('.meta').textContent,
      badge: msg.querySelector('.badge')?.textContent ?? null,
      error: msg.querySelector('.notice')?.textContent ?? null,
      lengths: window.__lengths,
    };
  }, index);
}

/** Full-page screenshots at desktop and mobile widths; asserts nothing overflows at 375 px. */
async function screenshots(page, name) {
  await page.screenshot(join(OUTPUT, `demo-${name}-desktop.png`));
  await page.setViewportSize(MOBILE);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await page.screenshot(join(OUTPUT, `demo-${name}-mobile.png`));
  await page.setViewportSize(DESKTOP);
  assert.ok(overflow <= 0, `the page is ${overflow} px wider than a 375 px screen`);
}

async function loadsWithStatus(browser, server, isolated) {
  const { page, errors } = await openDemo(browser, server);
  try {
    // The page's own headers, as the server sends them.
    const headers = await page.evaluate(async () => {
      const r = await fetch(location.href);
      return { csp: r.headers.get('content-security-policy'), coep: r.headers.get('cross-origin-embedder-policy') };
    });
    assert.match(headers.csp, /script-src 'self' 'wasm-unsafe-eval'/);
    assert.equal(headers.coep, isolated ? 'require-corp' : null);
    assert.equal(await page.evaluate(() => crossOriginIsolated), isolated);
    const status = await textOf(page, '#status-isolation');
    assert.match(status, isolated ? /^cross-origin isolated/ : /^not cross-origin isolated: single-threaded/);
    await page.waitForFunction(() => document.getElementById('memory-figures').textContent.includes('used'));
    await page.waitForFunction(() => document.getElementById('status-threads').textContent !== '…');
    const [cores, shared] = await page.evaluate(() => [navigator.hardwareConcurrency, typeof SharedArrayBuffer === 'function']);
    // The default: half the cores, 1 to 4, where threads can run (isolated, with shared memory:
    // WebKitGTK has none), else 1.
    const threads = isolated && shared ? Math.min(4, Math.max(1, Math.floor(cores / 2))) : 1;
    assert.match(await textOf(page, '#status-threads'), new RegExp(`^${threads} of ${cores} cores \\(${isolated && shared ? 'half the cores' : 'the single-threaded build'}`));
    if (isolated && !shared) assert.match(status, /no SharedArrayBuffer/);
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }
}

/** Loads the demo (recording the progress bar) and chats; returns what it saw. */
async function loadDemoAndChat(page) {
  await page.evaluate(() => {
    window.__progress = [];
    const bar = document.getElementById('load-progress');
    new MutationObserver(() => bar.dataset.loaded && window.__progress.push(Number(bar.dataset.loaded)))
      .observe(bar, { attributes: true, attributeFilter: ['data-loaded'] });
  });
  const message = await load(page, () => page.click('#load-demo'));
  assert.match(message, /^Loaded kjv-3m-Q8_0\.bin: v7 Q8_0/);
  const progress = await page.evaluate(() => window.__progress);
  assert.ok(progress.length >= 2, `progress: ${progress}`);
  assert.ok(isMonotonic(progress), `progress went back: ${progress}`);
  assert.equal(progress.at(-1), DEMO_BYTES);
  assert.match(await textOf(page, '#status-model'), /^v7, 4 layers, width 256, vocabulary 256 \(byte\), Q8_0/);

  const answer = await send(page, 'And God said', { maxTokens: 48 });
  assert.equal(answer.stopReason, 'length');
  assert.ok(answer.chunks > 1, `${answer.chunks} chunks`);
  const growing = new Set(answer.lengths.filter((n) => n > 0));
  assert.ok(growing.size > 1, `the answer did not grow in steps: ${answer.lengths}`);
  assert.ok(answer.text.length >= 10, answer.text);
  assert.match(answer.meta, /^token limit reached · 48 tokens at \d+ tokens\/s$/);
  await page.waitForFunction(() => /^1 request;/.test(document.getElementById('speed-summary').textContent));
}

for (const { name, missing: skip, launch, lacks } of BROWSERS) {
  const id = name.toLowerCase();
  const opfs = !lacks.includes('OPFS');
  // One browser for both servers, each describe opening its own tabs. Skipped test by test (not the
  // whole suite) so that the skips are counted and listed.
  describe(name, () => {
    let browser;
    before(async () => {
      if (!skip) browser = await launch();
    });
    after(() => browser?.close());

    describe(`${name}: demo page, cross-origin isolated`, () => {
      let server;
      let page;
      let errors;

      before(async () => {
        if (skip) return;
        server = await startServer({ port: 0, isolated: true, mounts: { '/test-models/': extra } });
        ({ page, errors } = await openDemo(browser, server));
      });
      after(async () => {
        await page?.close();
        await server?.close();
      });

      test(`${name}: loads with no console errors and says it is isolated`, { skip }, () => loadsWithStatus(browser, server, true));

      test(`${name}: the demo model loads with monotonic progress, then the answer streams in`, { skip }, async () => {
        await loadDemoAndChat(page);
        assert.ok(server.sentBytes(DEMO) >= DEMO_BYTES, 'the first load downloads the model');
        await screenshots(page, `${id}-chat`);
        assert.deepEqual(errors, []);
      });

      test(`${name}: Shift+Enter starts a new line without sending; every control has a label`, { skip }, async () => {
        const messages = await count(page, '.msg');
        await page.fill('#prompt', 'And God said');
        await page.press('#prompt', 'Shift+Enter');
        await page.type('#prompt', 'Let there be light');
        assert.equal(await inputValue(page, '#prompt'), 'And God said\nLet there be light');
        assert.equal(await count(page, '.msg'), messages);
        await page.fill('#prompt', '');
        const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, textarea, button, progress, meter, canvas')]
          .filter((e) => !(e.labels?.length || e.ariaLabel || e.getAttribute('aria-labelledby') || (e.tagName === 'BUTTON' && e.textContent.trim())))
          .map((e) => e.id || e.outerHTML.slice(0, 80)));
        assert.deepEqual(unlabelled, []);
      });

      test(`${name}: Stop ends a long generation (stopped, abort) and the next message is answered`, { skip }, async () => {
        const stopped = await send(page, 'And the LORD spake unto Moses, saying,', {
          maxTokens: 4000,
          whileRunning: async (n) => {
            await page.waitForFunction((i) => Number(document.querySelectorAll('.msg.assistant')[i]?.dataset.chunks) >= 5, n);
            assert.equal(await enabled(page, '#stop'), true);
            // Stop stays where it is while the answer grows (a moving button is hard to hit, and
            // the driver, like a person, waits for it to keep still).
            const top = () => page.evaluate(() => document.getElementById('stop').getBoundingClientRect().top);
            const before = await top();
            await page.waitForFunction((i) => Number(document.querySelectorAll('.msg.assistant')[i]?.dataset.chunks) >= 300, n);
            assert.equal(await top(), before);
            await page.click('#stop');
          },
        });
        assert.equal(stopped.stopReason, 'abort', `${stopped.meta} (${stopped.chunks} chunks)`);
        assert.match(stopped.meta, /^stopped · \d+ tokens/);
        assert.ok(stopped.chunks >= 5 && stopped.chunks < 4000, `${stopped.chunks} chunks`);
        assert.equal(await enabled(page, '#stop'), false);
        // Escape stops too.
        const escaped = await send(page, 'In the beginning', {
          maxTokens: 4000,
          whileRunning: async (n) => {
            await page.waitForFunction((i) => Number(document.querySelectorAll('.msg.assistant')[i]?.dataset.chunks) >= 5, n);
            await page.press('body', 'Escape');
          },
        });
        assert.equal(escaped.stopReason, 'abort');
        const next = await send(page, 'And Jesus answered', { maxTokens: 16 });
        assert.equal(next.stopReason, 'length');
        assert.ok(next.text.length > 0);
        assert.deepEqual(errors, []);
      });

      test(`${name}: structured mode: valid JSON with the badge; a broken schema shows the engine's reason`, { skip }, async () => {
        await page.click('#new-conversation');
        assert.equal(await count(page, '.msg'), 0);
        const r = await send(page, 'A man of Israel:', { mode: 'structured', maxTokens: 200 });
        assert.equal(r.stopReason, 'grammar', r.meta);
        assert.equal(r.badge, 'valid');
        const value = JSON.parse(r.text);
        assert.deepEqual(Object.keys(value).sort(), ['age', 'blessed', 'name']);
        assert.equal(typeof value.name, 'string');
        assert.ok(Number.isInteger(value.age) && value.age >= 0 && value.age <= 120, r.text);
        assert.equal(typeof value.blessed, 'boolean');
        assert.equal(r.text, JSON.stringify(value, null, 2), 'shown pretty-printed');

        const schema = await inputValue(page, '#schema');
        await page.fill('#schema', '{"type": "object", properties}');
        const bad = await send(page, 'A man:', { mode: 'structured' });
        assert.equal(bad.stopReason, 'error');
        assert.match(bad.error, /^The engine refused the request: .*JSON.*Correct it and send again\.$/);
        await page.fill('#schema', schema);
        assert.deepEqual(errors, []);
      });

      test(`${name}: cognitive mode fills the three membrane panels and streams the integrated answer`, { skip }, async () => {
        await setSetting(page, 'branches', 2);
        const r = await send(page, 'Moses went up into the mountain.', { mode: 'cognitive', maxTokens: 24 });
        assert.ok(['length', 'stop'].includes(r.stopReason), r.stopReason);
        assert.ok(r.text.trim().length > 0 && r.chunks > 1, `answer ${JSON.stringify(r.text)} in ${r.chunks} chunks`);
        assert.match(r.meta, /confidence \d\.\d\d/);
        for (const panel of ['memory', 'reasoning', 'grammar']) {
          assert.equal(await attribute(page, `#panel-${panel}`, 'data-filled'), 'true', panel);
        }
        assert.match(await textOf(page, '#panel-memory'), /stored as memory #\d+/);
        assert.equal(await count(page, '#panel-reasoning .branches li'), 2);
        assert.ok(await count(page, '#panel-reasoning .steps meter') >= 1);
        const grammar = await textOf(page, '#panel-grammar .facts');
        assert.match(grammar, /Sentence typestatement/);
        assert.match(grammar, /Words6/);
        assert.match(grammar, /LanguageEnglish/);
        // The statement was remembered: the memory browser lists it.
        await listsMemory(page, 'Moses went up into the mountain.');
        await screenshots(page, `${id}-cognitive`);
        assert.deepEqual(errors, []);
      });

      test(`${name}: a memory added survives a reload`, { skip }, async () => {
        const memory = `Lyon is where my sister lives (${Date.now()}).`;
        await page.fill('#memory-text', memory);
        await page.click('#memory-add button');
        await listsMemory(page, memory);
        await page.fill('#memory-query', 'Where does my sister live?');
        await page.click('#memory-search button');
        await waitFor(page, '#memory-hits li .scores');
        assert.match(await textOf(page, '#memory-hits li .scores'), /^score \d\.\d\d · cosine -?\d\.\d\d · lexical \d\.\d\d$/);

        await reload(page);
        assert.equal(await count(page, '#memory-list li'), 0, 'no list before a model is loaded');
        await load(page, () => page.click('#load-demo'));
        await listsMemory(page, memory);
        assert.equal(await shown(page, '#memories-notice'), false, 'persistence works: no notice');

        // Delete forgets it, for good.
        const label = await page.evaluate((m) => [...document.querySelectorAll('#memory-list li')]
          .find((li) => li.querySelector('.memory-text').textContent === m).querySelector('button').getAttribute('aria-label'), memory);
        await page.click(`#memory-list button[aria-label="${label}"]`);
        await page.waitForFunction((m) => ![...document.querySelectorAll('#memory-list .memory-text')].some((e) => e.textContent === m), memory);
        assert.deepEqual(errors, []);
      });

      test(`${name}: ${opfs ? 'a kept model loads from the browser cache with no byte from the server' : 'with no OPFS the page says models are not kept, and a load downloads again'}`, { skip }, async () => {
        const sent = server.sentBytes(DEMO);
        assert.ok(sent >= DEMO_BYTES);
        await reload(page);
        if (!opfs) {
          assert.match(await textOf(page, '#cache-empty'), /no Origin Private File System, so models are not kept/);
          assert.equal(await count(page, '#cache-list li'), 0);
          assert.match(await load(page, () => page.click('#load-demo')), /^Loaded kjv-3m-Q8_0\.bin/);
          assert.equal(server.sentBytes(DEMO), sent + DEMO_BYTES);
          assert.deepEqual(errors, []);
          return;
        }
        const item = '#cache-list li[data-name="kjv-3m-Q8_0.bin"]';
        await waitFor(page, item);
        assert.match(await textOf(page, item), /kjv-3m-Q8_0\.bin3\.8 MiB/);
        const message = await load(page, () => page.click(`${item} button[aria-label="Load kjv-3m-Q8_0.bin"]`));
        assert.match(message, /^Loaded kjv-3m-Q8_0\.bin/);
        assert.equal(server.sentBytes(DEMO), sent, 'the cached model was downloaded again');
        assert.equal(await attribute(page, 'body', 'data-model'), 'ready');
        assert.deepEqual(errors, []);
      });

      test(`${name}: text from a visitor, a memory or the model is never HTML`, { skip }, async () => {
        await page.fill('#memory-text', XSS);
        await page.click('#memory-add button');
        await listsMemory(page, XSS);
        const echoed = await send(page, XSS, { maxTokens: 8 });
        assert.equal(echoed.stopReason, 'length');
        // Recalled into the memory membrane, next to the input echoed in the transcript.
        await send(page, XSS, { mode: 'cognitive', maxTokens: 8 });
        await sleep(300);
        assert.equal(await page.evaluate(() => window.__pwned), undefined);
        // The CSP would stop the handler anyway: the markup must not even become elements.
        assert.equal(await count(page, 'main img'), 0);
        assert.ok(await countWithText(page, '#transcript .msg.user .text', XSS) >= 2);
        assert.ok(await countWithText(page, '#panel-memory .memory-text', XSS) >= 1);
        assert.deepEqual(errors, []);
      });

      test(`${name}: a model too large for the cap is refused before it downloads`, { skip }, async () => {
        await page.fill('#model-url', HUGE);
        const message = await load(page, () => page.click('#url-form button'));
        assert.match(message, /^This model needs [\d.]+ GiB of memory, but the engine may use at most 600\.0 MiB, so it was not downloaded\./);
        await sleep(300);
        const sent = server.sentBytes(HUGE);
        assert.ok(sent < HUGE_BYTES / 8, `the server sent ${sent} of ${HUGE_BYTES} bytes`);
        console.log(`FIGURE demo ${id}: refused a ${HUGE_BYTES / 2 ** 20} MiB model after the server sent ${(sent / 2 ** 20).toFixed(2)} MiB`);
        assert.equal(await count(page, '#cache-list li[data-name="huge.bin"]'), 0, 'no partial file kept');
        assert.deepEqual(errors, []);
      });
    });

    describe(`${name}: demo page, not isolated`, () => {
      let server;
      let page;
      let errors;
      before(async () => {
        if (skip) return;
        // 7 MB at 1 MB/s: time enough to see the figures of a slow download and press Cancel.
        server = await startServer({ port: 0, isolated: false, mounts: { '/checkpoints/': CHECKPOINTS }, slow: { [SLOW]: 1e6 } });
      });
      after(async () => {
        await page?.close();
        await server?.close();
      });

      test(`${name}: loads with no console errors and says it is single-threaded`, { skip }, () => loadsWithStatus(browser, server, false));

      test(`${name}: the demo model loads and chats without isolation`, { skip }, async () => {
        ({ page, errors } = await openDemo(browser, server));
        await loadDemoAndChat(page);
        assert.deepEqual(errors, []);
      });

      // Here, where no memory is stored yet: loading a model re-embeds the stored memories, and the
      // engine cannot with a 64-token vocabulary (the checkpoint fixtures'), so the load would fail.
      test(`${name}: a picked checkpoint is converted, ${opfs ? 'kept ' : ''}and loaded; a dropped .bin loads as it is`, { skip }, async () => {
        const message = await load(page, () => page.setInputFiles('#model-file', join(CHECKPOINTS, 'v7.pth')));
        assert.match(message, /^Loaded v7-FP16\.bin: v7 FP16/);
        if (opfs) {
          // The converter's file is rwkv.cpp's, byte for byte: the same size is kept.
          const kept = await page.evaluate(async () => {
            const models = await (await navigator.storage.getDirectory()).getDirectoryHandle('models');
            return (await (await models.getFileHandle('v7-FP16.bin')).getFile()).size;
          });
          assert.equal(kept, statSync(join(CHECKPOINTS, 'v7-FP16.bin')).size);
        }
        assert.equal(await count(page, '#cache-list li[data-name="v7-FP16.bin"]'), opfs ? 1 : 0);

        // A drop as the browser dispatches it (no driver drags a file from outside the page).
        const dropped = await load(page, () => page.evaluate(async () => {
          const transfer = new DataTransfer();
          const bytes = await (await fetch('/checkpoints/v6-FP16.bin')).arrayBuffer();
          transfer.items.add(new File([bytes], 'v6-FP16.bin'));
          document.getElementById('drop-zone').dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true, composed: true }));
        }));
        assert.match(dropped, /^Loaded v6-FP16\.bin: v6 FP16/);
        assert.match(await textOf(page, '#status-model'), /^v6, /);

        // Delete removes a kept model.
        if (opfs) {
          await page.click('#cache-list button[aria-label="Delete v7-FP16.bin"]');
          await page.waitForFunction(() => !document.querySelector('#cache-list li[data-name="v7-FP16.bin"]'));
        }
        assert.deepEqual(errors, []);
      });


      test(`${name}: a slow download shows MB/s and time left, and Cancel stops it and keeps no file`, { skip }, async () => {
        await page.fill('#model-url', SLOW);
        const message = await load(page, async () => {
          await page.click('#url-form button');
          await page.waitForFunction(() => Number(document.getElementById('load-progress').dataset.loaded) > 0);
          assert.match(await textOf(page, '#load-figures'), /^[\d.]+ (KiB|MiB) of 6\.6 MiB · [\d.]+ MB\/s · [\d.]+ s left$/);
          await page.click('#load-cancel');
        });
        assert.equal(message, 'Loading was cancelled.');
        assert.ok(server.sentBytes(SLOW) < statSync(join(root, 'www', SLOW)).size, 'the whole file was sent despite the cancel');
        assert.equal(await count(page, '#cache-list li[data-name="kjv-3m-FP16.bin"]'), 0, 'no partial file kept');
        assert.equal(await shown(page, '#load-progress-box'), false);
        assert.deepEqual(errors, []);
      });

      test(`${name}: a missing model and another site's URL are explained`, { skip }, async () => {
        await page.fill('#model-url', '/models/no-such-model.bin');
        assert.equal(await load(page, () => page.click('#url-form button')),
          'The server answered HTTP 404 for that model. Check the address and try again.');
        await page.fill('#model-url', 'https://example.com/model.bin');
        assert.match(await load(page, () => page.click('#url-form button')),
          /^The model could not be read \(https:\/\/example\.com\/model\.bin is on another site, .*\)\. Check the address/);
        // Chromium logs the 404 response itself; nothing else may be logged.
        assert.deepEqual(errors.filter((e) => !/status of 404/.test(e)), []);
      });
    });
  });
}
