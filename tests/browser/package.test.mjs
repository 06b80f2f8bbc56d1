// The packed tarball in a page, as a newcomer would use it: installed into an empty project and
// imported by name through an import map, in each browser of browsers.mjs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { makeModels } from '../support/models.mjs';
import { installPacked } from '../support/package.mjs';
import { BROWSERS } from './browsers.mjs';
import { startServer } from '../../scripts/serve.mjs';

const PAGE = (model) => `<!doctype html>
<script type="importmap">{ "imports": { "echo-engine": "./node_modules/echo-engine/js/echo-engine.js" } }</script>
<script type="module">
  import { EchoEngine } from 'echo-engine';
  window.result = (async () => {
    const engine = await EchoEngine.create();
    await engine.loadModel(${JSON.stringify(model)});
    const { tokens, stopReason } = await engine.complete('Hello', { maxTokens: 8, seed: 1 });
    engine.terminate();
    return { tokens: tokens.length, stopReason };
  })();
</script>`;

let models;
let packed;
let server;

before(async () => {
  if (BROWSERS.every((b) => b.missing)) return;
  models = makeModels();
  packed = installPacked();
  writeFileSync(join(packed.app, 'index.html'), PAGE(`/models/${basename(models.tiny)}`));
  server = await startServer({ root: packed.app, mounts: { '/models/': models.dir } });
});

after(async () => {
  await server?.close();
  packed?.remove();
  models?.remove();
});

for (const { name, missing: skip, launch } of BROWSERS) {
  describe(name, () => {
    let browser;
    before(async () => {
      if (!skip) browser = await launch();
    });
    after(() => browser?.close());

    test(`${name}: a page imports the installed package by name through an import map and generates`, { skip }, async () => {
      const page = await browser.newPage();
      const errors = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${server.url}/index.html`);
      await page.waitForFunction(() => window.result !== undefined);
      assert.deepEqual(await page.evaluate(() => window.result), { tokens: 8, stopReason: 'length' });
      assert.deepEqual(errors, []);
      await page.close();
    });
  });
}
