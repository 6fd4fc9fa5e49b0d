// Timeline: events per minute, hour or day over a range, with the gap detector's findings
// (time gaps, rate drops, producer sequence gaps, silent producers) and the alerts marked on
// the chart and listed beside it. Dragging over the chart, the arrow keys on it, or a
// finding's "Select" button pick a range; the events of that range are listed below.

import * as api from './api.js';
import { h, fill, errorBox, field, isoSeconds, duration, badge, announce } from './dom.js';
import { eventTable } from './search.js';

const PRESETS = [
  ['1h', 'last hour', 3600],
  ['6h', 'last 6 hours', 6 * 3600],
  ['24h', 'last 24 hours', 86400],
  ['7d', 'last 7 days', 7 * 86400],
  ['30d', 'last 30 days', 30 * 86400],
];
const BUCKET_SECONDS = { minute: 60, hour: 3600, day: 86400 };
const MAX_BUCKETS = 44640;
const W = 1000;
const H = 260;
const PLOT_TOP = 34;
const PLOT_BOTTOM = 220;

function autoBucket(seconds) {
  if (seconds <= 12 * 3600) return 'minute';
  if (seconds <= 14 * 86400) return 'hour';
  return 'day';
}

function parseTime(text) {
  const t = Date.parse(text);
  return Number.isFinite(t) ? t : null;
}

/** The range the address asks for: explicit from/to, else a preset (default 24 h). */
function rangeOf(params) {
  const now = Date.now();
  let from = parseTime(params.get('from') ?? '');
  let to = parseTime(params.get('to') ?? '');
  const preset = PRESETS.find(([id]) => id === params.get('range')) ?? PRESETS[2];
  if (to === null) to = Math.ceil(now / 60000) * 60000;
  if (from === null || from >= to) from = to - preset[2] * 1000;
  let bucket = params.get('bucket');
  if (!BUCKET_SECONDS[bucket]) bucket = autoBucket((to - from) / 1000);
  while ((to - from) / 1000 / BUCKET_SECONDS[bucket] > MAX_BUCKETS && bucket !== 'day') {
    bucket = bucket === 'minute' ? 'hour' : 'day';
  }
  return { from, to, bucket, preset: params.has('from') ? '' : preset[0] };
}

export async function timelineView(container, { params, navigate, stale }) {
  const range = rangeOf(params);
  const controls = rangeControls(range, params, navigate);
  const chartBox = h('figure', { class: 'chart' }, h('p', { class: 'muted' }, 'Loading the timeline…'));
  const findingsBox = h('section', { class: 'findings', 'aria-labelledby': 'findings-h' }, h('h2', { id: 'findings-h' }, 'Gaps and alerts'));
  const selectionBox = h('section', { class: 'selection', 'aria-labelledby': 'selection-h' });
  fill(container,
    h('h1', {}, 'Timeline'),
    controls,
    h('div', { class: 'timeline-layout' }, chartBox, findingsBox),
    selectionBox);

  const from = isoSeconds(new Date(range.from));
  const to = isoSeconds(new Date(range.to));
  const gapsFrom = isoSeconds(new Date(Math.max(range.from, range.to - 31 * 86400 * 1000)));
  const [timeline, gaps, alerts] = await Promise.allSettled([
    api.request('/v1/timeline', { params: { bucket: range.bucket, from, to } }),
    api.request('/v1/gaps', { params: { from: gapsFrom, to } }),
    api.request('/v1/alerts', { params: { from, to, limit: 1000 } }),
  ]);
  if (stale()) return;
  if (timeline.status === 'rejected') {
    fill(chartBox, errorBox(timeline.reason.message));
    return;
  }
  const findings = gaps.status === 'fulfilled' ? gaps.value.gaps : [];
  const alertList = alerts.status === 'fulfilled' ? alerts.value.alerts : [];

  const selection = {
    from: parseTime(params.get('sel_from') ?? ''),
    to: parseTime(params.get('sel_to') ?? ''),
  };
  const select = (fromMs, toMs) => {
    const next = new URLSearchParams(params);
    next.set('sel_from', isoSeconds(new Date(fromMs)));
    next.set('sel_to', isoSeconds(new Date(toMs)));
    navigate('timeline', next);
  };

  fill(chartBox, chart(timeline.value, findings, alertList, selection, select));
  fill(findingsBox,
    h('h2', { id: 'findings-h' }, 'Gaps and alerts'),
    gaps.status === 'rejected' ? errorBox(`gaps: ${gaps.reason.message}`) : null,
    findingList(findings, timeline.value, select),
    alerts.status === 'rejected' ? errorBox(`alerts: ${alerts.reason.message}`) : null,
    alertsList(alertList));

  if (selection.from !== null && selection.to !== null && selection.from < selection.to) {
    await showSelection(selectionBox, selection, params, navigate, stale);
  } else {
    fill(selectionBox,
      h('h2', { id: 'selection-h' }, 'Events'),
      h('p', { class: 'muted' }, 'Pick a range on the chart (drag with the mouse, or focus the chart and use the arrow keys; Shift+arrows widens, Enter shows the events), or select a finding.'));
  }
}

