// The two wasm builds, instantiated the same way by the engine's worker, the Node CLI and the
// browser CLI: pkg/ (one thread) and pkg-threads/ (shared memory), whose ggml threads are pool
// workers (thread.js) parked on the module's memory.
const isNode = typeof process === 'object' && Boolean(process.versions?.node);

/**
 * Why the threaded build cannot run here, or null: its memory is shared with its workers, which
 * browsers allow only on cross-origin isolated pages, and some (WebKitGTK) not even there.
 */
export function noSharedMemory() {
  if (isNode) return null;
  if (!globalThis.crossOriginIsolated) return 'the page is not cross-origin isolated (COOP/COEP), so it has no shared memory';
  if (typeof SharedArrayBuffer !== 'function') return 'this browser has no SharedArrayBuffer, so no shared memory, although the page is cross-origin isolated';
  return null;
}

/** Imports and instantiates the build in `dir` (relative to this file): its exports, its compiled module and its glue's URL. */
export async function instantiate(dir) {
  const url = new URL(dir, import.meta.url);
  const glueUrl = new URL('echo_engine.js', url).href;
  const exports = await import(glueUrl);
  const wasmUrl = new URL('echo_engine_bg.wasm', url);
  const bytes = isNode ? await (await import('node:fs/promises')).readFile(wasmUrl) : await (await fetch(wasmUrl)).arrayBuffer();
  const module = await WebAssembly.compile(bytes);
  await exports.default({ module_or_path: module });
  return { ...exports, module, glueUrl };
}

/**
 * Starts `n` ggml pool threads on the threaded build `build` and waits until each is parked:
 * ggml cannot start a thread once it computes (its caller blocks the event loop a worker needs
 * to start). The thread waiting in ggml for one that traps cannot hear it, so the thread says
 * so itself: on the BroadcastChannel `crashChannel` (EchoEngine), or with `exitProcess` (the
 * Node CLI) as an error line on stderr before it ends the process.
 * @param {{ crashChannel?: string, exitProcess?: boolean }} [onTrap]
 */
export async function startPool(build, n, { crashChannel, exitProcess } = {}) {
  const memory = build.threadMemory();
  const url = new URL('./thread.js', import.meta.url);
  const { Worker } = isNode ? await import('node:worker_threads') : globalThis;
  const workers = [];
  try {
    await Promise.all(Array.from({ length: n }, () => new Promise((resolve, reject) => {
      const w = isNode ? new Worker(url) : new Worker(url, { type: 'module' });
      workers.push(w);
      if (isNode) w.unref(); // parked for good: it must not keep Node running
      const on = (type, f) => (isNode ? w.once(type, f) : w.addEventListener(type, f, { once: true }));
      on('message', resolve);
      on('error', (e) => reject(new Error(e?.message ?? 'a pool thread failed to start')));
      w.postMessage({ glue: build.glueUrl, module: build.module, memory, crashChannel, exitProcess });
    })));
  } catch (e) {
    // The engine goes on with one thread: the threads that did start would stay parked for good.
    for (const w of workers) w.terminate();
    throw e;
  }
}
