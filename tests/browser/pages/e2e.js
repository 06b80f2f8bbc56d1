// Scenarios run inside the page by tests/browser/e2e.test.mjs. Each returns plain data (no
// assertions here): the Node side checks it, so a failure shows what the page saw.
import { EchoEngine } from '/js/echo-engine.js';

/** An EchoError as plain data. */
const failure = (e) => ({ name: e.name, code: e.code, message: e.message, neededBytes: e.neededBytes, limitBytes: e.limitBytes, status: e.status });

async function settle(promise) {
  try {
    return { ok: true, value: await promise };
  } catch (e) {
    return { ok: false, error: failure(e) };
  }
}

/** Counts animation frames while `work` runs, and the longest gap between two of them. */
async function watchFrames(work) {
  let frames = 0;
  let maxGap = 0;
  let last = performance.now();
  let running = true;
  const tick = (t) => {
    frames++;
    maxGap = Math.max(maxGap, t - last);
    last = t;
    if (running) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  const start = performance.now();
  try {
    const value = await work();
    return { value, frames, maxFrameGapMs: maxGap, ms: performance.now() - start };
  } finally {
    running = false;
  }
}

window.scenarios = {
  crossOriginIsolated: () => self.crossOriginIsolated,

  /**
   * Converts a checkpoint fetched into a Blob; compares with the expected file's bytes and the
   * converted model's logits after `tokens` with the expected ones.
   */
  async convertBlob(checkpointUrl, expectedUrl, logitsUrl, tokens) {
    const engine = await EchoEngine.create();
    try {
      const blob = await (await fetch(checkpointUrl)).blob();
      const progress = [];
      const converted = await engine.convert(blob, { type: 'FP32', onProgress: (p) => progress.push(p) });
      const [ours, theirs] = await Promise.all([converted.blob.arrayBuffer(), fetch(expectedUrl).then((r) => r.arrayBuffer())]);
      const a = new Uint8Array(ours);
      const b = new Uint8Array(theirs);
      const same = a.length === b.length && a.every((x, i) => x === b[i]);
      await engine.loadModel(converted.blob);
      const logits = await engine.evalTokens(tokens);
      const want = new Float32Array(await (await fetch(logitsUrl)).arrayBuffer());
      const maxDiff = Math.max(...Array.from(logits, (x, i) => Math.abs(x - want[i])));
      const hostile = await settle(engine.convert(new Blob([new Uint8Array(await blob.slice(0, blob.size >> 1).arrayBuffer())])));
      return { arch: converted.arch, same, maxDiff, last: progress.at(-1), hostile };
    } finally {
      engine.terminate();
    }
  },

  /** Structured output: a JSON Schema (streamed) and a GBNF grammar, and a bad grammar. */
  async structured(modelUrl, schema) {
    const engine = await EchoEngine.create();
    try {
      await engine.loadModel(modelUrl);
      const chunks = [];
      const generation = engine.generate('{"', { maxTokens: 64, seed: 3, grammar: { jsonSchema: schema } });
      for await (const chunk of generation) chunks.push(chunk.text);
      const json = { chunks, result: await generation.result };
      const gbnf = await engine.complete('x', { maxTokens: 64, seed: 3, grammar: { gbnf: 'root ::= ("yes" | "no") "." [0-9]{2}' } });
      const bad = await settle(engine.complete('x', { grammar: { regex: '(' } }));
      const after = await engine.complete('x', { maxTokens: 4, seed: 3 });
      return { json, gbnf, bad, after };
    } finally {
      engine.terminate();
    }
  },

  /** Load by URL with progress, stream a generation, abort a second one midway. */
  async loadAndGenerate(modelUrl) {
    const engine = await EchoEngine.create();
    try {
      const progress = [];
      const info = await engine.loadModel(modelUrl, { onProgress: (p) => progress.push(p) });
      const streamed = await watchFrames(async () => {
        const chunks = [];
        const generation = engine.generate('The ', { maxTokens: 200, temperature: 0.8, seed: 7 });
        for await (const chunk of generation) chunks.push(chunk.text);
        return { chunks, result: await generation.result };
      });
      const controller = new AbortController();
      const aborted = await watchFrames(async () => {
        const chunks = [];
        const generation = engine.generate('Once upon a time', { maxTokens: 100000, signal: controller.signal });
        for await (const chunk of generation) {
          chunks.push(chunk.text);
          if (chunks.length === 20) controller.abort();
        }
        return { chunks: chunks.length, result: await generation.result };
      });
      const preAborted = await settle(engine.complete('x', { signal: AbortSignal.abort() }));
      // After all that, the engine still answers, in order.
      const [memory, metrics, tokens] = await Promise.all([engine.memory(), engine.metrics(), engine.tokenize('hi')]);
      return { info, progress, streamed, aborted, preAborted, memory, metrics, tokens };
    } finally {
      engine.terminate();
    }
  },

  /** The same tiny model from every kind of source: Blob, ArrayBuffer, Uint8Array, ReadableStream. */
  async sources(modelUrl) {
    const engine = await EchoEngine.create({ backend: 'mock' });
    try {
      const out = {};
      const blob = await (await fetch(modelUrl)).blob();
      out.blob = await engine.loadModel(blob);
      const buffer = await blob.arrayBuffer();
      out.arrayBuffer = await engine.loadModel(buffer);
      out.arrayBufferDetached = buffer.byteLength === 0;
      out.uint8Array = await engine.loadModel(new Uint8Array(await blob.arrayBuffer()));
      const progress = [];
      out.stream = await engine.loadModel((await fetch(modelUrl)).body, { onProgress: (p) => progress.push(p) });
      out.streamProgress = progress;
      out.text = (await engine.complete('ab', { maxTokens: 16, temperature: 0 })).text;
      out.textAgain = (await engine.complete('ab', { maxTokens: 16, temperature: 0 })).text;
      return out;
    } finally {
      engine.terminate();
    }
  },

  /** A 64 MB limit: the big model is refused up front, then a tiny one loads in the same engine. */
  async tooLarge(bigUrl, tinyUrl) {
    const engine = await EchoEngine.create({ memoryLimitMb: 64 });
    try {
      const progress = [];
      const big = await settle(engine.loadModel(bigUrl, { onProgress: (p) => progress.push(p) }));
      const memoryAfterRefusal = await engine.memory();
      const tiny = await settle(engine.loadModel(tinyUrl));
      const text = await settle(engine.complete('Hello', { maxTokens: 8 }));
      return { big, progress, memoryAfterRefusal, tiny, text, memory: await engine.memory() };
    } finally {
      engine.terminate();
    }
  },

  /** Bad sources reject with typed errors; the engine stays usable. */
  async badSources(urls, tinyUrl) {
    const engine = await EchoEngine.create();
    try {
      const out = {};
      for (const [name, url] of Object.entries(urls)) out[name] = await settle(engine.loadModel(url));
      out.noModel = await settle(engine.evalTokens([1]));
      out.badOption = await settle(engine.loadModel(tinyUrl, { tokenizer: 'klingon' }));
      const controller = new AbortController();
      const loading = settle(engine.loadModel(tinyUrl, { signal: controller.signal }));
      controller.abort();
      out.abortedLoad = await loading;
      out.tiny = await settle(engine.loadModel(tinyUrl));
      out.logits = await settle(engine.evalTokens([1, 2, 3]).then((l) => ({ length: l.length, finite: l.every(Number.isFinite) })));
      out.badToken = await settle(engine.evalTokens([100000]));
      out.afterBadToken = await settle(engine.evalTokens([4]).then((l) => l.length));
      return out;
    } finally {
      engine.terminate();
    }
  },

  /** A download cancelled mid-stream: the abort reaches the worker while chunks arrive. */
  async cancelMidStream(bigUrl, tinyUrl) {
    const engine = await EchoEngine.create();
    try {
      const controller = new AbortController();
      let loadedAtAbort = 0;
      const onProgress = ({ loaded }) => {
        if (loaded >= 8 * 1024 * 1024 && !controller.signal.aborted) {
          loadedAtAbort = loaded;
          controller.abort();
        }
      };
      const big = await settle(engine.loadModel(bigUrl, { onProgress, signal: controller.signal }));
      const memory = await engine.memory();
      const tiny = await settle(engine.loadModel(tinyUrl));
      const text = await settle(engine.complete('Hello', { maxTokens: 8 }));
      return { big, loadedAtAbort, memory, tiny, text };
    } finally {
      engine.terminate();
    }
  },

  /** A conversation state saved elsewhere (Node): loaded here, it gives the next logits. */
  async stateFromElsewhere(tinyUrl, state, token) {
    const engine = await EchoEngine.create();
    try {
      await engine.loadModel(tinyUrl);
      await engine.loadState(Uint8Array.from(state));
      return Array.from(await engine.evalTokens([token]));
    } finally {
      engine.terminate();
    }
  },

  /** Load throughput and memory for a big model (the figures the README reports). */
  async bigLoad(modelUrl) {
    const engine = await EchoEngine.create();
    try {
      const start = performance.now();
      const info = await engine.loadModel(modelUrl);
      const ms = performance.now() - start;
      return { info, ms, memory: await engine.memory() };
    } finally {
      engine.terminate();
    }
  },

  /**
   * An engine asking for 2 threads and one on 1: the threads each got, why not more, and the
   * logits of both after `tokens`, one at a time and as a sequence.
   */
  async threads(tinyUrl, tokens) {
    const results = [];
    for (const threads of [2, 1]) {
      const engine = await EchoEngine.create({ threads });
      try {
        const info = await engine.loadModel(tinyUrl);
        const serial = [];
        for (const t of tokens.slice(0, 3)) serial.push(...(await engine.evalTokens([t])));
        await engine.reset();
        const sequence = Array.from(await engine.evalTokens(tokens));
        results.push({ threads: info.threads, threadsWhy: info.threadsWhy, serial, sequence });
      } finally {
        engine.terminate();
      }
    }
    return results;
  },

  /** A pool thread that hangs ggml, then traps (see pool-thread-traps.js); then a new engine. */
  async poolThreadTraps(workerUrl, tinyUrl) {
    const trapping = await EchoEngine.create({ threads: 2, workerUrl });
    const crashed = await settle(trapping.loadModel(tinyUrl));
    const fresh = await EchoEngine.create({ threads: 2 });
    try {
      return { crashed, after: await settle(trapping.info()), fresh: (await fresh.loadModel(tinyUrl)).threads };
    } finally {
      fresh.terminate();
    }
  },

  /** A worker that dies, and one that is terminated, reject pending calls with worker_crashed. */
  async crash(crashWorkerUrl, tinyUrl) {
    const crashing = await EchoEngine.create({ workerUrl: crashWorkerUrl });
    const crashed = await settle(crashing.memory());
    const after = await settle(crashing.memory());
    const engine = await EchoEngine.create();
    await engine.loadModel(tinyUrl);
    const pending = settle(engine.complete('Hello', { maxTokens: 100000 }));
    engine.terminate();
    const terminated = await pending;
    const fresh = await EchoEngine.create();
    const recreated = await settle(fresh.loadModel(tinyUrl).then((i) => i.arch));
    fresh.terminate();
    return { crashed, after, terminated, recreated };
  },
};
document.getElementById('status').textContent = 'ready';
