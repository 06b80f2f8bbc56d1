// The memory browser: add (remember), search (recall, with scores), list (memories) and delete
// (forget). The engine keeps the stores in IndexedDB itself; a failure to is shown as a notice.
import { byId, el, fixed, notify } from './dom.js';
import { explain } from './errors.js';

/** @param {{ engine: import('/js/echo-engine.js').EchoEngine, onChange: () => void }} deps */
export function initMemories({ engine, onChange }) {
  const notice = byId('memories-notice');
  const controls = [...document.querySelectorAll('#memory-add input, #memory-add button, #memory-search input, #memory-search button')];
  let ready = false;

  async function guarded(task) {
    try {
      await task();
    } catch (e) {
      notify(notice, explain(e), 'error');
    }
  }

  async function refresh() {
    if (!ready) return;
    const list = await engine.memories({ limit: 200 });
    byId('memories-count').textContent = list.total === 0 ? 'No memory yet.' : `${list.total} ${list.total === 1 ? 'memory' : 'memories'}${list.total > list.items.length ? ` (the first ${list.items.length} shown)` : ''}.`;
    byId('memory-list').replaceChildren(...list.items.map((m) => el('li', { className: 'memory' },
      el('span', { className: 'memory-text', textContent: m.text }),
      el('button', { type: 'button', textContent: 'Delete', ariaLabel: `Delete memory ${m.id}`, onclick: () => guarded(() => forget(m.id)) }),
    )));
    if (list.storageError || !list.persistent) {
      notify(notice, list.storageError ? explain(list.storageError) : 'Memories are not saved in this browser: they last until the page closes.', 'warning');
    }
  }

  async function forget(id) {
    await engine.forget(id);
    byId('memory-hits').replaceChildren();
    await refresh();
    onChange();
  }

  byId('memory-add').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = byId('memory-text');
    const text = input.value.trim();
    if (!text) return;
    guarded(async () => {
      await engine.remember(text, { metadata: { source: 'demo page' } });
      input.value = '';
      await refresh();
      onChange();
    });
  });

  byId('memory-search').addEventListener('submit', (e) => {
    e.preventDefault();
    const query = byId('memory-query').value.trim();
    if (!query) return;
    guarded(async () => {
      const hits = await engine.recall(query, { k: 5 });
      byId('memory-hits').replaceChildren(...(hits.length ? hits.map((h) => el('li', {},
        el('span', { className: 'memory-text', textContent: h.text }),
        el('span', { className: 'scores', textContent: `score ${fixed(h.score)} · cosine ${fixed(h.cosine)} · lexical ${fixed(h.lexical)}` }),
      )) : [el('li', { className: 'hint', textContent: 'Nothing recalled.' })]));
    });
  });

  return {
    refresh: () => guarded(refresh),
    /** Memories are embedded by the model: the browser works once one is loaded. */
    setReady(value) {
      ready = value;
      for (const c of controls) c.disabled = !value;
      if (value) guarded(refresh);
    },
  };
}
