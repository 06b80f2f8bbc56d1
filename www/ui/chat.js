// The conversation: a transcript, the composer (Enter sends, Shift+Enter is a new line, Escape
// stops) and three kinds of turn — text (streamed continuation), structured (decoded under a JSON
// Schema, then checked) and cognitive (processStream, its membranes shown as they arrive).
import { byId, el, fixed, notify } from './dom.js';
import { explain, isAbort } from './errors.js';
import { branches, samplingOptions } from './settings.js';
import { checkAgainstSchema } from './schema-check.js';

const DEFAULT_SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 24 },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    blessed: { type: 'boolean' },
  },
  required: ['name', 'age', 'blessed'],
  additionalProperties: false,
};

const REASONS = { length: 'token limit reached', stop: 'stop sequence', grammar: 'grammar complete', abort: 'stopped', error: 'failed' };

/**
 * @param {{ engine: import('/js/echo-engine.js').EchoEngine, membranes: { clear(): void, show(name: string, result: object): void },
 *   onStats: (stats: object) => void, onRequestDone: () => void, onMemoriesChanged: () => void }} deps
 */
export function initChat({ engine, membranes, onStats, onRequestDone, onMemoriesChanged }) {
  const transcript = byId('transcript');
  const prompt = byId('prompt');
  const sendButton = byId('send');
  const stopButton = byId('stop');
  const sessionId = `demo-${Date.now().toString(36)}`;
  /** [{ role, text }] as processStream takes it. */
  let history = [];
  /** The engine's conversation holds this transcript's text turns, so the next may continue it. */
  let live = false;
  /** The running generation or process run (both have abort()). */
  let current = null;
  let ready = false;

  byId('schema').value = JSON.stringify(DEFAULT_SCHEMA, null, 2);
  const mode = () => document.querySelector('input[name="mode"]:checked').value;
  const showMode = () => {
    byId('schema-box').hidden = mode() !== 'structured';
  };
  document.querySelectorAll('input[name="mode"]').forEach((r) => r.addEventListener('change', showMode));
  showMode();

  function addMessage(role, text) {
    const body = el('div', { className: 'text', textContent: text });
    const msg = el('div', { className: `msg ${role}`, dataset: { chunks: '0' } },
      el('p', { className: 'who', textContent: role === 'user' ? 'You' : 'Model' }), body, el('p', { className: 'meta' }));
    transcript.append(msg);
    transcript.scrollTop = transcript.scrollHeight;
    return msg;
  }

  // Chunks may come a thousand a second, and each scroll to the end lays the page out: their text
  // goes to the page once a frame, so the page (and Stop) keeps up. Text not shown yet, by message:
  const unshown = new Map();
  function showChunks() {
    if (unshown.size === 0) return;
    for (const [msg, text] of unshown) msg.querySelector('.text').append(text);
    unshown.clear();
    transcript.scrollTop = transcript.scrollHeight;
  }

  function appendChunk(msg, text) {
    if (unshown.size === 0) requestAnimationFrame(showChunks);
    unshown.set(msg, (unshown.get(msg) ?? '') + text);
    msg.dataset.chunks = String(Number(msg.dataset.chunks) + 1);
  }

  function finish(msg, reason, detail) {
    showChunks();
    msg.dataset.stopReason = reason;
    msg.querySelector('.meta').textContent = [REASONS[reason] ?? reason, detail].filter(Boolean).join(' · ');
  }

  async function textTurn(text, msg) {
    // Continuing, a blank line parts the model's last words from the visitor's next.
    const generation = engine.generate(live ? `\n\n${text}` : text, { ...samplingOptions(), continue: live });
    current = generation;
    for await (const chunk of generation) appendChunk(msg, chunk.text);
    const r = await generation.result;
    live = true;
    finish(msg, r.stopReason, `${r.stats.generatedTokens} tokens at ${fixed(r.stats.decodeTokensPerS, 0)} tokens/s`);
    onStats(r.stats);
    return r.text;
  }

  async function structuredTurn(text, msg) {
    const schemaText = byId('schema').value;
    const generation = engine.generate(text, { ...samplingOptions(), grammar: { jsonSchema: schemaText } });
    current = generation;
    live = false;
    for await (const chunk of generation) appendChunk(msg, chunk.text);
    const r = await generation.result;
    let value;
    let problems;
    try {
      value = JSON.parse(r.text);
      problems = checkAgainstSchema(JSON.parse(schemaText), value);
    } catch {
      problems = ['the answer is not complete JSON'];
    }
    if (r.stopReason === 'length') problems.push('the token limit came first: raise Max tokens');
    const valid = r.stopReason === 'grammar' && problems.length === 0;
    showChunks();
    const body = msg.querySelector('.text');
    if (value !== undefined) body.textContent = JSON.stringify(value, null, 2);
    body.classList.add('json');
    msg.insertBefore(el('span', { className: `badge ${valid ? 'valid' : 'invalid'}`, textContent: valid ? 'valid' : 'not valid' }), body);
    finish(msg, r.stopReason, valid ? 'matches the schema' : problems.join('; '));
    onStats(r.stats);
    return r.text;
  }

  async function cognitiveTurn(text, msg) {
    membranes.clear();
    const run = engine.processStream(
      { userInput: text, sessionId, conversationHistory: history.slice(0, -1) },
      { ...samplingOptions(), reasoning: { branches: branches() }, memory: { k: 3 } },
    );
    current = run;
    live = false;
    for await (const event of run) {
      if (event.type === 'membrane') membranes.show(event.name, event.result);
      else appendChunk(msg, event.text);
    }
    const r = await run.result;
    finish(msg, r.stopReason, `confidence ${fixed(r.confidence)} · ${r.stats.generatedTokens} tokens in ${fixed(r.stats.ms / 1000, 1)} s`);
    onMemoriesChanged();
    return r.integratedResponse;
  }

  const TURNS = { chat: textTurn, structured: structuredTurn, cognitive: cognitiveTurn };

  async function send() {
    const text = prompt.value;
    if (!text.trim() || current || !ready) return;
    prompt.value = '';
    // "New conversation" during the turn replaces `history`: the answer belongs to the old one.
    const turnHistory = history;
    addMessage('user', text);
    turnHistory.push({ role: 'user', text });
    const msg = addMessage('assistant', '');
    setRunning(true);
    try {
      turnHistory.push({ role: 'assistant', text: await TURNS[mode()](text, msg) });
    } catch (e) {
      if (isAbort(e)) finish(msg, 'abort');
      else {
        finish(msg, 'error');
        msg.append(el('p', { className: 'notice error', role: 'alert', textContent: explain(e) }));
      }
    } finally {
      current = null;
      setRunning(false);
      onRequestDone();
      prompt.focus();
    }
  }

  function setRunning(running) {
    document.body.dataset.generating = String(running);
    sendButton.disabled = running || !ready;
    stopButton.disabled = !running;
  }

  const stop = () => current?.abort();

  byId('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    send();
  });
  prompt.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && current) stop();
  });
  stopButton.addEventListener('click', stop);
  byId('new-conversation').addEventListener('click', async () => {
    stop();
    history = [];
    transcript.replaceChildren();
    membranes.clear();
    if (ready) await engine.reset().catch((e) => notify(byId('app-error'), explain(e), 'error'));
    // After the reset, which the worker answers after the stopped turn (that set `live` again).
    live = false;
    prompt.focus();
  });

  return {
    /** A model is loaded (or not): the composer follows. */
    setReady(value) {
      ready = value;
      prompt.disabled = !value;
      setRunning(!!current);
      live = false;
    },
  };
}
