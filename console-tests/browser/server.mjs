// A real `sealtrail serve` for the browser tests: a temporary data directory, a free port,
// tokens made with `sealtrail tokens create`, and a seeded log with planted gaps.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const bin = resolve(process.env.SEALTRAIL_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(repo, 'target'), 'debug/sealtrail'));

export async function startServer() {
  const work = mkdtempSync(join(tmpdir(), 'sealtrail-console-'));
  const data = join(work, 'data');
  const child = spawn(bin, ['serve', '--data', data, '--listen', '127.0.0.1:0', '--checkpoint-interval-ms', '200'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => {
    err += d;
  });
  const base = await new Promise((resolveBase, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not listen within 30 s: ${err}`)), 30000);
    child.stdout.on('data', (d) => {
      out += d;
      const match = /^sealtrail listening on (http:\/\/\S+)/m.exec(out);
      if (match) {
        clearTimeout(timer);
        resolveBase(match[1].replace(/\/$/, ''));
      }
    });
    child.on('exit', (code) => reject(new Error(`serve exited (${code}): ${err}`)));
  });
  const token = (tenant, ...scopes) =>
    JSON.parse(
      execFileSync(bin, ['tokens', 'create', '--data', data, '--tenant', tenant, ...scopes.flatMap((s) => ['--scope', s]), '--json']),
    ).token;
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          r();
        }, 20000);
        child.on('exit', () => {
          clearTimeout(timer);
          r();
        });
      });
    }
    rmSync(work, { recursive: true, force: true });
  };
  return { base, token, stop, logs: () => err };
}

export async function call(base, token, path, { method = 'GET', body } = {}) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text.startsWith('{') || text.startsWith('[') ? JSON.parse(text) : text;
}

/**
 * Seeds the log: one producer sending an event every 30 s for an hour, then nothing for
 * 50 minutes (the time gap), then again for an hour with source.seq 150-159 never sent (the
 * producer's lost events). All in the past, by occurred_at. Returns what was planted.
 */
export async function seed(base, token) {
  const minute = 60000;
  const start = Math.floor((Date.now() - 3 * 60 * minute) / minute) * minute;
  const silenceFrom = start + 60 * minute;
  const silenceTo = silenceFrom + 50 * minute;
  const events = [];
  let seq = 0;
  const push = (at) => {
    seq += 1;
    if (seq >= 150 && seq <= 159) return;
    const n = events.length;
    events.push({
      occurred_at: new Date(at).toISOString(),
      action: n % 5 === 0 ? 'patient.record.update' : 'patient.record.read',
      activity: n % 5 === 0 ? 'update' : 'read',
      outcome: n % 17 === 0 ? 'failure' : 'success',
      actor: { id: n % 3 === 0 ? 'dr.lee' : `u-${n % 7}`, type: 'user', name: n % 3 === 0 ? 'Dr Lee' : 'Nurse' },
      targets: [{ type: 'patient', id: `p-${n % 11}` }],
      context: { ip: `10.1.2.${n % 4}`, request_id: `req-${n}` },
      source: { app: 'ehr-web', instance: 'pod-1', seq },
      details: { reason: n % 2 ? 'treatment' : 'billing review' },
    });
  };
  for (let t = start; t < silenceFrom; t += 30000) push(t);
  for (let t = silenceTo; t < silenceTo + 60 * minute; t += 30000) push(t);
  const results = await call(base, token, '/v1/events/batch', { method: 'POST', body: events });
  const lastSeq = Math.max(...results.map((r) => r.seq));
  if (results.some((r) => r.error)) throw new Error(`seeding refused: ${JSON.stringify(results.find((r) => r.error))}`);
  // Read our own writes, and wait for a signed checkpoint that covers them all.
  await call(base, token, `/v1/events?limit=1&wait_for_seq=${lastSeq}`);
  for (let i = 0; i < 150; i++) {
    const note = await call(base, token, '/v1/log/checkpoint').catch(() => '');
    const size = Number(String(note).split('\n')[1]);
    if (size > lastSeq) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { count: events.length, lastSeq, start, silenceFrom, silenceTo };
}
