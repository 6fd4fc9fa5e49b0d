// Browser tests of the console in a real headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core; no browser download): a real `sealtrail serve` with a seeded
// log, sign-in, the planted gaps on the timeline, search with paging, an event's proof
// verified in the page — and failing at the right step when one byte of the entry, the proof
// or the checkpoint is changed on its way to the browser — the token kept out of storage and
// URLs, scopes hiding screens, and a 200 % zoom layout. Screenshots of each screen go to
// target/console-screenshots/ (CONSOLE_SCREENSHOTS overrides).
//
// playwright-core is installed by `npm ci` from console-tests/package-lock.json into
// target/console-tests/ (CONSOLE_NODE_MODULES overrides the node_modules folder).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdirSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { startServer, seed, repo, call } from './server.mjs';

const nodeModules = resolve(process.env.CONSOLE_NODE_MODULES ?? join(repo, 'target/console-tests/node_modules'));
const { chromium } = createRequire(join(nodeModules, 'noop.js'))('playwright-core');
const shots = resolve(process.env.CONSOLE_SCREENSHOTS ?? join(repo, 'target/console-screenshots'));
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';

let server;
let token;
let planted;
let browser;
let context;
let page;
const urls = [];

before(async () => {
  assert.ok(existsSync(executablePath), `${executablePath} is missing: apt-get install chromium`);
  mkdirSync(shots, { recursive: true });
  server = await startServer();
  token = server.token('acme', 'events:write', 'events:read', 'log:read', 'verify', 'reports');
  planted = await seed(server.base, token);
  // The gap detector judges what it has counted about once a second.
  for (let i = 0; i < 60; i++) {
    const found = await call(server.base, token, `/v1/gaps?from=${new Date(planted.start - 3600000).toISOString()}`);
    if (found.gaps.some((g) => g.kind === 'time_gap') && found.gaps.some((g) => g.kind === 'producer_seq_gap')) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.on('request', (request) => urls.push(request.url()));
  page.on('framenavigated', (frame) => urls.push(frame.url()));
  page.on('pageerror', (error) => console.error('page error:', error));
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function signIn(p, secret) {
  await p.goto(`${server.base}/`);
  await p.fill('#token', secret);
  await p.click('#signin-form button[type=submit]');
  await p.waitForSelector('#nav:not([hidden])');
}

async function shot(name, p = page) {
  await p.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

async function stepStatuses(p = page) {
  await p.waitForSelector('[data-testid=verdict][data-result]');
  return p.$$eval('[data-step]', (items) => Object.fromEntries(items.map((li) => [li.dataset.step, li.dataset.status])));
}

test('every console answer carries the strict CSP, and / leads to /console', async () => {
  for (const path of ['/', '/console', '/console/app.js', '/console/console.css', '/console/nope.js']) {
    const response = await fetch(`${server.base}${path}`, { redirect: 'manual' });
    const csp = response.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/, path);
    assert.match(csp, /script-src 'self';/, path);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/, path);
    if (path === '/') assert.equal(response.headers.get('location'), '/console');
  }
});

test('sign in and find the planted gaps on the timeline', async () => {
  await signIn(page, token);
  assert.equal(await page.textContent('[data-testid=tenant]'), 'acme');
  await page.evaluate(() => {
    location.hash = '#/timeline?range=6h';
  });
  await page.waitForSelector('[data-testid=timeline-chart]');
  const gaps = await page.waitForSelector('[data-testid=gap-list]');
  const kinds = await gaps.$$eval('li', (items) => items.map((li) => li.dataset.kind));
  assert.ok(kinds.includes('time_gap'), `time gap listed: ${kinds}`);
  assert.ok(kinds.includes('producer_seq_gap'), `lost source.seq listed: ${kinds}`);
  // Marked on the chart too, with a label (not colour alone).
  const marks = await page.$$eval('[data-testid=timeline-chart] .finding .finding-label', (gs) => gs.map((g) => g.textContent));
  assert.ok(marks.length >= 2 && marks.every((m) => /^[GD]\d+/.test(m)), `marks: ${marks}`);
  const text = await gaps.textContent();
  assert.match(text, /missing source\.seq 150\u2013159/);
  await shot('timeline');

  // Selecting the time gap lists the events around it, and none inside it.
  const index = kinds.indexOf('time_gap');
  await (await gaps.$$('li'))[index].$('button').then((b) => b.click());
  await page.waitForSelector('[data-testid=events]');
  const times = await page.$$eval('[data-testid=events] tbody tr td:nth-child(2)', (tds) => tds.map((td) => Date.parse(td.textContent)));
  assert.ok(times.length > 0);
  assert.ok(times.every((t) => t < planted.silenceFrom || t >= planted.silenceTo), 'no event inside the gap');
  await shot('timeline-selection');

  // The keyboard picks a range too.
  await page.focus('[data-testid=timeline-chart]');
  await page.keyboard.press('End');
  await page.keyboard.press('Shift+ArrowLeft');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => /sel_from=/.test(location.hash));
});

test('search with filters, newest first, paging with the cursor; the query is in the URL', async () => {
  await page.evaluate(() => {
    location.hash = '#/search';
  });
  await page.waitForSelector('#search-actor');
  await page.fill('#search-actor', 'dr.lee');
  await page.selectOption('#search-limit', '20');
  await page.click('form[role=search] button[type=submit]');
  await page.waitForFunction(() => location.hash.includes('actor=dr.lee'));
  await page.waitForSelector('[data-testid=events]');
  const seqs = async () => page.$$eval('[data-testid=events] tbody tr td:first-child', (tds) => tds.map((td) => Number(td.textContent)));
  const first = await seqs();
  assert.equal(first.length, 20);
  assert.deepEqual(first, [...first].sort((a, b) => b - a), 'newest first');
  const actors = await page.$$eval('[data-testid=events] tbody tr td:nth-child(5)', (tds) => tds.map((td) => td.textContent));
  assert.ok(actors.every((a) => a === 'dr.lee'));
  await shot('search');
  await page.click('[data-testid=next-page]');
  await page.waitForFunction(() => location.hash.includes('cursor='));
  await page.waitForFunction((last) => {
    const cell = document.querySelector('[data-testid=events] tbody tr td:first-child');
    return cell && Number(cell.textContent) < last;
  }, first.at(-1) + 1);
  const second = await seqs();
  assert.ok(Math.max(...second) < Math.min(...first), 'the next page continues');

  // A shared link opens the same search in a new tab (after signing in there).
  const shared = page.url();
  const other = await context.newPage();
  await other.goto(shared);
  await other.fill('#token', token);
  await other.click('#signin-form button[type=submit]');
  await other.waitForSelector('[data-testid=events]');
  assert.equal(await other.inputValue('#search-actor'), 'dr.lee');
  await other.close();
});

let eventId;

test('an event\u2019s proof is verified in the browser, every step passing', async () => {
  await page.click('[data-testid=events] tbody tr:first-child a');
  await page.waitForFunction(() => location.hash.startsWith('#/event/'));
  eventId = decodeURIComponent(page.url().split('#/event/')[1]);
  const steps = await stepStatuses();
  assert.deepEqual(steps, { key: 'pass', signature: 'pass', coverage: 'pass', leaf: 'pass', inclusion: 'pass' });
  assert.equal(await page.getAttribute('[data-testid=verdict]', 'data-result'), 'verified');
  assert.match(await page.textContent('.notice'), /out of band/);
  await shot('event');
});

/** Opens the event again with `change` applied to the body of GET /v1/events/{id}. */
async function withChanged(change) {
  await page.route('**/v1/events/*', async (route) => {
    const response = await route.fetch();
    const body = await response.text();
    const changed = change(body);
    assert.notEqual(changed, body, 'the change applies');
    assert.equal(changed.length, body.length, 'one byte changed, not added');
    await route.fulfill({ response, body: changed });
  });
  await page.evaluate(() => {
    location.hash = '#/health';
  });
  await page.evaluate((id) => {
    location.hash = `#/event/${encodeURIComponent(id)}`;
  }, eventId);
  await page.waitForSelector('[data-testid=verdict][data-result]');
  const steps = await stepStatuses();
  await page.unroute('**/v1/events/*');
  return steps;
}

test('one byte of the entry changed: the leaf hash step fails', async () => {
  const steps = await withChanged((body) => body.replace('"dr.lee"', '"dr.lea"'));
  assert.deepEqual(steps, { key: 'pass', signature: 'pass', coverage: 'pass', leaf: 'fail', inclusion: 'fail' });
  assert.equal(await page.getAttribute('[data-testid=verdict]', 'data-result'), 'failed');
  assert.match(await page.textContent('[data-testid=verdict]'), /Leaf hash/);
  await shot('event-entry-changed');
});

test('one byte of the proof changed: the inclusion step fails, the leaf still passes', async () => {
  const steps = await withChanged((body) =>
    body.replace(/("hashes":\["[0-9a-f]{10})([0-9a-f])/, (_, head, c) => head + (c === '0' ? '1' : '0')),
  );
  assert.deepEqual(steps, { key: 'pass', signature: 'pass', coverage: 'pass', leaf: 'pass', inclusion: 'fail' });
  await shot('event-proof-changed');
});

test('one byte of the checkpoint changed: the signature step fails', async () => {
  const steps = await withChanged((body) =>
    body.replace(/("checkpoint":"[^\\]+\\n\d+\\n)(.)/, (_, head, c) => head + (c === 'A' ? 'B' : 'A')),
  );
  assert.equal(steps.key, 'pass');
  assert.equal(steps.signature, 'fail');
  assert.equal(steps.leaf, 'pass');
  await shot('event-checkpoint-changed');
});

test('log & health: checks with the failing first, the checkpoint verified', async () => {
  await page.evaluate(() => {
    location.hash = '#/health';
  });
  await page.waitForSelector('[data-testid=health-checks]');
  await page.waitForSelector('[data-testid=log-size]');
  assert.equal(Number(await page.textContent('[data-testid=log-size]')), planted.count);
  const order = await page.$$eval('[data-testid=health-checks] tbody tr', (rows) => rows.map((r) => r.dataset.status));
  const rank = { fail: 0, warn: 1, ok: 2, info: 3 };
  assert.deepEqual(order, [...order].sort((a, b) => rank[a] - rank[b]), 'failing first');
  assert.match(await page.textContent('#main'), /signature verified in this browser/);
  await page.click('text=Verify the log now');
  await page.waitForSelector('[data-testid=verify-result] .badge');
  assert.match(await page.textContent('[data-testid=verify-result]'), /VALID/);
  await shot('health');
});

test('reports: the daily activity report is shown with the checkpoint it covers, and offered for download', async () => {
  await page.evaluate(() => {
    location.hash = '#/reports?name=daily-activity';
  });
  await page.waitForSelector('[data-testid=report] table');
  const text = await page.textContent('[data-testid=report]');
  assert.match(text, /Covers the signed checkpoint of \d+ entries/, text);
  assert.match(text, /patient\.record\.read/, text);
  for (const format of ['CSV', 'MD', 'JSON']) {
    assert.ok(text.includes(`Download ${format}`), `no ${format} download: ${text}`);
  }
  await shot('reports');
});

test('the token is in no storage, cookie or URL', async () => {
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
  assert.ok(!stored.includes(token), 'not in storage');
  assert.equal(await page.evaluate(() => localStorage.length + sessionStorage.length), 0);
  assert.equal((await context.cookies()).length, 0);
  assert.ok(urls.length > 10);
  for (const url of urls) assert.ok(!url.includes(token) && !url.includes(encodeURIComponent(token)), url);
  // Reloading forgets it.
  await page.reload();
  await page.waitForSelector('#signin:not([hidden])');
  assert.equal(await page.isHidden('#nav'), true);
});

test('a token without events:read sees neither timeline nor search', async () => {
  const writer = server.token('acme', 'events:write');
  const p = await context.newPage();
  await signIn(p, writer);
  const visible = await p.$$eval('#nav li', (items) => items.filter((li) => !li.hidden).map((li) => li.textContent));
  assert.deepEqual(visible, ['Log & health']);
  await p.waitForSelector('[data-testid=health-checks]');
  await p.close();
});

test('readable at 200 % zoom: no horizontal scrolling on the event page', async () => {
  const zoomed = await browser.newContext({ viewport: { width: 640, height: 900 }, deviceScaleFactor: 2 });
  const p = await zoomed.newPage();
  await signIn(p, token);
  await p.evaluate((id) => {
    location.hash = `#/event/${encodeURIComponent(id)}`;
  }, eventId);
  await p.waitForSelector('[data-testid=verdict][data-result=verified]');
  const overflow = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `scrolls sideways by ${overflow}px`);
  await shot('event-zoom-200', p);
  await p.evaluate(() => {
    location.hash = '#/timeline?range=6h';
  });
  await p.waitForSelector('[data-testid=gap-list]');
  assert.ok((await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)) <= 0);
  await shot('timeline-zoom-200', p);
  await zoomed.close();
});
