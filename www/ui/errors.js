// Engine failures as sentences a visitor can act on. `EchoError`s carry a `code` (see
// js/echo-engine.d.ts); anything else (storage, network) gets a generic sentence with its message.
import { formatBytes } from './dom.js';

const SENTENCES = {
  invalid_model: (e) => `That file is not a model this engine can read (${e.message}). Choose an rwkv.cpp .bin file, or a .pth or .safetensors checkpoint to convert.`,
  unsupported_version: (e) => `This model's file format is not supported (${e.message}). Convert the checkpoint again with this page or a recent rwkv.cpp.`,
  model_too_large: (e) => `This model needs ${formatBytes(e.neededBytes)} of memory, but the engine may use at most ${formatBytes(e.limitBytes)}, so it was not downloaded. Choose a smaller model, or a more quantized file (Q5_1, Q4_0).`,
  aborted: () => 'Stopped.',
  load_failed: (e) => (e.status
    ? `The server answered HTTP ${e.status} for that model. Check the address and try again.`
    : `The model could not be read (${e.message}). Check the address or your connection, then try again.`),
  no_model: () => 'No model is loaded yet. Load the demo model (or another) first.',
  invalid_options: (e) => `The engine refused the request: ${e.message}. Correct it and send again.`,
  out_of_memory: () => 'The engine ran out of memory. Try fewer tokens, a shorter message or a smaller model.',
  compute_failed: (e) => `The computation failed (${e.message}). Send again; if it keeps failing, reload the page.`,
  busy: () => 'The engine is busy with another request. Wait for it to finish, or press Stop.',
  storage_failed: (e) => `Saving to this browser's storage failed (${e.message}). Memories are kept only until the page is closed.`,
  worker_crashed: () => 'The engine stopped unexpectedly. Reload the page to start it again.',
};

export function explain(error) {
  const sentence = SENTENCES[error?.code];
  if (sentence) return sentence(error);
  return `Something went wrong (${error?.message ?? error}). Try again, or reload the page.`;
}

export const isAbort = (error) => error?.code === 'aborted' || error?.name === 'AbortError';
