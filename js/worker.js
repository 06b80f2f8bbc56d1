// The engine's worker: a module Web Worker in browsers, a worker_threads worker in Node. It owns
// the wasm instance and answers `EchoEngine`'s requests one at a time, in order. Only `abort`
// messages skip the queue, so a load or a generation in progress can be stopped: both run as
// loops that return to the event loop between chunks and between tokens.
import { instantiate, noSharedMemory, startPool } from './builds.js';
import { openPersistence } from './persistence.js';
import { echoError, openRandomAccess, openSource, readAll } from './sources.js';

const isNode = typeof self === 'undefined';
const { parentPort } = isNode ? await import('node:worker_threads') : {};
const post = isNode ? (msg, transfer) => parentPort.postMessage(msg, transfer) : (msg, transfer) => self.postMessage(msg, transfer);

/** The wasm build's exports: pkg/, or pkg-threads/ when computing on more than one thread. */
let glue;
/** @type {import('../pkg/echo_engine.js').Engine | undefined} */
let engine;
/** ggml's threads, and why not more when fewer than asked (for `info()`). */
let threads = { threads: 1, threadsWhy: null };
/** Where the memory stores are kept between sessions (see persistence.js). */
let persistence;
/** The last request that failed, for `health()`. */
let lastError = null;
/** One per request not yet answered, so an abort can reach it queued or running. */
const controllers = new Map();
let queue = Promise.resolve();

function onMessage(msg) {
  if (msg.op === 'abort') {
    controllers.get(msg.target)?.abort();
    return;
  }
  controllers.set(msg.id, new AbortController());
  queue = queue.then(() => handle(msg));
}
if (isNode) parentPort.on('message', onMessage);
else self.onmessage = (e) => onMessage(e.data);

async function handle({ id, op, args }) {
  const signal = controllers.get(id).signal;
  try {
    if (signal.aborted) throw echoError('aborted', 'the request was aborted before it started');
    const [value, transfer] = await run(id, op, args, signal);
    post({ id, ok: true, value }, transfer);
  } catch (e) {
    if (typeof e?.code === 'string' && e.code !== 'aborted') lastError = { op, code: e.code, message: e.message, at: Date.now() };
    reply(id, e);
  } finally {
    controllers.delete(id);
  }
}

function reply(id, e) {
  if (typeof e?.code === 'string') {
    const { code, message, neededBytes, limitBytes, status, memoryId } = e;
    post({ id, ok: false, error: { code, message, neededBytes, limitBytes, status, memoryId } });
    return;
  }
  // A trap (a bug in the engine) leaves the wasm instance unusable; anything else untyped is a
  // bug here. Either way the worker stops, and the main thread rejects with `worker_crashed`.
  post({ crashed: true, message: String(e?.stack ?? e) });
  if (isNode) process.exit(1);
  else self.close();
}

function requireEngine() {
  if (!engine) throw echoError('no_model', 'the engine is not created yet');
  return engine;
}

/**
 * Bytes of wasm memory a request's input may take at most, per op: the copy into wasm and what
 * is built from it (tokens are 4 bytes and at most one per UTF-8 byte; the conversation, the
 * caches' keys and the tokenizer's output each hold them).
 */
const INPUT_COST = {
  tokenize: ({ text }) => 5 * utf8Length(text),
  detokenize: ({ ids }) => 12 * ids.length,
  evalTokens: ({ ids }) => 16 * ids.length,
  loadState: ({ bytes }) => 3 * bytes.byteLength,
  importMemories: ({ bytes }) => 3 * bytes.byteLength,
  generate: ({ prompt }) => 21 * utf8Length(prompt),
  process: ({ context }) => 42 * utf8Length(context),
  embed: ({ texts }) => 5 * texts.reduce((n, t) => n + utf8Length(t), 0),
  remember: ({ text, metadata }) => 8 * (utf8Length(text) + utf8Length(metadata)),
  recall: ({ query }) => 8 * utf8Length(query),
};
/** Room kept for everything else a request allocates (buffers, results). */
const REQUEST_SLACK = 1 << 20;

