// Search: every filter of GET /v1/events, newest first by default, paging with the cursor.
// The query lives in the address (`#/search?actor=…`), so a search can be shared; the token
// never does.

import * as api from './api.js';
import { h, fill, errorBox, field } from './dom.js';

export const FILTERS = [
  ['from', 'From (RFC 3339)', 'text', '2026-11-23T00:00:00Z'],
  ['to', 'To (RFC 3339, exclusive)', 'text', ''],
  ['actor', 'Actor id', 'text', ''],
  ['action', 'Action', 'text', 'patient.record.read'],
  ['activity', 'Activity', ['', 'create', 'read', 'update', 'delete', 'login', 'logout', 'export', 'disclose', 'admin', 'other']],
  ['outcome', 'Outcome', ['', 'success', 'failure', 'unknown']],
  ['target_type', 'Target type', 'text', ''],
  ['target_id', 'Target id', 'text', ''],
  ['ip', 'IP address', 'text', ''],
  ['source', 'Source app', 'text', ''],
  ['q', 'Text in details', 'text', ''],
  ['limit', 'Per page', ['50', '20', '100', '500']],
  ['order', 'Order', [['desc', 'newest first'], ['asc', 'oldest first']]],
];

function input(name, kind, placeholder, value) {
  if (Array.isArray(kind)) {
    return h('select', { name },
      kind.map((o) => {
        const [v, label] = Array.isArray(o) ? o : [o, o === '' ? 'any' : o];
        return h('option', { value: v, selected: v === value }, label);
      }));
  }
  const el = h('input', { name, type: kind, placeholder, spellcheck: 'false' });
  el.value = value ?? '';
  return el;
}

/** The search form; on submit it calls `go(params)`. */
export function searchForm(params, go, id = 'search') {
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Event filters' },
    FILTERS.map(([name, label, kind, placeholder]) => {
      const el = input(name, kind, placeholder, params.get(name) ?? (name === 'order' ? 'desc' : ''));
      el.id = `${id}-${name}`;
      return field(label, el);
    }),
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, 'Search'),
      h('button', { type: 'reset', class: 'secondary' }, 'Clear')),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const out = {};
    for (const [name] of FILTERS) {
      const value = form.elements[name].value.trim();
      if (value && !(name === 'order' && value === 'desc') && !(name === 'limit' && value === '50')) out[name] = value;
    }
    go(out);
  });
  form.addEventListener('reset', () => setTimeout(() => go({}), 0));
  return form;
}

/** A table of events, each linking to its detail. */
export function eventTable(events, caption) {
  if (events.length === 0) return h('p', { class: 'muted', 'data-testid': 'no-events' }, 'No events match.');
  return h('table', { class: 'events', 'data-testid': 'events' },
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, ['seq', 'occurred at (UTC)', 'action', 'outcome', 'actor', 'targets', 'ip'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, events.map((e) => h('tr', {},
      h('td', {}, h('a', { href: `#/event/${encodeURIComponent(e.id)}`, 'aria-label': `Event ${e.seq}: ${e.action}` }, String(e.seq))),
      h('td', {}, e.occurred_at ?? e.received_at),
      h('td', {}, e.action),
      h('td', {}, e.outcome),
      h('td', {}, e.actor?.id ?? ''),
      h('td', {}, (e.targets ?? []).map((t) => `${t.type}:${t.id}`).join(', ')),
      h('td', {}, e.context?.ip ?? ''),
    ))),
  );
}

export async function searchView(container, { params, navigate }) {
  const results = h('div', { class: 'results', 'aria-live': 'polite' });
  fill(container,
    h('h1', {}, 'Search events'),
    searchForm(params, (out) => navigate('search', out)),
    results);
  const query = Object.fromEntries(params);
  query.order ??= 'desc';
  query.limit ??= '50';
  fill(results, h('p', { class: 'muted' }, 'Searching…'));
  let page;
  try {
    page = await api.request('/v1/events', { params: query });
  } catch (error) {
    fill(results, errorBox(error.message));
    return;
  }
  const nav = h('nav', { class: 'pager', 'aria-label': 'Pages' },
    params.has('cursor')
      ? h('a', { href: `#/search?${without(params, 'cursor')}` }, 'First page')
      : null,
    page.next_cursor
      ? h('a', { href: `#/search?${withParam(params, 'cursor', page.next_cursor)}`, 'data-testid': 'next-page' }, 'Next page')
      : h('span', { class: 'muted' }, 'Last page'),
  );
  const order = query.order === 'asc' ? 'oldest first' : 'newest first';
  fill(results, eventTable(page.events, `${page.events.length} events, ${order}`), nav);
}

function without(params, name) {
  const copy = new URLSearchParams(params);
  copy.delete(name);
  return copy.toString();
}

function withParam(params, name, value) {
  const copy = new URLSearchParams(params);
  copy.set(name, value);
  return copy.toString();
}
