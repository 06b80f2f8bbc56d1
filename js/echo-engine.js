// `EchoEngine`: the main-thread side of the engine, a thin typed proxy to its worker
// (`worker.js`), so inference never blocks the page. Requests are answered in order; bytes cross
// by transfer, not by copy; if the worker dies, every pending and later call rejects with
// `worker_crashed` and a new engine can be created.

import { noSharedMemory } from './builds.js';

const isNode = typeof window === 'undefined' && typeof process !== 'undefined' && !!process.versions?.node;

export class EchoError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{neededBytes?: number, limitBytes?: number, status?: number, memoryId?: number}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message);
    this.name = 'EchoError';
    this.code = code;
    for (const k of ['neededBytes', 'limitBytes', 'status', 'memoryId', 'restarting']) if (extra[k] !== undefined) this[k] = extra[k];
  }
}

/**
 * Half the cores, 1 to 4, where the threaded build can run: ggml's threads spin at every barrier,
 * so they must not crowd out the page and the rest of the machine (one spare core each).
 */
async function defaultThreads() {
  if (noSharedMemory()) return 1;
  const cores = isNode ? (await import('node:os')).availableParallelism() : navigator.hardwareConcurrency || 1;
  return Math.min(4, Math.max(1, Math.floor(cores / 2)));
}

/** The browser's Worker or Node's worker_threads Worker, behind one small interface. */
async function spawnWorker(url) {
  if (isNode) {
    const { Worker } = await import('node:worker_threads');
    // Not the parent's execArgv (the default): flags such as --input-type or -e are refused by
    // a worker, and the engine needs none.
    const w = new Worker(url, { execArgv: [] });
    return {
      post: (msg, transfer) => w.postMessage(msg, transfer),
      onMessage: (fn) => w.on('message', fn),
      onCrash: (fn) => {
        w.on('error', (e) => fn(e.message));
        w.on('exit', (code) => fn(`the worker exited with code ${code}`));
      },
      terminate: () => w.terminate(),
    };
  }
  const w = new Worker(url, { type: 'module' });
  return {
    post: (msg, transfer) => w.postMessage(msg, transfer),
    onMessage: (fn) => w.addEventListener('message', (e) => fn(e.data)),
    onCrash: (fn) => {
      w.addEventListener('error', (e) => fn(e.message || 'the worker failed to start or threw'));
      w.addEventListener('messageerror', () => fn('a message from the worker could not be read'));
    },
    terminate: () => w.terminate(),
  };
}

/** A source as the worker takes it, plus what to transfer. */
async function describeSource(source) {
  if (typeof source === 'string') {
    if (isNode && !/^[a-z][a-z0-9+.-]*:/i.test(source)) return [{ path: source }, []];
    try {
      source = new URL(source, globalThis.location?.href);
    } catch {
      throw new EchoError('invalid_options', `'${source}' is not a valid URL`);
    }
  }
  if (source instanceof URL) {
    if (isNode && source.protocol === 'file:') {
      const { fileURLToPath } = await import('node:url');
      return [{ path: fileURLToPath(source) }, []];
    }
    return [{ url: source.href }, []];
  }
  if (typeof Blob !== 'undefined' && source instanceof Blob) return [{ blob: source }, []];
  if (typeof ReadableStream !== 'undefined' && source instanceof ReadableStream) {
    if (source.locked) throw new EchoError('invalid_options', 'the stream is locked (already being read): pass an unread stream');
    if (streamsTransfer()) return [{ stream: source }, [source]];
    const { port1, port2 } = new MessageChannel();
    serveStream(source, port1);
    return [{ port: port2 }, [port2]];
  }
  if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
    const [bytes, transfer] = ownedBytes(source);
    return [{ bytes }, transfer];
  }
  throw new EchoError('invalid_options', 'the source must be a URL, a Blob or File, an ArrayBuffer, a Uint8Array, a ReadableStream or (in Node) a file path');
}

