// The engine's worker (browsers) with pool threads that hang ggml, then trap (tests/support/
// trapping-pool.mjs). Used by tests/browser/e2e.test.mjs.
import { trappingPool } from '/tests/support/trapping-pool.mjs';

self.Worker = trappingPool(self.Worker);
// Messages that arrive while worker.js is fetched would find no handler: keep them for it.
const early = [];
self.onmessage = (e) => early.push(e);
await import('/js/worker.js');
for (const e of early) self.onmessage(e);
