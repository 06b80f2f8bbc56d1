// A worker script (`?worker=`, by default the engine's js/worker.js) whose pool threads hang ggml,
// then trap (tests/support/trapping-pool.mjs). Used by tests/browser/e2e.test.mjs and, around
// scripts/browser-cli-worker.js, by tests/browser/cli.test.mjs.
import { trappingPool } from '/tests/support/trapping-pool.mjs';

self.Worker = trappingPool(self.Worker);
// Messages that arrive while the script is fetched would find no handler: keep them for it.
const early = [];
self.onmessage = (e) => early.push(e);
await import(new URL(import.meta.url).searchParams.get('worker') ?? '/js/worker.js');
for (const e of early) self.onmessage(e);
