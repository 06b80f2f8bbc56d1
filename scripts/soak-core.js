// The soak's requests and checks, for any runtime (Node: scripts/soak.mjs; browsers:
// tests/browser/soak.test.mjs): `requests` mixed requests on `engine` — streamed and plain
// generations, structured output, process, remember/recall/forget, saveState/loadState — with
// random aborts, unload/load cycles and an oversized load among them. Checks that every request
// settles once, as expected (done, or `aborted` when aborted, or `model_too_large`), that no request
// or abort listener is left behind, and that the engine's memory stays flat after the first 50
// requests: bytes in use, less the bounded caches and the memories stored, grow at most 1 MiB, and
// so does wasm memory beyond what the highest peak of bytes in use explains (it never shrinks, so
// it follows the peak, which the caches raise as they fill; more would be fragmentation).

const MIB = 1024 * 1024;
// A chat app's prompts come from a few shapes: a small set keeps the caches' content realistic.
const PROMPTS = ['And God said', 'In the beginning', 'The LORD is my shepherd', 'Blessed are the meek', 'Now the serpent'];
const FACTS = ['My sister lives in Lyon.', 'The garden has three apple trees.', 'Bread is baked at dawn.', 'The meeting is on Tuesday.'];
const SCHEMA = { type: 'object', properties: { n: { type: 'integer', minimum: 0, maximum: 99 } }, required: ['n'] };
// The header of a model far past the cap (8192 wide, 64 layers, 65536 tokens): refused at once.
const HUGE = new Int32Array([0x67676d66, 101, 65536, 8192, 64, 1]);
const KINDS = ['generate', 'generate', 'complete', 'complete', 'structured', 'process', 'memory', 'memory', 'state'];

/**
 * @param {import('../js/echo-engine.js').EchoEngine} engine with no model loaded yet
 * @param {{ requests: number, load: () => Promise<unknown>, seed?: number, sampleEvery?: number }} options
 */
