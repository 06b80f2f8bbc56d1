// Loads a model from a URL while keeping it in the model cache. The page fetches it itself and
// hands the engine a pull-driven stream: each chunk is read from the network only when the engine
// asks for one, and written to the cache before the engine gets it. The engine reads the 24-byte
// header first, so a model too large for the memory cap is refused after the first chunk: the
// fetch is then cancelled and the partial cache file deleted.
import { cacheAvailable, cacheWriter } from './model-cache.js';

/**
 * @param {import('/js/echo-engine.js').EchoEngine} engine
 * @returns {Promise<{ info: object, cached: boolean }>}
 */
export async function downloadModel(engine, url, name, { signal, onProgress }) {
  const res = await fetch(url, { signal });
  if (!res.ok) {
    await res.body?.cancel();
    throw Object.assign(new Error(`HTTP ${res.status}`), { code: 'load_failed', status: res.status });
  }
  const length = Number(res.headers.get('content-length'));
  const total = Number.isFinite(length) && length > 0 ? length : undefined;
  const reader = res.body.getReader();
  // The cache is a bonus: without OPFS (or room in it) the model still loads.
  const writer = cacheAvailable ? await cacheWriter(name).catch(() => null) : null;
  const stream = new ReadableStream({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) {
        controller.close();
        return;
      }
      await writer?.write(value);
      controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
  try {
    const info = await engine.loadModel(stream, {
      signal,
      onProgress: (p) => onProgress({ ...p, total }),
    });
    await writer?.commit();
    return { info, cached: !!writer };
  } catch (e) {
    await reader.cancel().catch(() => {});
    await writer?.discard();
    throw e;
  }
}
