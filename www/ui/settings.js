// The sampling settings panel, read as generate/process options.
import { byId } from './dom.js';

function number(id) {
  const input = byId(id);
  const value = input.valueAsNumber;
  return Number.isFinite(value) ? value : undefined;
}

/** Options common to generate and process; an empty seed means a fresh one each time. */
export function samplingOptions() {
  const options = {
    temperature: number('temperature'),
    topP: number('top-p'),
    topK: number('top-k'),
    presencePenalty: number('presence-penalty'),
    frequencyPenalty: number('frequency-penalty'),
    maxTokens: number('max-tokens'),
    seed: number('seed'),
  };
  for (const k of Object.keys(options)) if (options[k] === undefined) delete options[k];
  return options;
}

export function branches() {
  return Math.min(4, Math.max(1, Math.round(number('branches') ?? 1)));
}
