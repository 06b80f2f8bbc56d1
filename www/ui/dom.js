// DOM helpers. Text always goes in as text nodes (textContent), never as HTML: model output,
// memories and file names are untrusted.

export const byId = (id) => document.getElementById(id);

/** `<tag class=…>` with text or element children; `props` are set as properties (never innerHTML). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'dataset') Object.assign(node.dataset, v);
    else node[k] = v;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** Binary units, as the engine's memory cap (600 MiB) is set. */
export function formatBytes(n) {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(0)} KiB`;
  return `${n} B`;
}

export const fixed = (x, digits = 2) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '—');

/** Shows `text` in a notice element (hidden when empty); `kind` is a class: error, warning. */
export function notify(node, text, kind = '') {
  node.textContent = text ?? '';
  node.hidden = !text;
  node.classList.toggle('error', kind === 'error');
  node.classList.toggle('warning', kind === 'warning');
}
