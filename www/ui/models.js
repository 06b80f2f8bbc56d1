// The model section: the demo model, a URL, a local file (picked or dropped; checkpoints are
// converted first), one load at a time with progress and Cancel, and the models kept in the
// browser (listed with sizes; Load reads them from the cache, Delete removes them).
import { byId, el, formatBytes, notify } from './dom.js';
import { explain, isAbort } from './errors.js';
import { cacheAvailable, cachedFile, cacheName, listCached, removeCached, saveBlob } from './model-cache.js';
import { downloadModel } from './download.js';
import { resetProgress, showProgress } from './load-progress.js';

const DEMO_URL = 'models/kjv-3m-Q8_0.bin';
const CHECKPOINT = /\.(pth|safetensors)$/i;

/**
 * @param {{ engine: import('/js/echo-engine.js').EchoEngine, onSettled: () => void }} deps
 *   onSettled: after every load attempt (the loaded model may have changed either way); awaited.
 */
export function initModels({ engine, onSettled }) {
  const box = byId('load-progress-box');
  const message = byId('load-message');
  let controller = null;

  async function run(label, task) {
    if (controller) return;
    controller = new AbortController();
    const started = performance.now();
    notify(message, '');
    resetProgress();
    box.hidden = false;
    try {
      const info = await task(controller.signal, (p) => showProgress(p, started));
      notify(message, `Loaded ${label}: ${info.arch} ${info.dataType}, ${formatBytes(info.fileBytes)}.`);
    } catch (e) {
      notify(message, isAbort(e) ? 'Loading was cancelled.' : explain(e), isAbort(e) ? '' : 'error');
    } finally {
      controller = null;
      box.hidden = true;
      await onSettled();
      await refreshCache();
      // How many loads have ended: what a test (or a script) waits on.
      document.body.dataset.loadsSettled = String(Number(document.body.dataset.loadsSettled ?? 0) + 1);
    }
  }

  function fromUrl(url) {
    const name = cacheName(url);
    return run(name, async (signal, onProgress) => {
      const kept = await cachedFile(name);
      if (kept) return engine.loadModel(kept, { signal, onProgress });
      return downloadModel(engine, new URL(url, location.href).href, name, { signal, onProgress });
    });
  }

  function fromFile(file) {
    if (!CHECKPOINT.test(file.name)) {
      return run(file.name, (signal, onProgress) => engine.loadModel(file, { signal, onProgress }));
    }
    const name = file.name.replace(CHECKPOINT, '-FP16.bin');
    return run(name, async (signal, onProgress) => {
      const { blob } = await engine.convert(file, { signal, onProgress });
      // Keeping it is a bonus: a full or missing cache must not stop the load.
      if (cacheAvailable) await saveBlob(name, blob).catch(() => {});
      return engine.loadModel(blob, { signal, onProgress });
    });
  }

  async function refreshCache() {
    if (!cacheAvailable) {
      byId('cache-empty').textContent = 'This browser has no Origin Private File System, so models are not kept: each load downloads again.';
      return;
    }
    const list = byId('cache-list');
    const items = await listCached().catch(() => []);
    byId('cache-empty').hidden = items.length > 0;
    list.replaceChildren(...items.map(({ name, size }) => el('li', { className: 'cache-item', dataset: { name } },
      el('span', { className: 'name', textContent: name }),
      el('span', { className: 'size', textContent: formatBytes(size) }),
      el('button', { type: 'button', textContent: 'Load', ariaLabel: `Load ${name}`, onclick: () => fromCache(name) }),
      el('button', { type: 'button', textContent: 'Delete', ariaLabel: `Delete ${name}`, onclick: () => removeCached(name).then(refreshCache) }),
    )));
  }

  function fromCache(name) {
    return run(name, async (signal, onProgress) => {
      const file = await cachedFile(name);
      if (!file) throw new Error(`${name} is no longer kept in this browser`);
      return engine.loadModel(file, { signal, onProgress });
    });
  }

  byId('load-demo').addEventListener('click', () => fromUrl(DEMO_URL));
  byId('url-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const url = byId('model-url').value.trim();
    if (url) fromUrl(url);
  });
  byId('model-file').addEventListener('change', (e) => {
    const [file] = e.target.files;
    if (file) fromFile(file);
    e.target.value = '';
  });
  const zone = byId('drop-zone');
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    const [file] = e.dataTransfer.files;
    if (file) fromFile(file);
  });
  byId('load-cancel').addEventListener('click', () => controller?.abort());
  refreshCache();
}
