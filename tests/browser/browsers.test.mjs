// The driver-neutral page API of browsers.mjs behaves the same in each browser: what evaluate
// hands back (including what JSON alone would change), an exception in the page, waitForFunction,
// page errors and console errors, reload.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
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
