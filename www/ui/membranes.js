// The three membrane panels of a cognitive turn, each filled as its event arrives.
import { byId, el, fixed } from './dom.js';

const percent = (x) => (typeof x === 'number' ? `${Math.round(x * 100)} %` : '—');

function bar(label, value) {
  return el('meter', { min: 0, max: 1, value: Math.max(0, Math.min(1, value ?? 0)), ariaLabel: label, title: `${label}: ${percent(value)}` });
}

/** A definition list of the rows that have a value (an older engine reports fewer fields). */
function facts(rows) {
  return el('dl', { className: 'facts' }, ...rows.filter(([, v]) => v !== undefined && v !== null)
    .flatMap(([k, v]) => [el('dt', { textContent: k }), el('dd', { textContent: v })]));
}

function memoryPanel(r) {
  const recalled = r.recalled.length
    ? el('ol', { className: 'plain-list hits' }, ...r.recalled.map((hit) => el('li', {},
      el('span', { className: 'memory-text', textContent: hit.text }),
      el('span', { className: 'scores', textContent: `score ${fixed(hit.score)} · cosine ${fixed(hit.cosine)} · lexical ${fixed(hit.lexical)}` }))))
    : el('p', { className: 'hint', textContent: 'No memory recalled.' });
  return [
    recalled,
    r.stored ? el('span', { className: 'badge valid', textContent: `stored as memory #${r.stored.id}` }) : el('p', { className: 'hint', textContent: `Input not stored (policy: ${r.storePolicy}).` }),
    r.storageError || r.persistent === false
      ? el('p', { className: 'notice warning', textContent: r.storageError?.message ?? 'Memories are not saved in this browser: they last until the page closes.' })
      : null,
  ];
}

function reasoningPanel(r) {
  const steps = el('ol', { className: 'plain-list steps' }, ...r.steps.map((s, i) => el('li', {},
    el('span', { textContent: s.text }), bar(`Step ${i + 1} confidence`, s.confidence), el('span', { className: 'scores', textContent: percent(s.confidence) }))));
  const branchList = el('ol', { className: 'plain-list branches' }, ...r.branches.map((b, i) => el('li', { className: i === r.chosen ? 'chosen' : '' },
    el('span', { textContent: `${i === r.chosen ? 'Kept: ' : ''}${b.text}` }),
    el('span', { className: 'scores', textContent: `confidence ${percent(b.confidence)} · agreement ${percent(b.agreement)}` }))));
  return [
    el('h4', { textContent: 'Steps of the kept chain' }), steps,
    el('h4', { textContent: `Branches (agreement ${percent(r.agreement)})` }), branchList,
  ];
}

function grammarPanel(r) {
  const a = r.analysis ?? {};
  const yes = (x) => (x === undefined ? undefined : x ? 'yes' : 'no');
  return [facts([
    ['Sentence type', a.sentenceType],
    ['Words', a.words?.toString()],
    ['Sentences', a.sentences?.toString()],
    ['Language', a.language && `${a.language.name}${a.language.confidence !== undefined ? ` (${percent(a.language.confidence)})` : ''}`],
    ['Readability', a.readability && `Flesch ${fixed(a.readability.fleschReadingEase, 0)}, grade ${fixed(a.readability.fleschKincaidGrade, 1)}`],
    ['Script', a.script && `${a.script.name} (${percent(a.script.share)})`],
    ['Code', a.code && (a.code.detected ? `yes${a.code.language ? ` (${a.code.language})` : ''}` : 'no')],
    ['Markup', a.markup && `HTML ${yes(a.markup.html)}, Markdown ${yes(a.markup.markdown)}`],
    ['Output format', r.constrained ? r.format : 'free text'],
  ])];
}

const PANELS = { memory: memoryPanel, reasoning: reasoningPanel, grammar: grammarPanel };

export function initMembranes() {
  const panel = (name) => byId(`panel-${name}`);
  return {
    clear() {
      for (const name of Object.keys(PANELS)) {
        panel(name).dataset.filled = 'false';
        panel(name).querySelector('.panel-body').replaceChildren(el('p', { className: 'hint', textContent: 'Waiting for a cognitive turn…' }));
      }
    },
    show(name, result) {
      const render = PANELS[name];
      if (!render) return;
      const summary = el('p', { className: 'summary', textContent: result.output });
      const meta = el('p', { className: 'scores', textContent: `confidence ${percent(result.confidence)} · ${fixed(result.ms, 0)} ms` });
      panel(name).querySelector('.panel-body').replaceChildren(summary, meta, ...render(result).filter(Boolean));
      panel(name).dataset.filled = 'true';
    },
  };
}
