// Log & health: the caller's log (size, latest checkpoint and its age, daily seals,
// verification), every tenant's for an admin token, and the server's health checks with the
// failing ones first.

import * as api from './api.js';
import * as proof from './proof.js';
import { h, fill, errorBox, badge, facts, duration } from './dom.js';

const RANK = { fail: 0, warn: 1, ok: 2, info: 3 };
const WORDS = {
  fail: ['failing', 'violated', 'missing', 'fail', 'critical', 'unreachable', 'error', 'failed'],
  warn: ['degraded', 'warn', 'warning', 'unchecked', 'idle', 'lagging', 'behind'],
  ok: ['ok', 'valid', 'healthy', 'active', 'present', 'enabled', 'reachable', 'intact'],
};

function wordStatus(word) {
  for (const [status, words] of Object.entries(WORDS)) if (words.includes(String(word).toLowerCase())) return status;
  return null;
}

/** One row per health check: [name, status, value text], failing first. */
export function healthRows(checks) {
  const rows = [];
  for (const [name, value] of Object.entries(checks ?? {})) {
    let status = 'info';
    let text;
    if (value === null || value === undefined) {
      text = 'none';
    } else if (typeof value === 'object' && !Array.isArray(value)) {
      status = wordStatus(value.status) ?? 'info';
      if (name === 'spool') status = Number(value.depth) > 0 ? 'warn' : 'ok';
      text = Object.entries(value).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ');
    } else if (Array.isArray(value)) {
      status = value.length ? 'fail' : 'ok';
      text = value.join(', ') || 'none';
    } else {
      text = String(value);
      status = wordStatus(value) ?? 'info';
      if (name.endsWith('_error')) status = 'fail';
      if (name.endsWith('_warning')) status = 'warn';
      if (name === 'gaps_open') status = Number(value) > 0 ? 'warn' : 'ok';
      if (name === 'index_lag_seconds') status = Number(value) > 30 ? 'warn' : 'ok';
    }
    rows.push([name, status, text]);
  }
  return rows.sort((a, b) => RANK[a[1]] - RANK[b[1]] || a[0].localeCompare(b[0]));
}

