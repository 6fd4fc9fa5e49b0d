// The console's entry point: sign-in, the screens the token's scopes allow, and the router.
// The address holds the screen and its query after `#` (so a search can be shared); the
// token never does.

import * as api from './api.js';
import { h, fill, announce, errorBox } from './dom.js';
import { timelineView } from './timeline.js';
import { searchView } from './search.js';
import { eventView } from './event.js';
import { healthView } from './health.js';
import { reportsView } from './reports.js';

const screens = {
  timeline: { scope: 'events:read', title: 'Timeline', render: timelineView },
  search: { scope: 'events:read', title: 'Search', render: searchView },
  event: { scope: 'events:read', title: 'Event', render: eventView },
  health: { scope: null, title: 'Log & health', render: healthView },
  reports: { scope: 'reports', title: 'Reports', render: reportsView },
};

/** The current route: `#/name/rest?query` as {name, rest, params}. */
export function route() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = hash.split('?');
  const [name, ...rest] = path.split('/');
  return { name: name || '', rest: rest.map(decodeURIComponent).join('/'), params: new URLSearchParams(query) };
}

/** Goes to `#/name?params` (params: an object or URLSearchParams; empty values left out). */
export function navigate(name, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of params instanceof URLSearchParams ? params : Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') query.set(k, v);
  }
  const text = query.toString();
  location.hash = `#/${name}${text ? `?${text}` : ''}`;
}

function defaultScreen() {
  if (api.can('events:read')) return 'timeline';
  if (api.can('reports')) return 'reports';
  return 'health';
}

let rendering = 0;

async function render() {
  const view = document.getElementById('view');
  if (!api.signedIn()) return;
  let { name, rest, params } = route();
  if (!screens[name]) {
    navigate(defaultScreen());
    return;
  }
  const screen = screens[name];
  for (const link of document.querySelectorAll('#nav a')) {
    const current = link.getAttribute('href') === `#/${name}`;
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${screen.title} · sealtrail console`;
  if (screen.scope && !api.can(screen.scope)) {
    fill(view, h('h1', {}, screen.title), errorBox(`this token lacks the ${screen.scope} scope this screen needs`));
    return;
  }
  const ticket = ++rendering;
  const container = h('div', { class: 'screen', 'data-screen': name });
  fill(view, container);
  try {
    await screen.render(container, { rest, params, navigate, stale: () => ticket !== rendering });
  } catch (error) {
    if (ticket === rendering) container.append(errorBox(error.message));
  }
  if (ticket === rendering) announce(`${screen.title} shown`);
}

function showSignedIn() {
  const who = api.whoami();
  document.getElementById('signin').hidden = true;
  document.getElementById('view').hidden = false;
  const nav = document.getElementById('nav');
  nav.hidden = false;
  for (const item of nav.querySelectorAll('li[data-scope]')) item.hidden = !api.can(item.dataset.scope);
  const whoEl = document.getElementById('who');
  whoEl.hidden = false;
  fill(
    whoEl,
    'Tenant ',
    h('strong', { 'data-testid': 'tenant' }, who.tenant),
    ' · scopes: ',
    who.scopes.join(', ') || 'none',
    ' ',
    h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out'),
  );
}

function signOut() {
  api.signOut();
  document.getElementById('signin').hidden = false;
  fill(document.getElementById('view')).hidden = true;
  document.getElementById('nav').hidden = true;
  document.getElementById('who').hidden = true;
  document.getElementById('token').focus();
  announce('Signed out');
}

async function onSignIn(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = document.getElementById('signin-error');
  error.hidden = true;
  const token = form.token.value.trim();
  const tenant = form.tenant.value.trim();
  try {
    await api.signIn(token, tenant);
  } catch (failure) {
    error.textContent = `Sign-in failed: ${failure.message}`;
    error.hidden = false;
    form.token.focus();
    return;
  }
  // The inputs forget the token too; only api.js keeps it.
  form.token.value = '';
  showSignedIn();
  await render();
  document.getElementById('main').focus();
}

document.getElementById('signin-form').addEventListener('submit', onSignIn);
window.addEventListener('hashchange', render);
document.getElementById('token').focus();
