// The engine's worker where IndexedDB does not exist (some private modes, embedded webviews):
// used by tests/browser/membranes.test.mjs (as `workerUrl`) to check that nothing throws and
// memories() says persistent: false with a storage_failed storageError.
Object.defineProperty(self, 'indexedDB', { value: undefined, configurable: true });
// Messages that arrive while worker.js is fetched would be lost: see quota-worker.js.
const early = [];
self.onmessage = (e) => early.push(e);
await import('/js/worker.js');
for (const e of early) self.onmessage(e);
