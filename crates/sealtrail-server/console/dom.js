// Small helpers to build the page with the DOM (never with HTML strings: what the server
// sends is always shown as text).

/** An element: `h('p', {class: 'x', onclick: f}, 'text', child, …)`. */
export function h(tag, attrs = {}, ...children) {
  const svg = tag.startsWith('svg:');
  const el = svg
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Announces a message to screen readers. */
export function announce(message) {
  const status = document.getElementById('status');
  if (status) status.textContent = message;
}

/** A status label that says what it means in words, not colour alone. */
export function badge(state, text) {
  const symbol = { pass: '\u2713', fail: '\u2717', warn: '!', ok: '\u2713', info: 'i', pending: '\u2026' }[state] ?? '';
  return h('span', { class: `badge badge-${state}` }, h('span', { 'aria-hidden': 'true' }, symbol, ' '), text);
}

/** An error box for an API answer that failed. */
export function errorBox(message) {
  return h('p', { class: 'error', role: 'alert' }, h('strong', {}, 'Error: '), message);
}

/** `2026-11-23T10:00:00Z` style text for a Date, to the second, UTC. */
export function isoSeconds(date) {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A duration in seconds as words: "2 h 5 min", "40 s". */
export function duration(seconds) {
  const s = Math.round(Number(seconds));
  if (!Number.isFinite(s)) return String(seconds);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min ${s % 60 ? `${s % 60} s` : ''}`.trim();
  if (s < 172800) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** A key/value list. */
export function facts(pairs) {
  return h(
    'dl',
    { class: 'facts' },
    pairs
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v === null ? h('span', { class: 'muted' }, 'none') : v)]),
  );
}

/** A form field with its label. */
export function field(label, input, hint) {
  const id = input.id || `f-${label.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  input.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hint ? h('span', { class: 'hint' }, hint) : null);
}