export async function soak(engine, { requests, load, seed = 1, sampleEvery = 10 }) {
  // A seeded generator (xorshift32), so a run can be repeated.
  let rng = seed >>> 0 || 1;
  const random = () => {
    rng ^= rng << 13;
    rng ^= rng >>> 17;
    rng ^= rng << 5;
    return (rng >>> 0) / 2 ** 32;
  };
  const pick = (list) => list[Math.floor(random() * list.length)];
  const memoryIds = [];

  /** One request of `kind`; `signal` may abort it. Resolves to 'done'; rejects with the error. */
  async function run(kind, signal) {
    const sampling = { seed: Math.floor(random() * 1e6), temperature: pick([0, 0.7, 1.2]), signal };
    switch (kind) {
      case 'generate': {
        const g = engine.generate(pick(PROMPTS), { maxTokens: 24, ...sampling });
        let chunks = 0;
        const stopAt = random() < 0.2 ? 1 + Math.floor(random() * 8) : Infinity;
        for await (const _ of g) if (++chunks >= stopAt) break;
        await g.result;
        return 'done';
      }
      case 'complete':
        await engine.complete(pick(PROMPTS), { maxTokens: 24, ...sampling });
        return 'done';
      case 'structured': {
        const c = await engine.complete('Number:', { maxTokens: 16, grammar: { jsonSchema: SCHEMA }, ...sampling });
        if (c.stopReason === 'grammar') JSON.parse(c.text);
        return 'done';
      }
      case 'process':
        await engine.process({ userInput: pick([...FACTS, 'Where does my sister live?', 'What grows in the garden?']) },
          { maxTokens: 12, reasoning: { branches: pick([0, 1, 2]), maxTokens: 12 }, ...sampling });
        return 'done';
      case 'memory': {
        if (random() < 0.5) memoryIds.push(await engine.remember(pick(FACTS)));
        else if (memoryIds.length > 8) await engine.forget(memoryIds.shift());
        await engine.recall(pick(FACTS), { k: 3 });
        return 'done';
      }
      case 'state': {
        await engine.complete(pick(PROMPTS), { maxTokens: 8, signal });
        await engine.loadState(await engine.saveState());
        await engine.complete(' and', { maxTokens: 8, continue: true, signal });
        return 'done';
      }
      case 'reload':
        await engine.unloadModel();
        await load();
        return 'done';
      case 'oversized': {
        const stream = new ReadableStream({ start: (c) => (c.enqueue(new Uint8Array(HUGE.buffer.slice(0))), c.close()) });
        try {
          await engine.loadModel(stream);
        } finally {
          await load(); // a load drops the model it replaces, refused or not
        }
        return 'done';
      }
    }
  }

  await load();
  const counts = {};
  const failures = [];
  const curve = [];
  const leftListeners = [];
  // The highest `peakBytes` seen: a load resets it, so it is read before each reload as well.
  let peak = 0;
  const memory = async () => {
    const m = await engine.memory();
    peak = Math.max(peak, m.peakBytes);
    return m;
  };
  const start = performance.now();
  for (let i = 0; i < requests; i++) {
    const kind = i % 100 === 99 ? 'reload' : i % 250 === 125 ? 'oversized' : pick(KINDS);
    if (kind === 'reload' || kind === 'oversized') await memory();
    const controller = new AbortController();
    const listeners = countListeners(controller.signal);
    const aborting = kind !== 'reload' && kind !== 'oversized' && random() < 0.15;
    if (aborting) setTimeout(() => controller.abort(), Math.floor(random() * 20));
    let outcome;
    try {
      outcome = await run(kind, controller.signal);
    } catch (e) {
      outcome = e.code ?? String(e);
    }
    const expected = outcome === 'done' || (outcome === 'aborted' && aborting) || (outcome === 'model_too_large' && kind === 'oversized');
    counts[kind] ??= {};
    counts[kind][outcome] = (counts[kind][outcome] ?? 0) + 1;
    if (!expected) failures.push({ request: i, kind, outcome });
    if (listeners() > 0) leftListeners.push(i);
    if (i % sampleEvery === sampleEvery - 1) {
      const m = await memory();
      curve.push({ request: i + 1, usedMiB: m.usedBytes / MIB, cacheMiB: m.cacheBytes / MIB, memoriesMiB: m.memoriesBytes / MIB,
        peakMiB: peak / MIB, wasmMiB: m.wasmMemoryBytes / MIB, pending: engine.pendingRequests });
    }
  }
  const seconds = (performance.now() - start) / 1000;

  // Flat: in-use bytes less the bounded caches and the stored memories, from request 50 on.
  const base = (p) => p.usedMiB - p.cacheMiB - p.memoriesMiB;
  const after50 = curve.filter((p) => p.request >= 50);
  const growthMiB = after50.length ? Math.max(...after50.map(base)) - base(after50[0]) : 0;
  const overhead = (p) => p.wasmMiB - p.peakMiB;
  const wasmGrowthMiB = after50.length ? Math.max(...after50.map(overhead)) - overhead(after50[0]) : 0;
  const round = (x) => Math.round(x * 1000) / 1000;
  return {
    requests, seconds: round(seconds), counts, failures: failures.slice(0, 20), leftListeners: leftListeners.slice(0, 20),
    growthMiB: round(growthMiB), wasmGrowthMiB: round(wasmGrowthMiB),
    checks: {
      everyRequestAsExpected: failures.length === 0,
      noPendingRequests: engine.pendingRequests === 0,
      noAbortListenersLeft: leftListeners.length === 0,
      flatMemory: growthMiB <= 1,
      flatWasmMemory: wasmGrowthMiB <= 1,
    },
    curve: curve.map((p) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, round(v)]))),
  };
}

/** How many abort listeners `signal` holds now (counted as they are added and removed). */
function countListeners(signal) {
  /** listener → added with `once` (it goes when the signal aborts) */
  const active = new Map();
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  add('abort', () => active.forEach((once, fn) => once && active.delete(fn)));
  signal.addEventListener = (type, fn, options) => {
    if (type === 'abort') active.set(fn, !!options?.once);
    add(type, fn, options);
  };
  signal.removeEventListener = (type, fn, options) => {
    if (type === 'abort') active.delete(fn);
    remove(type, fn, options);
  };
  return () => active.size;
}