function utf8Length(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    n += c < 0x80 ? 1 : c < 0x800 || (c >= 0xd800 && c < 0xdc00) ? 2 : 3; // a surrogate pair: 2 + 2
  }
  return n;
}

/**
 * Refuses, with `out_of_memory`, an input that could not fit in what is left of the memory
 * limit: inside wasm, a failed allocation cannot be recovered from (it traps), so it must not
 * be tried.
 */
function checkRoom(op, args) {
  const cost = INPUT_COST[op]?.(args);
  if (cost === undefined || !engine) return;
  const { usedBytes, limitBytes } = engine.memory();
  if (usedBytes + cost + REQUEST_SLACK <= limitBytes) return;
  const mb = (n) => (n / (1 << 20)).toFixed(1);
  throw echoError('out_of_memory', `this ${op} input needs up to ${mb(cost)} MB and ${mb(limitBytes - usedBytes)} MB of the ` +
    `${mb(limitBytes)} MB memory limit are free: make it smaller, free memory (unloadModel, forget), or raise memoryLimitMb`);
}

/** Runs one request; returns [value, transferList]. */
async function run(id, op, args, signal) {
  checkRoom(op, args);
  switch (op) {
    case 'create': return [await create(args), []];
    case 'loadModel': return [await loadModel(id, args, signal), []];
    case 'convert': return [await convert(id, args, signal), []];
    case 'memory': return [requireEngine().memory(), []];
    case 'metrics': return [requireEngine().metrics(), []];
    case 'health': return [{ ...requireEngine().health(), ...threads, lastError, persistentMemories: persistence.persistent }, []];
    case 'info': return [withThreadsWhy(requireEngine().info()), []];
    case 'tokenize': return [Array.from(requireEngine().tokenize(args.text)), []];
    case 'detokenize': return [requireEngine().detokenize(Uint32Array.from(args.ids)), []];
    case 'evalTokens': {
      const logits = requireEngine().evalTokens(Uint32Array.from(args.ids));
      return [logits, [logits.buffer]];
    }
    case 'saveState': {
      const bytes = requireEngine().saveState();
      return [bytes, [bytes.buffer]];
    }
    case 'loadState': return [requireEngine().loadState(args.bytes), []];
    case 'generate': return [await generate(id, args, signal), []];
    case 'process': return [await runProcess(id, args, signal), []];
    case 'embed': {
      const vectors = requireEngine().embed(args.texts);
      return [vectors, vectors.map((v) => v.buffer)];
    }
    case 'remember': return [await remember(args), []];
    case 'recall': return [requireEngine().recall(args.store, args.query, args.k), []];
    case 'forget': return [await forget(args), []];
    case 'memories': return [memories(args), []];
    case 'exportMemories': {
      const bytes = requireEngine().exportMemories(args.store);
      return [bytes, [bytes.buffer]];
    }
    case 'importMemories': return [await importMemories(args), []];
    case 'reset': return [requireEngine().reset(), []];
    case 'unloadModel': return [requireEngine().unloadModel(), []];
    default: throw echoError('invalid_options', `unknown request '${op}'`);
  }
}

async function create({ memoryLimitMb, backend, memoryPath, persistMemories, memoryDatabase, threads: wanted, crashChannel }) {
  if (engine) throw echoError('invalid_options', 'the engine is already created');
  persistence = openPersistence({ memoryPath, persistMemories, memoryDatabase }, isNode);
  const unshared = wanted > 1 && noSharedMemory();
  if (unshared) {
    threads = { threads: 1, threadsWhy: unshared };
  } else if (wanted > 1) {
    try {
      glue = await instantiate('../pkg-threads/');
      await startPool(glue, wanted - 1, { crashChannel });
      threads = { threads: wanted, threadsWhy: null };
    } catch (e) {
      glue = undefined;
      threads = { threads: 1, threadsWhy: `the threaded build did not start (${e?.message ?? e})` };
    }
  }
  glue ??= await instantiate('../pkg/');
  engine = new glue.Engine(memoryLimitMb, backend, threads.threads);
}