/** Whether a ReadableStream can be transferred to a worker (Safari and WebKitGTK cannot). */
let canTransferStreams;
function streamsTransfer() {
  if (canTransferStreams === undefined) {
    const { port1, port2 } = new MessageChannel();
    try {
      const stream = new ReadableStream();
      port1.postMessage(stream, [stream]);
      canTransferStreams = true;
    } catch {
      canTransferStreams = false;
    } finally {
      port1.close();
      port2.close();
    }
  }
  return canTransferStreams;
}

/**
 * Where a stream cannot be transferred, the worker reads it over `port` (sources.js `portStream`):
 * a chunk per request, so the page reads no further ahead than the worker, and a cancel from the
 * worker (an abort, a refused model) cancels the stream.
 */
function serveStream(stream, port) {
  const reader = stream.getReader();
  port.onmessage = async ({ data }) => {
    if (data === 'cancel') {
      port.close();
      await reader.cancel().catch(() => {});
      return;
    }
    try {
      const { done, value } = await reader.read();
      if (done) port.postMessage({ done });
      else if (!(value instanceof Uint8Array)) port.postMessage({ chunk: Object.prototype.toString.call(value) }); // refused there
      else {
        const [chunk, transfer] = ownedBytes(value);
        port.postMessage({ chunk }, transfer);
      }
    } catch (e) {
      port.postMessage({ error: String(e?.message ?? e) });
    }
  };
}

/**
 * Bytes for the worker to own, and what to transfer: a whole ArrayBuffer moves (and is detached);
 * part of one, or shared memory, is copied once and the copy moves.
 */
function ownedBytes(source) {
  const view = source instanceof ArrayBuffer ? new Uint8Array(source) : new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  const whole = view.buffer instanceof ArrayBuffer && view.byteOffset === 0 && view.byteLength === view.buffer.byteLength;
  const owned = whole ? view : view.slice();
  return [owned, [owned.buffer]];
}

/** Token ids as a plain array, checked here: a wrong type must not reach the worker. */
function tokenIds(ids) {
  const list = Array.from(ids ?? []);
  if (!list.every((t) => Number.isInteger(t) && t >= 0 && t <= 0xffffffff)) {
    throw new EchoError('invalid_options', 'token ids must be whole numbers from 0 to 4294967295');
  }
  return list;
}

/** A value as JSON text (the worker hands it to Rust); `invalid_options` if it has none. */
function jsonText(value) {
  let json;
  try {
    json = JSON.stringify(value ?? null);
  } catch (e) {
    throw new EchoError('invalid_options', `the value cannot be written as JSON (${e.message})`);
  }
  if (json === undefined) throw new EchoError('invalid_options', 'the value cannot be written as JSON');
  return json;
}

function text(value, what) {
  if (typeof value !== 'string') throw new EchoError('invalid_options', `${what} must be a string`);
  return value;
}

/** Restarts one engine may make (`autoRestart`): a worker that keeps dying is a bug to report. */
const MAX_RESTARTS = 3;

export class EchoEngine {
  #worker;
  #nextId = 1;
  /** id → { resolve, reject, onEvent } */
  #pending = new Map();
  #crashed = null;
  /** What a restart needs: the worker's URL and `create`'s arguments. */
  #workerUrl;
  #createArgs;
  #autoRestart;
  #onRestart;
  #restarts = 0;
  /** While a restart runs: calls wait for it. */
  #restarting = null;
  /** The last model loaded from a source that can be read again (URL, Blob, path): a restart reloads it. */
  #lastLoad = null;
  #terminated = false;
  /** With threads: where a pool thread that traps says so (see worker.js). */
  #crashChannel = null;

  constructor(worker) {
    this.#attach(worker);
  }

