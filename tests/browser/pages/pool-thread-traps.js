// The engine's worker (browsers) whose ggml pool threads take their work and never do it, then
// trap, as tests/node/workers/pool-thread-traps.js does in Node: each pool thread is js/thread.js
// as it is, given tests/support/trapping-glue.mjs for the module's glue.
const Worker = self.Worker;
self.Worker = class extends Worker {
  constructor(url, options) {
    super(url, options);
    if (!String(url).endsWith('/js/thread.js')) return;
    const post = this.postMessage.bind(this);
    this.postMessage = (msg) => {
      const glue = new URL('/tests/support/trapping-glue.mjs', self.location.href);
      glue.searchParams.set('glue', msg.glue);
      post({ ...msg, glue: glue.href });
    };
  }
};
// Messages that arrive while worker.js is fetched would find no handler: keep them for it.
const early = [];
self.onmessage = (e) => early.push(e);
await import('/js/worker.js');
for (const e of early) self.onmessage(e);