function rangeControls(range, params, navigate) {
  const preset = h('select', { name: 'range' },
    h('option', { value: '' }, 'custom (below)'),
    PRESETS.map(([id, label]) => h('option', { value: id, selected: id === range.preset }, label)));
  const fromInput = h('input', { name: 'from', type: 'text', spellcheck: 'false' });
  const toInput = h('input', { name: 'to', type: 'text', spellcheck: 'false' });
  fromInput.value = isoSeconds(new Date(range.from));
  toInput.value = isoSeconds(new Date(range.to));
  const bucket = h('select', { name: 'bucket' },
    ['minute', 'hour', 'day'].map((b) => h('option', { value: b, selected: b === range.bucket }, `per ${b}`)));
  const form = h('form', { class: 'filters range', 'aria-label': 'Timeline range' },
    field('Range', preset), field('From (UTC)', fromInput), field('To (UTC)', toInput), field('Bucket', bucket),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Show')));
  preset.addEventListener('change', () => {
    if (preset.value) navigate('timeline', { range: preset.value });
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const chosen = preset.value && fromInput.value === isoSeconds(new Date(range.from))
      ? { range: preset.value, bucket: bucket.value }
      : { from: fromInput.value.trim(), to: toInput.value.trim(), bucket: bucket.value };
    navigate('timeline', chosen);
  });
  return form;
}

const GAP_LABEL = {
  time_gap: 'Time gap',
  rate_drop: 'Rate drop',
  producer_seq_gap: 'Lost source.seq',
  silent_producer: 'Silent producer',
};

function chart(timeline, findings, alerts, selection, select) {
  const buckets = timeline.buckets;
  const n = Math.max(buckets.length, 1);
  const step = BUCKET_SECONDS[timeline.bucket] * 1000;
  const start = Date.parse(timeline.from);
  const end = Date.parse(timeline.to);
  const span = Math.max(end - start, 1);
  const x = (t) => Math.min(W, Math.max(0, ((t - start) / span) * W));
  const max = Math.max(1, ...buckets.map((b) => b.count));
  const y = (count) => PLOT_BOTTOM - (count / max) * (PLOT_BOTTOM - PLOT_TOP);
  const barWidth = W / n;

  const svg = h('svg:svg', {
    viewBox: `0 0 ${W} ${H}`,
    class: 'timeline-chart',
    tabindex: 0,
    role: 'img',
    'data-testid': 'timeline-chart',
    'aria-label': `Events per ${timeline.bucket} from ${timeline.from} to ${timeline.to}: ${timeline.total} in all, at most ${max} in one ${timeline.bucket}; ${findings.length} gap findings and ${alerts.length} alerts marked. Arrow keys pick a range, Enter shows its events.`,
  });
  svg.append(h('svg:defs', {},
    h('svg:pattern', { id: 'hatch', width: 8, height: 8, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' },
      h('svg:rect', { width: 3, height: 8, class: 'hatch-line' })),
    h('svg:pattern', { id: 'dots', width: 8, height: 8, patternUnits: 'userSpaceOnUse' },
      h('svg:circle', { cx: 4, cy: 4, r: 1.6, class: 'dot' }))));

  // Findings first, behind the bars: hatched for time gaps and lost events, dotted for drops.
  findings.forEach((gap, i) => {
    const gx = x(Date.parse(gap.start));
    const gw = Math.max(3, x(Date.parse(gap.end ?? timeline.to)) - gx);
    const dotted = gap.kind === 'rate_drop';
    svg.append(h('svg:g', { class: `finding finding-${gap.kind}`, 'data-gap': i + 1 },
      h('svg:rect', { x: gx, y: PLOT_TOP, width: gw, height: PLOT_BOTTOM - PLOT_TOP, fill: dotted ? 'url(#dots)' : 'url(#hatch)', class: 'finding-area' },
        h('svg:title', {}, `${GAP_LABEL[gap.kind] ?? gap.kind} ${i + 1}: ${gap.start} to ${gap.end ?? 'now'} (${gap.impact} impact)`)),
      h('svg:text', { x: gx + 2, y: PLOT_TOP - 4, class: 'finding-label' }, `${dotted ? 'D' : 'G'}${i + 1}`)));
  });

  buckets.forEach((b, i) => {
    const by = y(b.count);
    svg.append(h('svg:rect', { x: i * barWidth, y: by, width: Math.max(barWidth - (n < 200 ? 1 : 0), 0.5), height: PLOT_BOTTOM - by, class: 'bar' },
      h('svg:title', {}, `${b.start}: ${b.count} events`)));
  });

  alerts.forEach((alert, i) => {
    const ax = x(Date.parse(alert.window_end ?? alert.window_start));
    svg.append(h('svg:g', { class: 'alert-mark', 'data-alert': i + 1 },
      h('svg:path', { d: `M${ax - 6} ${PLOT_TOP - 2} L${ax + 6} ${PLOT_TOP - 2} L${ax} ${PLOT_TOP + 9} Z`, class: 'alert-triangle' },
        h('svg:title', {}, `Alert A${i + 1}: ${alert.rule} (${alert.severity}) ${alert.key ?? ''}`)),
      h('svg:text', { x: ax + 8, y: PLOT_TOP + 8, class: 'alert-label' }, `A${i + 1}`)));
  });

  // Axis: the baseline, the peak, and five time ticks.
  svg.append(h('svg:line', { x1: 0, x2: W, y1: PLOT_BOTTOM, y2: PLOT_BOTTOM, class: 'axis' }));
  svg.append(h('svg:text', { x: 2, y: PLOT_TOP + 12, class: 'tick' }, `${max}`));
  for (let k = 0; k <= 4; k++) {
    const t = start + (span * k) / 4;
    svg.append(h('svg:text', { x: Math.min(Math.max((W * k) / 4, 2), W - 2), y: PLOT_BOTTOM + 18, class: 'tick', 'text-anchor': k === 0 ? 'start' : k === 4 ? 'end' : 'middle' },
      isoSeconds(new Date(t)).replace('T', ' ').replace(/:00Z$/, 'Z')));
  }

  const band = h('svg:rect', { y: PLOT_TOP, height: PLOT_BOTTOM - PLOT_TOP, class: 'selection-band', width: 0, x: 0 });
  svg.append(band);
  const cursor = h('svg:rect', { y: PLOT_TOP, height: PLOT_BOTTOM - PLOT_TOP, class: 'cursor', width: Math.max(barWidth, 2), x: -10 });
  svg.append(cursor);

  // The picked range as bucket indexes [lo, hi].
  let lo = null;
  let hi = null;
  if (selection.from !== null && selection.to !== null) {
    lo = Math.max(0, Math.floor((selection.from - start) / step));
    hi = Math.min(n - 1, Math.ceil((selection.to - start) / step) - 1);
  }
  const paint = () => {
    if (lo === null) return;
    const [a, b] = [Math.min(lo, hi), Math.max(lo, hi)];
    band.setAttribute('x', a * barWidth);
    band.setAttribute('width', (b - a + 1) * barWidth);
    cursor.setAttribute('x', hi * barWidth);
  };
  paint();
  const commit = () => {
    if (lo === null) return;
    const [a, b] = [Math.min(lo, hi), Math.max(lo, hi)];
    select(start + a * step, start + (b + 1) * step);
  };
  const indexAt = (clientX) => {
    const box = svg.getBoundingClientRect();
    return Math.min(n - 1, Math.max(0, Math.floor(((clientX - box.left) / box.width) * n)));
  };
  let dragging = false;
  svg.addEventListener('pointerdown', (e) => {
    dragging = true;
    lo = hi = indexAt(e.clientX);
    svg.setPointerCapture?.(e.pointerId);
    paint();
  });
  svg.addEventListener('pointermove', (e) => {
    if (!dragging) return;
    hi = indexAt(e.clientX);
    paint();
  });
  svg.addEventListener('pointerup', () => {
    if (!dragging) return;
    dragging = false;
    commit();
  });
  svg.addEventListener('keydown', (e) => {
    const moves = { ArrowLeft: -1, ArrowRight: 1, PageUp: -10, PageDown: 10, Home: -n, End: n };
    if (e.key in moves) {
      e.preventDefault();
      if (lo === null) lo = hi = n - 1;
      hi = Math.min(n - 1, Math.max(0, hi + moves[e.key]));
      if (!e.shiftKey) lo = hi;
      paint();
      const [a, b] = [Math.min(lo, hi), Math.max(lo, hi)];
      announce(`${buckets[a]?.start ?? ''} to ${buckets[b]?.start ?? ''}: ${buckets.slice(a, b + 1).reduce((s, x) => s + x.count, 0)} events`);
    } else if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      commit();
    }
  });

  const legend = h('figcaption', { class: 'legend' },
    h('span', {}, h('span', { class: 'key key-bar', 'aria-hidden': 'true' }), ' bars: events per ', timeline.bucket, ` (${timeline.total} in all)`),
    h('span', {}, h('span', { class: 'key key-hatch', 'aria-hidden': 'true' }), ' G: time gap, lost source.seq or silent producer (hatched)'),
    h('span', {}, h('span', { class: 'key key-dots', 'aria-hidden': 'true' }), ' D: rate drop (dotted)'),
    h('span', {}, h('span', { 'aria-hidden': 'true' }, '\u25bc'), ' A: alert'));
  return [svg, legend];
}

function findingList(findings, timeline, select) {
  if (findings.length === 0) {
    return h('p', { 'data-testid': 'no-gaps' }, badge('ok', 'No gap'), ' found in this range.');
  }
  return h('ol', { class: 'finding-list', 'data-testid': 'gap-list' }, findings.map((gap, i) => {
    const mark = `${gap.kind === 'rate_drop' ? 'D' : 'G'}${i + 1}`;
    const endMs = Date.parse(gap.end ?? timeline.to);
    return h('li', { 'data-kind': gap.kind },
      h('strong', {}, `${mark} \u00b7 ${GAP_LABEL[gap.kind] ?? gap.kind}`), ' ',
      badge(gap.impact === 'high' ? 'fail' : gap.impact === 'medium' ? 'warn' : 'info', `${gap.impact} impact`),
      gap.ongoing ? [' ', badge('warn', 'ongoing')] : null,
      h('div', {}, `${gap.start} \u2192 ${gap.end ?? 'now'} (${duration(gap.duration_seconds)})`),
      gap.producer ? h('div', {}, `producer ${gap.producer.app}/${gap.producer.instance}`) : null,
      gap.missing ? h('div', {}, 'missing source.seq ', gap.missing.map((m) => (m.from === m.to ? `${m.from}` : `${m.from}\u2013${m.to}`)).join(', ')) : null,
      gap.detail ? h('div', { class: 'muted' }, gap.detail) : null,
      h('button', {
        type: 'button', class: 'small',
        'aria-label': `Select ${mark}: show the events around it`,
        onclick: () => {
          const pad = Math.max((endMs - Date.parse(gap.start)) / 4, 60000);
          select(Date.parse(gap.start) - pad, endMs + pad);
        },
      }, 'Select'));
  }));
}

function alertsList(alerts) {
  if (alerts.length === 0) return h('p', { class: 'muted' }, 'No alert in this range.');
  return h('ol', { class: 'alert-list', 'data-testid': 'alert-list' }, alerts.map((a, i) =>
    h('li', {},
      h('strong', {}, `A${i + 1} \u00b7 ${a.rule}`), ' ',
      badge(a.severity === 'critical' ? 'fail' : 'warn', a.severity),
      h('div', {}, `${a.window_start} \u2192 ${a.window_end}: ${a.count} events${a.key ? ` (${a.key})` : ''}`))));
}

async function showSelection(box, selection, params, navigate, stale) {
  const from = isoSeconds(new Date(selection.from));
  const to = isoSeconds(new Date(selection.to));
  const zoom = () => {
    const span = (selection.to - selection.from) / 1000;
    navigate('timeline', { from, to, bucket: autoBucket(span) });
  };
  fill(box,
    h('h2', { id: 'selection-h' }, `Events from ${from} to ${to}`),
    h('p', { class: 'actions' },
      h('button', { type: 'button', onclick: zoom }, 'Zoom to this range'), ' ',
      h('a', { href: `#/search?${new URLSearchParams({ from, to })}` }, 'Open in search (every filter)')),
    h('p', { class: 'muted' }, 'Loading…'));
  try {
    const page = await api.request('/v1/events', { params: { from, to, order: 'desc', limit: 50 } });
    if (stale()) return;
    box.lastChild.replaceWith(eventTable(page.events, page.next_cursor ? 'The 50 newest events of the range (more in search)' : `${page.events.length} events of the range, newest first`));
  } catch (error) {
    box.lastChild.replaceWith(errorBox(error.message));
  }
}