  /** Listens to `worker`; what an old (replaced) worker says is ignored. */
  #attach(worker) {
    this.#worker = worker;
    worker.onMessage((msg) => worker === this.#worker && this.#receive(msg));
    worker.onCrash((why) => worker === this.#worker && this.#crash(why));
  }

  /**
   * `memoryPath` (Node): the file the memory stores are kept in. Browsers keep them in IndexedDB
   * (database `memoryDatabase`, default 'echo-engine') unless `persistMemories` is false.
   * `autoRestart`: after the worker dies, start a new one and reload the last model (from its URL,
   * Blob or path; bytes and streams cannot be read again), then call `onRestart`.
   * `threads`: how many threads ggml computes on; by default half the cores, 1 to 4, where the
   * threaded build can run (Node, cross-origin isolated pages), else 1. `info()` says how many
   * it got and, when fewer, why (`threadsWhy`).
   * @param {{memoryLimitMb?: number, backend?: 'ggml'|'reference'|'mock'|'auto', workerUrl?: string|URL, threads?: number,
   *   memoryPath?: string, persistMemories?: boolean, memoryDatabase?: string, autoRestart?: boolean,
   *   onRestart?: (event: {restarts: number, reloaded: boolean, reason: string, error?: EchoError}) => void}} [options]
   */
  static async create(options = {}) {
    const { memoryLimitMb, backend = 'ggml', workerUrl = new URL('./worker.js', import.meta.url), memoryPath, persistMemories, memoryDatabase,
      autoRestart = false, onRestart, threads = await defaultThreads() } = options;
    if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new EchoError('invalid_options', 'threads must be a whole number from 1 to 64');
    if (memoryLimitMb !== undefined && typeof memoryLimitMb !== 'number') throw new EchoError('invalid_options', 'memoryLimitMb must be a number');
    text(backend, 'backend');
    if (memoryPath !== undefined) text(memoryPath, 'memoryPath');
    if (memoryDatabase !== undefined) text(memoryDatabase, 'memoryDatabase');
    if (persistMemories !== undefined && typeof persistMemories !== 'boolean') throw new EchoError('invalid_options', 'persistMemories must be true or false');
    if (typeof autoRestart !== 'boolean') throw new EchoError('invalid_options', 'autoRestart must be true or false');
    if (onRestart !== undefined && typeof onRestart !== 'function') throw new EchoError('invalid_options', 'onRestart must be a function');
    let worker;
    try {
      worker = await spawnWorker(workerUrl);
    } catch (e) {
      throw new EchoError('worker_crashed', `the worker could not start from ${workerUrl} (${e.message}); check workerUrl`);
    }
    const engine = new EchoEngine(worker);
    engine.#workerUrl = workerUrl;
    let crashChannel;
    if (threads > 1) {
      crashChannel = `echo-engine-threads-${Math.random().toString(36).slice(2)}`;
      engine.#crashChannel = new BroadcastChannel(crashChannel);
      engine.#crashChannel.onmessage = (e) => engine.#crash(String(e.data));
      engine.#crashChannel.unref?.(); // Node: it must not keep the process alive
    }
    engine.#createArgs = { memoryLimitMb, backend, memoryPath, persistMemories, memoryDatabase, threads, crashChannel };
    try {
      await engine.#send('create', engine.#createArgs);
    } catch (e) {
      engine.terminate();
      throw e;
    }
    engine.#autoRestart = autoRestart;
    engine.#onRestart = onRestart;
    return engine;
  }

  #receive(msg) {
    if (msg.crashed) {
      this.#crash(msg.message);
      return;
    }
    const p = this.#pending.get(msg.id);
    if (!p) return;
    if (msg.event) {
      p.onEvent?.(msg);
      return;
    }
    this.#pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.value);
    else p.reject(new EchoError(msg.error.code, msg.error.message, msg.error));
  }