/** A model's info with why ggml has fewer threads than asked (null when it has them all). */
function withThreadsWhy(info) {
  return { ...info, threadsWhy: threads.threadsWhy };
}

/** Progress events at most this often (plus the first and the last). */
const PROGRESS_MS = 50;

async function loadModel(id, { source, tokenizer, vocab, head }, signal) {
  const e = requireEngine();
  const vocabBytes = vocab ? await readAll(await openSource(vocab, signal)) : undefined;
  const src = await openSource(source, signal);
  const progress = (phase, loaded) => post({ id, event: 'progress', phase, loaded, total: src.total });
  let lastProgress = 0;
  try {
    e.beginLoad(src.total, tokenizer, vocabBytes, head);
    progress('download', 0);
    let loaded = 0;
    for await (const n of src.readInto ? readIntoEngine(e, src) : feedChunks(e, src)) {
      if (signal.aborted) throw echoError('aborted', 'loading the model was aborted');
      loaded += n;
      const now = performance.now();
      if (now - lastProgress >= PROGRESS_MS) {
        progress('download', loaded);
        lastProgress = now;
      }
    }
    progress('download', loaded);
    progress('prepare', loaded);
    const info = e.finishLoad();
    await persistence.afterLoad(e, e.memoriesReembedded());
    progress('ready', loaded);
    return withThreadsWhy(info);
  } catch (err) {
    e.abortLoad();
    await src.cancel();
    throw err;
  }
}

/** Headers go through `pushChunk` in pieces this small, so tensor data rarely does. */
const HEADER_PIECE = 4096;

/** Hands the source's chunks to the engine (`feed`); yields each one's length. */
async function* feedChunks(e, src) {
  for await (const chunk of src.chunks()) {
    feed(e, chunk);
    yield chunk.byteLength;
  }
}

/**
 * Has the source read tensor data straight into the tensor's memory (`loadWindow`), and headers
 * into a small buffer that is pushed; yields each read's length. The window stays valid while
 * the reads wait: requests run one at a time, so nothing else calls into the engine (or grows
 * its memory) meanwhile.
 */
async function* readIntoEngine(e, src) {
  const piece = new Uint8Array(HEADER_PIECE);
  for (;;) {
    const window = e.loadWindow();
    const n = await src.readInto(window.byteLength ? window : piece);
    if (n === 0) return;
    if (window.byteLength) e.loadAdvance(n);
    else e.pushChunk(piece.subarray(0, n));
    yield n;
  }
}

/**
 * Hands a chunk of the model file to the engine: tensor data is copied straight into the
 * tensor's memory (`loadWindow`), the rest is pushed.
 */
function feed(e, chunk) {
  for (let at = 0; at < chunk.byteLength; ) {
    const window = e.loadWindow();
    const n = Math.min(window.byteLength || HEADER_PIECE, chunk.byteLength - at);
    if (window.byteLength) {
      window.set(chunk.subarray(at, at + n));
      e.loadAdvance(n);
    } else {
      e.pushChunk(chunk.subarray(at, at + n));
    }
    at += n;
  }
}

/**
 * A checkpoint (.pth, .safetensors) to an rwkv.cpp file, as a Blob: the converter asks for byte
 * ranges, read from the source as it asks (a Blob slice, a file range), and its output is
 * collected in parts outside wasm memory; the source is never read whole into wasm.
 */
async function convert(id, { source, type }, signal) {
  requireEngine();
  const src = await openRandomAccess(source, signal);
  const progress = (phase, p) => post({ id, event: 'progress', phase, loaded: p.loaded, total: p.total });
  let conv;
  try {
    conv = new glue.Conversion(src.size, type);
    const parts = [];
    const collect = () => {
      const out = conv.takeOutput();
      if (out.byteLength) parts.push(out);
    };
    let lastProgress = 0;
    for (;;) {
      if (signal.aborted) throw echoError('aborted', 'the conversion was aborted');
      const need = conv.need();
      collect();
      if (!need) break;
      conv.give(await src.read(need[0], need[1]));
      collect();
      const now = performance.now();
      if (now - lastProgress >= PROGRESS_MS) {
        progress('convert', conv.progress());
        lastProgress = now;
      }
    }
    progress('convert', conv.progress());
    const summary = conv.summary();
    return { ...summary, blob: new Blob(parts, { type: 'application/octet-stream' }) };
  } finally {
    conv?.free();
    await src.close();
  }
}

