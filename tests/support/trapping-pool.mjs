// A Worker class (Node's or the browser's) whose ggml pool threads — js/thread.js as it is — get
// trapping-glue.mjs for the module's glue: they take ggml's work, never do it, then trap. The
// engine's worker then waits for them in ggml, deaf to messages, as behind a pool thread with a
// bug. Used by tests/node/workers/pool-thread-traps.js and tests/browser/pages/pool-thread-traps.js.
export function trappingPool(Worker) {
  return class extends Worker {
    constructor(url, options) {
      super(url, options);
      if (!String(url).endsWith('/js/thread.js')) return;
      const post = this.postMessage.bind(this);
      this.postMessage = (msg) => {
        const glue = new URL('./trapping-glue.mjs', import.meta.url);
        glue.searchParams.set('glue', msg.glue);
        post({ ...msg, glue: glue.href });
      };
    }
  };
}
