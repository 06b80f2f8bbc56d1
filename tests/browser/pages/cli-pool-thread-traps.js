// scripts/browser-cli-worker.js with pool threads that hang ggml, then trap (tests/support/
// trapping-pool.mjs). Used by tests/browser/cli.test.mjs.
import { trappingPool } from '/tests/support/trapping-pool.mjs';

self.Worker = trappingPool(self.Worker);
// Messages that arrive while the CLI's worker is fetched would find no handler: keep them for it.
const early = [];
self.onmessage = (e) => early.push(e);
await import('/scripts/browser-cli-worker.js');
for (const e of early) self.onmessage(e);
