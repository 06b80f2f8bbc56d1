// The soak (scripts/soak-core.js) in each browser, shorter than Node's: 100 mixed requests with
// aborts, a reload and an oversized load on the demo model, in the page's engine (memories in
// IndexedDB): every request settles as expected, none is left pending or listening, and the
// memory in use less the bounded caches and the memories stays flat.
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
after(async () => server?.close());

describeInBrowsers({ server: () => server }, ({ name, skip, page }) => {
  test(`${name}: 100 mixed requests settle as expected, none pending, memory flat`, { skip }, async () => {
    const report = await page().evaluate(async (database) => {
      const { EchoEngine } = await import('/js/echo-engine.js');
      const { soak } = await import('/scripts/soak-core.js');
      const engine = await EchoEngine.create({ memoryDatabase: database });
      const result = await soak(engine, { requests: 100, seed: 3, load: () => engine.loadModel('/www/models/kjv-3m-Q8_0.bin') });
      engine.terminate();
      return result;
    }, `soak-${name}-${Date.now()}`);
    assert.deepEqual(report.failures, []);
    assert.deepEqual(report.checks, { everyRequestAsExpected: true, noPendingRequests: true, noAbortListenersLeft: true, flatMemory: true, flatWasmMemory: true });
    const total = Object.values(report.counts).flatMap((c) => Object.values(c)).reduce((a, b) => a + b, 0);
    assert.equal(total, 100);
    console.log(`FIGURE soak ${name}: 100 requests in ${report.seconds} s, growth ${report.growthMiB} MiB beyond caches and memories, ` +
      `wasm memory ${report.curve.at(-1).wasmMiB} MiB`);
  });
});
