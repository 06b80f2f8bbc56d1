// The engine's worker in a browser whose storage quota is exhausted: every IndexedDB put throws
// QuotaExceededError, as Chromium's does when an origin is over its quota. Used by
// tests/browser/membranes.test.mjs (as `workerUrl`) to check storage_failed and the fallback to
// memory only.
IDBObjectStore.prototype.put = function put() {
  throw new DOMException('quota', 'QuotaExceededError');
};
// Messages that arrive while worker.js is fetched would find no handler and be lost (the
// engine's `create` is sent at once): keep them, and hand them to worker.js's handler.
const early = [];
self.onmessage = (e) => early.push(e);
await import('/js/worker.js');
for (const e of early) self.onmessage(e);