export async function healthView(container, { stale }) {
  const logBox = h('section', { 'aria-labelledby': 'log-h' }, h('h2', { id: 'log-h' }, 'Your log'), h('p', { class: 'muted' }, 'Loading…'));
  const healthBox = h('section', { 'aria-labelledby': 'health-h' }, h('h2', { id: 'health-h' }, 'Health checks'), h('p', { class: 'muted' }, 'Loading…'));
  const tenantsBox = api.can('admin') ? h('section', { 'aria-labelledby': 'tenants-h' }) : null;
  fill(container, h('h1', {}, 'Log & health'), healthBox, logBox, tenantsBox);

  const [health, checkpoint, key, seals, tenants] = await Promise.allSettled([
    fetchHealth(),
    api.can('log:read') ? api.request('/v1/log/checkpoint', { as: 'text' }) : Promise.reject(new Error('this token lacks log:read')),
    api.can('log:read') ? api.request('/v1/log/key', { as: 'text' }) : Promise.reject(new Error('this token lacks log:read')),
    api.can('log:read') ? api.request('/v1/log/seals') : Promise.reject(new Error('this token lacks log:read')),
    api.can('admin') ? api.request('/v1/admin/tenants') : Promise.resolve(null),
  ]);
  if (stale()) return;

  if (health.status === 'fulfilled') {
    const rows = healthRows(health.value.checks);
    const overall = health.value.status;
    fill(healthBox,
      h('h2', { id: 'health-h' }, 'Health checks'),
      h('p', { 'data-testid': 'health-status' }, 'Server status: ', badge(wordStatus(overall) ?? 'info', overall)),
      h('table', { class: 'checks', 'data-testid': 'health-checks' },
        h('caption', {}, 'Failing checks first, then warnings'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'status'), h('th', { scope: 'col' }, 'check'), h('th', { scope: 'col' }, 'value'))),
        h('tbody', {}, rows.map(([name, status, text]) => h('tr', { 'data-status': status },
          h('td', {}, badge(status, status.toUpperCase())), h('th', { scope: 'row' }, name), h('td', {}, text))))));
  } else {
    fill(healthBox, h('h2', { id: 'health-h' }, 'Health checks'), errorBox(health.reason.message));
  }

  const logParts = [h('h2', { id: 'log-h' }, 'Your log')];
  if (checkpoint.status === 'fulfilled') {
    let parsed = null;
    let signature = null;
    try {
      const { text } = proof.parseNote(checkpoint.value);
      parsed = proof.parseCheckpoint(text);
      if (key.status === 'fulfilled') {
        await proof.verifyNote(checkpoint.value, await proof.parseVerifierKey(key.value.trim()));
        signature = badge('pass', 'signature verified in this browser');
      }
    } catch (error) {
      signature = badge('fail', `does not verify: ${error.message}`);
    }
    const age = parsed?.timestamp ? (Date.now() - Date.parse(parsed.timestamp)) / 1000 : null;
    logParts.push(facts([
      ['origin', parsed?.origin ?? ''],
      ['size (entries)', h('span', { 'data-testid': 'log-size' }, String(parsed?.size ?? ''))],
      ['latest checkpoint', parsed?.timestamp ? `${parsed.timestamp} (${duration(Math.max(age, 0))} ago)` : 'no timestamp'],
      ['root', h('code', { class: 'hash' }, parsed ? proof.bytesToHex(parsed.root) : '')],
      ['signature', signature],
      ['verifier key', key.status === 'fulfilled' ? h('code', { class: 'hash' }, key.value.trim()) : null],
    ]));
    logParts.push(h('p', { class: 'notice' }, 'Compare the verifier key with the one you obtained out of band before trusting any check made with it.'));
  } else {
    logParts.push(errorBox(`checkpoint: ${checkpoint.reason.message}`));
  }
  if (seals.status === 'fulfilled') {
    const list = seals.value.seals ?? [];
    logParts.push(h('h3', {}, 'Daily seals'),
      list.length === 0
        ? h('p', { class: 'muted' }, 'No day sealed yet (a UTC day is sealed after it ends).')
        : h('table', { class: 'seals' }, h('caption', {}, `${list.length} seals`),
          h('thead', {}, h('tr', {}, ['day', 'issue', 'size', 'root', 'supersedes'].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, list.map((s) => h('tr', {}, h('td', {}, s.day), h('td', {}, String(s.issue)), h('td', {}, String(s.size ?? '')), h('td', {}, h('code', { class: 'hash' }, s.root ?? '')), h('td', {}, s.supersedes ?? ''))))));
  } else if (api.can('log:read')) {
    logParts.push(errorBox(`seals: ${seals.reason.message}`));
  }
  const verifyBox = h('div', { 'aria-live': 'polite', 'data-testid': 'verify-result' });
  if (api.can('verify')) {
    logParts.push(h('h3', {}, 'Verification'),
      h('p', {}, 'Re-reads the whole log on the server and checks every link of its chain and its tree.'),
      h('button', { type: 'button', onclick: () => runVerify(verifyBox) }, 'Verify the log now'), verifyBox);
  }
  fill(logBox, logParts);

  if (tenantsBox && tenants.status === 'fulfilled' && tenants.value) {
    fill(tenantsBox, h('h2', { id: 'tenants-h' }, 'Every tenant (admin)'),
      h('table', {}, h('caption', {}, 'Log sizes and checkpoints'),
        h('thead', {}, h('tr', {}, ['tenant', 'size', 'checkpoint size', 'frozen', 'held'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, tenants.value.tenants.map((t) => h('tr', {}, h('td', {}, t.name), h('td', {}, String(t.size)), h('td', {}, String(t.checkpoint_size ?? 'none')), h('td', {}, t.frozen ? 'FROZEN' : 'no'), h('td', {}, String(t.held)))))));
  }
}

async function fetchHealth() {
  // 503 still carries the checks: that is when they matter.
  const response = await fetch('/health', { cache: 'no-store', credentials: 'omit' });
  return response.json();
}

async function runVerify(box) {
  fill(box, h('p', { class: 'muted' }, 'Verifying…'));
  try {
    const result = await api.request('/v1/verify');
    fill(box,
      h('p', {}, result.valid ? badge('pass', 'VALID') : badge('fail', 'VIOLATED'), ` ${result.rows_checked} entries checked`,
        result.first_broken_seq !== null && result.first_broken_seq !== undefined ? `; first broken seq ${result.first_broken_seq}` : ''),
      result.violations?.length
        ? h('ul', {}, result.violations.map((v) => h('li', {}, `seq ${v.seq}: ${v.kind} \u2014 ${v.detail}`)))
        : null);
  } catch (error) {
    fill(box, errorBox(error.message));
  }
}
