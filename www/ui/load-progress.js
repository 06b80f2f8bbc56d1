// The load progress bar and its figures: bytes, MB/s and time left (when the size is known).
import { byId, formatBytes } from './dom.js';

const PHASES = { download: 'Reading the model', prepare: 'Preparing the model', ready: 'Ready', convert: 'Converting the checkpoint' };

/** @param {{ phase: string, loaded: number, total?: number }} p @param {number} started performance.now() at the start */
export function showProgress({ phase, loaded, total }, started) {
  const bar = byId('load-progress');
  byId('load-phase').textContent = PHASES[phase] ?? phase;
  if (total) {
    bar.max = total;
    bar.value = Math.min(loaded, total);
  } else {
    bar.removeAttribute('value');
  }
  // The tests read this to check progress only moves forward.
  bar.dataset.loaded = String(loaded);
  const seconds = (performance.now() - started) / 1000;
  const rate = seconds > 0 ? loaded / seconds : 0;
  const parts = [total ? `${formatBytes(loaded)} of ${formatBytes(total)}` : formatBytes(loaded)];
  if (rate > 0) parts.push(`${(rate / 1e6).toFixed(1)} MB/s`);
  if (total && rate > 0 && phase !== 'ready') parts.push(`${Math.max(0, (total - loaded) / rate).toFixed(1)} s left`);
  byId('load-figures').textContent = parts.join(' · ');
}

/** Empty, for the next load: no figures of the last one. */
export function resetProgress() {
  const bar = byId('load-progress');
  bar.value = 0;
  bar.dataset.loaded = '0';
  byId('load-phase').textContent = PHASES.download;
  byId('load-figures').textContent = '';
}
