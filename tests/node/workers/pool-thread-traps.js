// The engine's worker (Node) whose ggml pool threads take their work and never do it, then trap:
// the engine thread waits for them in ggml, deaf to messages, as it would behind a pool thread
// with a bug. Each pool thread is js/thread.js as it is, given tests/support/trapping-glue.mjs
// for the module's glue. Used by tests/node/threads.test.mjs.
import workerThreads from 'node:worker_threads';
import { syncBuiltinESMExports } from 'node:module';

const Worker = workerThreads.Worker;
workerThreads.Worker = class extends Worker {
  constructor(url, options) {
    super(url, options);
    if (!String(url).endsWith('/js/thread.js')) return;
    const post = this.postMessage.bind(this);
    this.postMessage = (msg) => {
      const glue = new URL('../../support/trapping-glue.mjs', import.meta.url);
      glue.searchParams.set('glue', msg.glue);
      post({ ...msg, glue: glue.href });
    };
  }
};
syncBuiltinESMExports();
await import('../../../js/worker.js');
