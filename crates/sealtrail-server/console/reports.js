// Reports: view a report of GET /v1/reports/{name} as a table, and download it as CSV,
// Markdown or JSON. A server without that route (404) is told apart from an empty report.

import * as api from './api.js';
import { h, fill, errorBox, field, isoSeconds } from './dom.js';

export const REPORTS = [
  ['daily-activity', 'Daily activity by action', []],
  ['security-incidents', 'Security incidents', []],
  ['record-access', 'Who accessed a record', [['target_type', 'Target type'], ['target_id', 'Target id']]],
  ['disclosures', 'Accounting of disclosures (HIPAA)', [['subject', 'Subject']]],
  ['user-activity', 'A user\u2019s activity', [['actor', 'Actor id']]],
  ['completeness', 'Data completeness', []],
];

export async function reportsView(container, { params, navigate }) {
  const name = REPORTS.some(([n]) => n === params.get('name')) ? params.get('name') : REPORTS[0][0];
  const [, title, extra] = REPORTS.find(([n]) => n === name);
  const now = new Date();
  const select = h('select', { name: 'name' }, REPORTS.map(([n, label]) => h('option', { value: n, selected: n === name }, label)));
  const from = h('input', { name: 'from', type: 'text', spellcheck: 'false' });
  const to = h('input', { name: 'to', type: 'text', spellcheck: 'false' });
  from.value = params.get('from') ?? isoSeconds(new Date(now.getTime() - 7 * 86400000));
  to.value = params.get('to') ?? isoSeconds(now);
  const extras = extra.map(([param, label]) => {
    const el = h('input', { name: param, type: 'text', spellcheck: 'false' });
    el.value = params.get(param) ?? '';
    return field(label, el);
  });
  const form = h('form', { class: 'filters', 'aria-label': 'Report' },
    field('Report', select), field('From (UTC)', from), field('To (UTC)', to), extras,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'View')));
  select.addEventListener('change', () => navigate('reports', { name: select.value, from: from.value, to: to.value }));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const out = { name: select.value, from: from.value.trim(), to: to.value.trim() };
    for (const [param] of extra) out[param] = form.elements[param].value.trim();
    navigate('reports', out);
  });
  const result = h('section', { 'aria-live': 'polite', 'data-testid': 'report' });
  fill(container, h('h1', {}, 'Reports'), form, result);
  if (!params.has('name')) {
    fill(result, h('p', { class: 'muted' }, 'Choose a report and a range, then View.'));
    return;
  }

  const query = { from: from.value, to: to.value };
  for (const [param] of extra) query[param] = params.get(param) ?? '';
  const path = `/v1/reports/${name}`;
  fill(result, h('p', { class: 'muted' }, 'Loading…'));
  let report;
  try {
    report = await api.request(path, { params: { ...query, format: 'json' } });
  } catch (error) {
    fill(result, error.status === 404 && (error.body?.rule === "unknown_route" || !error.body)
      ? errorBox(`this server does not serve reports (GET ${path} answered 404: ${error.message}). Reports need a sealtrail version with the reports API; the CLI's \`sealtrail report\` may have them.`)
      : errorBox(error.message));
    return;
  }
  const rows = report.rows ?? [];
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const download = (format, ext, type) => h('button', {
    type: 'button',
    onclick: async (event) => {
      const button = event.currentTarget;
      try {
        const blob = await api.request(path, { params: { ...query, format }, as: 'blob', accept: type });
        const url = URL.createObjectURL(blob);
        const a = h('a', { href: url, download: `${name}-${query.from.slice(0, 10)}-${query.to.slice(0, 10)}.${ext}` });
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10000);
      } catch (error) {
        button.after(errorBox(error.message));
      }
    },
  }, `Download ${format.toUpperCase()}`);
  fill(result,
    h('h2', {}, title),
    h('p', {}, `Tenant ${report.tenant}, ${report.from} \u2192 ${report.to}.`,
      report.checkpoint ? ` Covers the signed checkpoint of ${report.checkpoint.size} entries (root ${report.checkpoint.root}).` : ''),
    h('p', { class: 'actions' }, download('csv', 'csv', 'text/csv'), ' ', download('md', 'md', 'text/markdown'), ' ', download('json', 'json', 'application/json')),
    rows.length === 0
      ? h('p', { class: 'muted' }, 'The report has no rows for this range.')
      : h('div', { class: 'scroll' }, h('table', {},
        h('caption', {}, `${rows.length} rows`),
        h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, rows.map((r) => h('tr', {}, columns.map((c) => h('td', {}, cell(r[c])))))))));
}

function cell(value) {
  if (value === null || value === undefined) return '';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}