  #crash(why) {
    if (this.#crashed) return;
    const restart = this.#autoRestart && !this.#terminated && !this.#restarting && this.#restarts < MAX_RESTARTS;
    this.#crashed = `the engine's worker stopped (${why}); ${restart ? 'it is restarting' : 'create a new engine with EchoEngine.create()'}`;
    this.#worker.terminate();
    for (const p of this.#pending.values()) p.reject(new EchoError('worker_crashed', this.#crashed, { restarting: restart }));
    this.#pending.clear();
    if (restart) this.#restarting = this.#restart(why);
  }

  /** A new worker, the same `create`, the last model reloaded; then `onRestart`. */
  async #restart(why) {
    this.#restarts += 1;
    const event = { restarts: this.#restarts, reloaded: false, reason: why };
    try {
      this.#attach(await spawnWorker(this.#workerUrl));
      this.#crashed = null;
      await this.#send('create', this.#createArgs);
      if (this.#lastLoad) {
        await this.#send('loadModel', this.#lastLoad);
        event.reloaded = true;
      }
    } catch (e) {
      event.error = e instanceof EchoError ? e : new EchoError('worker_crashed', String(e?.message ?? e));
      this.#crashed = `the engine's worker stopped (${why}) and could not restart (${event.error.message}); create a new engine with EchoEngine.create()`;
      this.#worker.terminate();
    } finally {
      this.#restarting = null;
    }
    try {
      this.#onRestart?.(event);
    } catch {
      // The caller's callback failing must not break the engine.
    }
  }

  /** Sends one request, after a restart in progress. */
  #call(op, args = {}, options = {}) {
    if (this.#restarting) return this.#restarting.then(() => this.#send(op, args, options));
    return this.#send(op, args, options);
  }

  /** Sends one request; `signal` aborts it, `onEvent` receives its progress and chunks. */
  #send(op, args = {}, { transfer = [], signal, onEvent } = {}) {
    if (this.#crashed) return Promise.reject(new EchoError('worker_crashed', this.#crashed));
    if (signal?.aborted) return Promise.reject(new EchoError('aborted', 'the request was aborted before it was sent'));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      try {
        this.#worker.post({ id, op, args }, transfer);
      } catch (e) {
        // Options that cannot be cloned (a function, say) or a buffer that cannot move.
        reject(new EchoError('invalid_options', `the arguments cannot be sent to the worker (${e.message})`));
        return;
      }
      if (!signal) {
        this.#pending.set(id, { resolve, reject, onEvent });
        return;
      }
      const abort = () => this.#crashed || this.#worker.post({ op: 'abort', target: id });
      signal.addEventListener('abort', abort, { once: true });
      const settle = (fn) => (v) => (signal.removeEventListener('abort', abort), fn(v));
      this.#pending.set(id, { resolve: settle(resolve), reject: settle(reject), onEvent });
    });
  }

  /**
   * Streams a model into the engine (replacing the loaded one). ArrayBuffer and Uint8Array
   * sources are transferred to the worker: they are detached afterwards.
   */
  async loadModel(source, options = {}) {
    const { tokenizer = 'auto', vocab, head, onProgress, signal } = options;
    text(tokenizer, 'tokenizer');
    if (head !== undefined) text(head, 'head');
    const [src, transfer] = await describeSource(source);
    const [voc, vocTransfer] = vocab === undefined ? [undefined, []] : await describeSource(vocab);
    const onEvent = onProgress && (({ phase, loaded, total }) => onProgress({ phase, loaded, total }));
    const args = { source: src, tokenizer, vocab: voc, head };
    const info = await this.#call('loadModel', args, { transfer: [...transfer, ...vocTransfer], signal, onEvent });
    const again = (s) => s === undefined || s.url !== undefined || s.path !== undefined || s.blob !== undefined;
    this.#lastLoad = again(src) && again(voc) ? args : null;
    return info;
  }

  /**
   * Converts a PyTorch checkpoint (.pth or .safetensors) to an rwkv.cpp model file, returned as a
   * Blob with what was converted: `{ blob, arch, nVocab, nEmbed, nLayer, dataType, tensors, quantized }`.
   * `type` is the file's type: FP16 (default), FP32, Q4_0, Q4_1, Q5_0, Q5_1 or Q8_0. Pass the Blob
   * to `loadModel`. Needs no loaded model, and leaves the loaded one as it is.
   */
  async convert(source, options = {}) {
    const { type = 'FP16', onProgress, signal } = options;
    text(type, 'type');
    const [src, transfer] = await describeSource(source);
    const onEvent = onProgress && (({ phase, loaded, total }) => onProgress({ phase, loaded, total }));
    return this.#call('convert', { source: src, type }, { transfer, signal, onEvent });
  }

  /**
   * Streams generated text: `for await (const chunk of engine.generate(prompt))`. Starts a new
   * conversation unless `options.continue`. Aborting (the signal, `abort()`, or leaving the loop
   * early) ends it with stopReason 'abort'; `result` resolves to the whole completion.
   */
  generate(prompt, options = {}) {
    const { signal, ...rest } = options;
    const call = (stopSignal, onEvent) => typeof prompt === 'string'
      ? this.#call('generate', { prompt, options: rest, stream: true }, { signal: stopSignal, onEvent })
      : Promise.reject(new EchoError('invalid_options', 'the prompt must be a string'));
    return this.#stream(call, signal, ({ text }) => ({ text }));
  }

  /**
   * A request whose events are iterated as they come: `call(stopSignal, onEvent)` sends it;
   * `shape` turns an event into what the iterator yields. Aborting (the signal, `abort()`, or
   * leaving the loop early) stops the request; `result` resolves to its result.
   */
  #stream(call, signal, shape) {
    const stop = new AbortController();
    const forward = () => stop.abort();
    if (signal?.aborted) stop.abort();
    signal?.addEventListener('abort', forward, { once: true });
    const items = [];
    let finished = false;
    let failure;
    let wake = () => {};
    // The caller's signal may outlive this request: let go of it once the result is in.
    const settle = () => {
      finished = true;
      signal?.removeEventListener('abort', forward);
      wake();
    };
    const onEvent = (event) => {
      items.push(shape(event));
      wake();
    };
    const result = call(stop.signal, onEvent).then(
      (value) => (settle(), value),
      (e) => {
        failure = e;
        settle();
        throw e;
      },
    );
    // The caller may only iterate: a failure then surfaces there, not as an unhandled rejection.
    result.catch(() => {});
    return {
      result,
      abort: () => stop.abort(),
      async *[Symbol.asyncIterator]() {
        try {
          for (;;) {
            if (items.length > 0) yield items.shift();
            else if (finished) {
              if (failure) throw failure;
              return;
            } else await new Promise((resolve) => (wake = resolve));
          }
        } finally {
          if (!finished) stop.abort();
        }
      },
    };
  }

  /** Like `generate`, without streaming: resolves to `{ text, tokens, stopReason, stats }`. */
  async complete(prompt, options = {}) {
    const { signal, ...rest } = options;
    return this.#call('generate', { prompt: text(prompt, 'the prompt'), options: rest, stream: false }, { signal });
  }

  /** Starts a new, empty conversation (the prefix cache stays). */
  reset() {
    return this.#call('reset');
  }

  /** What `loadModel` resolved to, for the loaded model. */
  info() {
    return this.#call('info');
  }

  /** Tokens of `text` under the model's tokenizer. */
  async tokenize(value) {
    return this.#call('tokenize', { text: text(value, 'the text') });
  }

  async detokenize(ids) {
    return this.#call('detokenize', { ids: tokenIds(ids) });
  }

  /** Feeds `ids` from the current state (which advances); resolves to the last token's logits. */
  async evalTokens(ids) {
    return this.#call('evalTokens', { ids: tokenIds(ids) });
  }

  saveState() {
    return this.#call('saveState');
  }

  /** Restores a state from `saveState` (the bytes are transferred). */
  async loadState(bytes) {
    if (!(bytes instanceof ArrayBuffer) && !ArrayBuffer.isView(bytes)) {
      throw new EchoError('invalid_options', 'the state must be a Uint8Array or an ArrayBuffer from saveState');
    }
    const [owned, transfer] = ownedBytes(bytes);
    return this.#call('loadState', { bytes: owned }, { transfer });
  }

  memory() {
    return this.#call('memory');
  }

  /**
   * The embedding of a text (a `Float32Array`, L2-normalised: the mean of the model's final
   * normalised hidden states over the text's tokens), or of each text of an array.
   */
  async embed(texts) {
    const list = Array.isArray(texts) ? texts : [texts];
    list.forEach((t) => text(t, 'each text'));
    const vectors = await this.#call('embed', { texts: list });
    return Array.isArray(texts) ? vectors : vectors[0];
  }

  /** Stores `text` (with JSON-able `metadata`) in memory store `store` (default 'default'); resolves to its id. */
  async remember(value, options = {}) {
    const { metadata = null, store = 'default' } = options;
    return this.#call('remember', { text: text(value, 'the text'), metadata: jsonText(metadata), store: text(store, 'store') });
  }

  /** The `k` memories best for `query`, best first: `[{ id, text, score, cosine, lexical, metadata }]`. */
  async recall(query, options = {}) {
    const { k = 5, store = 'default' } = options;
    if (!Number.isInteger(k) || k < 0 || k > 10000) throw new EchoError('invalid_options', 'k must be a whole number from 0 to 10000');
    return this.#call('recall', { query: text(query, 'the query'), k, store: text(store, 'store') });
  }

  /** Removes memory `id`; resolves to whether there was one. */
  async forget(id, options = {}) {
    const { store = 'default' } = options;
    if (!Number.isInteger(id)) throw new EchoError('invalid_options', 'the id must be a whole number (from remember)');
    return this.#call('forget', { id, store: text(store, 'store') });
  }

  /** `{ total, items: [{ id, text, metadata }], persistent, storageError? }`, oldest first. */
  async memories(options = {}) {
    const { store = 'default', offset = 0, limit = 100 } = options;
    for (const [k, v] of [['offset', offset], ['limit', limit]]) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new EchoError('invalid_options', `${k} must be a whole number from 0`);
    }
    return this.#call('memories', { store: text(store, 'store'), offset, limit });
  }

  /** Store `store`'s memories as bytes, or with no store every store's (a memory file). */
  async exportMemories(options = {}) {
    const { store } = options;
    return this.#call('exportMemories', { store: store === undefined ? undefined : text(store, 'store') });
  }

  /** Reads `exportMemories`' bytes back (replacing the stores they hold); memories another model embedded are embedded again. */
  async importMemories(bytes, options = {}) {
    const { store } = options;
    if (!(bytes instanceof ArrayBuffer) && !ArrayBuffer.isView(bytes)) {
      throw new EchoError('invalid_options', 'the memories must be a Uint8Array or an ArrayBuffer from exportMemories');
    }
    const [owned, transfer] = ownedBytes(bytes);
    return this.#call('importMemories', { bytes: owned, store: store === undefined ? undefined : text(store, 'store') }, { transfer });
  }

  /**
   * The cognitive loop on one input: `context` is `{ userInput, sessionId?, conversationHistory?,
   * memoryState?, processingGoals?, temporalContext?, metadata? }`; resolves to
   * `{ integratedResponse, confidence, membranes: { memory, reasoning, grammar }, integration, stats }`.
   */
  async process(context, options = {}) {
    const { signal, ...rest } = options;
    return this.#call('process', { context: jsonText(context), options: jsonText(rest), stream: false }, { signal });
  }

  /**
   * Like `process`, yielding `{ type: 'membrane', name, result }` as each membrane finishes and
   * `{ type: 'text', text }` as the answer comes; `result` resolves to the whole response.
   */
  processStream(context, options = {}) {
    const { signal, ...rest } = options;
    let args;
    try {
      args = { context: jsonText(context), options: jsonText(rest), stream: true };
    } catch (e) {
      return this.#stream(() => Promise.reject(e), signal, (x) => x);
    }
    const shape = (e) => (e.event === 'membrane' ? { type: 'membrane', name: e.name, result: e.result } : { type: 'text', text: e.text });
    return this.#stream((stopSignal, onEvent) => this.#call('process', args, { signal: stopSignal, onEvent }), signal, shape);
  }

  metrics() {
    return this.#call('metrics');
  }

  /**
   * `{ ok, backend, fallbacks, model, memory: { usedBytes, limitBytes, headroomBytes }, lastError,
   * persistentMemories }`: whether a model is running and on which backend, why backends tried
   * before it failed ('auto'), the memory headroom, and the last request that failed.
   */
  async health() {
    return { ...(await this.#call('health')), restarts: this.#restarts };
  }

  /** Frees the model's memory (the wasm memory itself keeps its size, for the next model). */
  unloadModel() {
    this.#lastLoad = null;
    return this.#call('unloadModel');
  }

  /** Requests sent and not yet answered (0 when idle). */
  get pendingRequests() {
    return this.#pending.size;
  }

  /** Stops the worker at once; pending calls reject with `worker_crashed`. */
  terminate() {
    this.#terminated = true;
    this.#crashChannel?.close();
    this.#crash('terminated');
  }
}
