// Live engine status: backend, threads, cross-origin isolation, the loaded model, the memory
// gauge (polled about once a second and after each request) and the tokens-per-second plot.
import { byId, formatBytes, fixed } from './dom.js';
import { drawSpeeds } from './plot.js';

const POLL_MS = 1000;

/** @param {{ engine: import('/js/echo-engine.js').EchoEngine }} deps */
export function initStatus({ engine }) {
  const speeds = [];
  let polling = false;

  // WebKitGTK, for one, is isolated but has no SharedArrayBuffer: the engine then runs one thread.
  const shared = crossOriginIsolated && typeof SharedArrayBuffer === 'function';
  byId('status-isolation').textContent = shared
    ? 'cross-origin isolated (COOP/COEP): threads can share memory'
    : crossOriginIsolated
      ? 'cross-origin isolated (COOP/COEP), but this browser has no SharedArrayBuffer: single-threaded; everything works'
      : 'not cross-origin isolated: single-threaded; everything works';

  // The worker answers in order: a poll waits behind a generation, so never send a second one.
  async function pollMemory() {
    if (polling) return;
    polling = true;
    try {
      const m = await engine.memory();
      const gauge = byId('memory-gauge');
      gauge.max = m.limitBytes;
      gauge.low = m.limitBytes * 0.7;
      gauge.high = m.limitBytes * 0.9;
      gauge.value = m.usedBytes;
      byId('memory-figures').textContent = `${formatBytes(m.usedBytes)} used, ${formatBytes(m.peakBytes)} peak, of ${formatBytes(m.limitBytes)}`;
    } catch {
      // A failed poll is shown by the next one; the engine's errors surface where they happen.
    } finally {
      polling = false;
    }
  }

  async function showBackend() {
    try {
      const h = await engine.health();
      byId('status-backend').textContent = h.backend ? `${h.backend}${h.ok ? '' : ' (not healthy)'}` : 'ggml (no model loaded)';
      const why = h.threadsWhy ?? (shared ? 'half the cores, 1 to 4, leaving the rest to the page' : 'the single-threaded build');
      byId('status-threads').textContent = `${h.threads} of ${navigator.hardwareConcurrency} cores (${why})`;
    } catch {
      byId('status-backend').textContent = 'unknown';
    }
  }

  const redraw = () => drawSpeeds(byId('speed-plot'), speeds);
  setInterval(pollMemory, POLL_MS);
  new ResizeObserver(redraw).observe(byId('speed-plot'));
  pollMemory();
  showBackend();

  return {
    /** The loaded model's info, or null. */
    setModel(info) {
      byId('status-model').textContent = info
        ? `${info.arch}, ${info.nLayer} layers, width ${info.nEmbed}, vocabulary ${info.nVocab} (${info.tokenizer ?? 'no tokenizer'}), ${info.dataType}, ${formatBytes(info.fileBytes)} file, ${formatBytes(info.memoryBytes)} in memory`
        : 'none';
      showBackend();
      pollMemory();
    },
    afterRequest() {
      pollMemory();
      showBackend();
    },
    addSpeed(stats) {
      speeds.push({ prompt: stats.promptTokensPerS, decode: stats.decodeTokensPerS });
      const last = speeds.at(-1);
      byId('speed-summary').textContent = `${speeds.length} ${speeds.length === 1 ? 'request' : 'requests'}; last: prompt ${fixed(last.prompt, 0)}, decode ${fixed(last.decode, 0)} tokens/s.`;
      redraw();
    },
  };
}