/** During a generation, the worker returns to its event loop at least this often. */
const YIELD_MS = 4;
// Browsers: a message to ourselves is a task without setTimeout's clamping (4 ms and more).
// Node: setImmediate, which runs after pending messages are handled (a MessageChannel there
// can keep winning over the parent port's messages).
const selfChannel = isNode ? null : new MessageChannel();

function yieldToEventLoop() {
  if (isNode) return new Promise((resolve) => setImmediate(resolve));
  return new Promise((resolve) => {
    selfChannel.port1.onmessage = resolve;
    selfChannel.port2.postMessage(null);
  });
}

/** Step by step, so an abort message is seen between tokens; text goes out as it comes. */
async function generate(id, { prompt, options, stream }, signal) {
  const e = requireEngine();
  e.beginGenerate(prompt, options);
  let lastYield = performance.now();
  for (;;) {
    const step = signal.aborted ? e.abortGenerate() : e.step();
    if (step.done) {
      const { done, ...completion } = step;
      return completion;
    }
    if (stream && step.text) post({ id, event: 'chunk', text: step.text });
    if (performance.now() - lastYield >= YIELD_MS) {
      await yieldToEventLoop();
      lastYield = performance.now();
    }
  }
}

async function remember({ text, metadata, store }) {
  const e = requireEngine();
  const id = e.remember(store, text, metadata);
  await persistence.saved(e, store, id, `memory ${id} is remembered`).catch((err) => {
    throw Object.assign(err, { memoryId: id });
  });
  return id;
}

async function forget({ id, store }) {
  const e = requireEngine();
  const forgotten = e.forget(store, id);
  if (forgotten) await persistence.saved(e, store, id, `memory ${id} is forgotten`);
  return forgotten;
}

function memories({ store, offset, limit }) {
  const { total, items } = requireEngine().memories(store, offset, limit);
  const error = persistence.error && { code: persistence.error.code, message: persistence.error.message };
  return { total, items, persistent: persistence.persistent, ...(error ? { storageError: error } : {}) };
}

async function importMemories({ bytes, store }) {
  const e = requireEngine();
  const imported = e.importMemories(bytes, store);
  for (const s of imported) await persistence.storeSaved(e, s.store, `${s.memories} memories are imported into '${s.store}'`);
  return imported;
}

/**
 * Step by step like `generate`: membranes and answer text go out as they come. The memory
 * membrane may have stored the input: that is saved as soon as it reports, so an abort later
 * leaves the saved memories as the live ones.
 */
async function runProcess(id, { context, options, stream }, signal) {
  const e = requireEngine();
  e.beginProcess(context, options);
  let lastYield = performance.now();
  let memory;
  for (;;) {
    if (signal.aborted) {
      e.abortProcess();
      throw echoError('aborted', 'process was aborted');
    }
    const step = e.processStep();
    if (step.done) {
      Object.assign(step.response.membranes.memory, memory);
      return step.response;
    }
    if (step.membrane === 'memory') {
      memory = await saveStored(e, step.result.stored);
      Object.assign(step.result, memory);
    }
    if (stream && step.membrane) post({ id, event: 'membrane', name: step.membrane, result: step.result });
    if (stream && step.text) post({ id, event: 'chunk', text: step.text });
    if (performance.now() - lastYield >= YIELD_MS) {
      await yieldToEventLoop();
      lastYield = performance.now();
    }
  }
}

/** Saves the memory the membrane stored (if any); what the membrane reports of persistence. */
async function saveStored(e, stored) {
  const report = {};
  if (stored) {
    try {
      await persistence.saved(e, stored.store, stored.id, `the input is remembered as memory ${stored.id}`);
    } catch (err) {
      report.storageError = { code: err.code, message: err.message };
    }
  }
  report.persistent = persistence.persistent;
  return report;
}
