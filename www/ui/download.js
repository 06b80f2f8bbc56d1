// Loads a model from a URL while keeping it in the model cache. The page fetches it itself and
// hands the engine a pull-driven stream: each chunk is read from the network only when the engine
// asks for one, and written to the cache before the engine gets it. The engine reads the 24-byte
// header first, so a model too large for the memory cap is refused after the first chunk: the
// fetch is then cancelled and the partial cache file deleted.
import { cacheAvailable, cacheWriter } from './model-cache.js';

/**
 * @param {import('/js/echo-engine.js').EchoEngine} engine
 * @returns {Promise<object>} the model's info
 */
export async function downloadModel(engine, url, name, { signal, onProgress }) {
  if (new URL(url).origin !== location.origin) {
    throw loadFailed(`${url} is on another site, and this page's security policy only lets it fetch from its own server; download the file and pick it instead`);
  }
  let res;
  try {
    res = await fetch(url, { signal });
  } catch (e) {
    if (signal.aborted) throw e;
    throw loadFailed(`fetching ${url} failed: ${e.message}`);
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw Object.assign(loadFailed(`HTTP ${res.status}`), { status: res.status });
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
    return info;
  } catch (e) {
    await reader.cancel().catch(() => {});
    await writer?.discard();
    throw e;
  }
}

/** Shaped as the engine's own `load_failed`, so errors.js words it the same way. */
function loadFailed(message) {
  return Object.assign(new Error(message), { code: 'load_failed' });
}
