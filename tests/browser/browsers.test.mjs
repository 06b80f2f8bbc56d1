// The driver-neutral page API of browsers.mjs behaves the same in each browser: what evaluate
// hands back (including what JSON alone would change), an exception in the page, waitForFunction,
// page errors and console errors, reload, and input as a user gives it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { root } from '../support/models.mjs';
import { BROWSERS, describeInBrowsers } from './browsers.mjs';
import { startServer } from '../../scripts/serve.mjs';

let server;

before(async () => {
  if (BROWSERS.every((b) => b.missing)) return;
  server = await startServer({ root });
});

after(async () => {
  await server?.close();
});

describeInBrowsers({ server: () => server }, ({ name, skip, page: opened }) => {
  let page;
  const errors = [];
  const consoleErrors = [];
  before(() => {
    if (skip) return;
    page = opened();
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type === 'error' && consoleErrors.push(m.text));
  });

  test(`${name}: evaluate passes its argument and returns plain data, undefined, NaN, ±Infinity and -0 included`, { skip }, async () => {
    const arg = { a: [1, 'two', null, true], b: { c: 'é\u0000"' } };
    const r = await page.evaluate(async (x) => ({
      echo: x,
      u: undefined,
      list: [1, undefined, NaN, Infinity, -Infinity, -0],
      sum: x.a[0] + 41,
    }), arg);
    assert.deepEqual(r, { echo: arg, u: undefined, list: [1, undefined, NaN, Infinity, -Infinity, -0], sum: 42 });
    assert.ok('u' in r);
    assert.ok(Object.is(r.list[5], -0));
    assert.equal(await page.evaluate(() => undefined), undefined);
  });

  test(`${name}: an exception in the page rejects evaluate with its message`, { skip }, async () => {
    await assert.rejects(page.evaluate(async () => { throw new Error('thrown in the page'); }), /thrown in the page/);
    // The page is still usable.
    assert.equal(await page.evaluate((n) => n * 2, 21), 42);
  });

  test(`${name}: waitForFunction waits for the page, then gives up after its timeout`, { skip }, async () => {
    await page.evaluate(() => { setTimeout(() => { window.flag = 'set'; }, 300); });
    await page.waitForFunction((v) => window.flag === v, 'set');
    await assert.rejects(page.waitForFunction(() => window.never === true, undefined, { timeout: 500 }));
  });

  test(`${name}: click, fill, press, type and setInputFiles act as a user would; the viewport is set; a screenshot is a PNG`, { skip }, async () => {
    await page.evaluate(() => {
      document.body.insertAdjacentHTML('beforeend', '<div style="height: 3000px"></div><textarea id="t"></textarea><button id="b">b</button><input id="f" type="file">');
      window.seen = [];
      const t = document.getElementById('t');
      document.getElementById('b').addEventListener('click', (e) => window.seen.push(`click ${e.isTrusted}`));
      t.addEventListener('input', () => window.seen.push('input'));
      t.addEventListener('keydown', (e) => window.seen.push(`key ${e.key}${e.shiftKey ? '+shift' : ''} ${e.isTrusted}`));
      document.getElementById('f').addEventListener('change', (e) => window.seen.push(`file ${e.target.files[0].name} ${e.target.files[0].size}`));
    });
    await page.click('#b');
    await page.fill('#t', 'first');
    await page.press('#t', 'Shift+Enter');
    await page.type('#t', 'ab');
    await page.press('#t', 'Escape');
    await page.setInputFiles('#f', join(root, 'package.json'));
    const r = await page.evaluate(() => ({ seen: window.seen, value: document.getElementById('t').value }));
    assert.equal(r.value, 'first\nab');
    assert.equal(r.seen[0], 'click true', 'the button was clicked below the fold, by a trusted event');
    assert.ok(r.seen.includes('input'));
    for (const key of ['key Enter+shift true', 'key a true', 'key b true', 'key Escape true']) assert.ok(r.seen.includes(key), `${key}: ${r.seen}`);
    assert.ok(r.seen.includes(`file package.json ${statSync(join(root, 'package.json')).size}`), String(r.seen));

    await page.setViewportSize({ width: 375, height: 600 });
    assert.equal(await page.evaluate(() => window.innerWidth), 375);
    const shot = join(mkdtempSync(join(tmpdir(), 'echo-shot-')), 'page.png');
    await page.screenshot(shot);
    const png = readFileSync(shot);
    assert.deepEqual([...png.subarray(1, 4)], [...Buffer.from('PNG')]);
    // Full page: as tall as the document (PNG's height, big-endian at byte 20), not the viewport.
    assert.ok(png.readUInt32BE(20) >= 3000, `${png.readUInt32BE(20)} px high`);
    rmSync(dirname(shot), { recursive: true });
  });

  test(`${name}: uncaught errors and console errors of the page are reported; reload gives a new document`, { skip }, async () => {
    await page.evaluate(() => {
      setTimeout(() => { throw new Error('uncaught in the page'); }, 0);
      console.error('logged as an error');
      window.before = true;
    });
    const until = Date.now() + 10000;
    while ((!errors.some((m) => m.includes('uncaught in the page')) || !consoleErrors.includes('logged as an error')) && Date.now() < until) {
      await new Promise((ok) => setTimeout(ok, 50));
    }
    assert.ok(errors.some((m) => m.includes('uncaught in the page')), JSON.stringify(errors));
    assert.ok(consoleErrors.includes('logged as an error'), JSON.stringify(consoleErrors));
    await page.reload();
    assert.equal(await page.evaluate(() => window.before), undefined);
  });
});
