// Event detail: the canonical entry, its receipt fields, and its inclusion proof verified
// here, in the browser, with WebCrypto — not taken on the server's word.

import * as api from './api.js';
import * as proof from './proof.js';
import { h, fill, badge, facts, errorBox, announce } from './dom.js';

const utf8 = new TextDecoder();

/** The checks, in order; each passes, fails or is not reached. */
const STEPS = [
  ['key', 'Verifier key is well-formed'],
  ['signature', 'Checkpoint signature (Ed25519) verifies with the key'],
  ['coverage', 'Checkpoint covers the event'],
  ['leaf', 'Leaf hash recomputed from the canonical entry matches event_hash'],
  ['inclusion', 'Inclusion proof leads to the checkpoint root'],
];

export async function eventView(container, { rest }) {
  const id = rest;
  fill(container, h('h1', {}, 'Event ', h('code', {}, id)), h('p', { class: 'muted' }, 'Loading…'));
  let answer;
  try {
    answer = await api.request(`/v1/events/${encodeURIComponent(id)}`);
  } catch (error) {
    fill(container, h('h1', {}, 'Event'), errorBox(error.message));
    return;
  }
  const { event, proof: inclusion } = answer;
  const entryText = utf8.decode(proof.entryBytes(event));
  const receipt = facts([
    ['id', h('code', {}, event.id)],
    ['seq', String(event.seq)],
    ['received_at', event.received_at],
    ['occurred_at', event.occurred_at ?? null],
    ['event_hash', h('code', { class: 'hash' }, event.event_hash)],
    ['prev_hash', h('code', { class: 'hash' }, event.prev_hash ?? '')],
  ]);
  const summary = facts([
    ['action', event.action],
    ['activity', event.activity ?? null],
    ['outcome', event.outcome],
    ['actor', [event.actor?.id, event.actor?.type && ` (${event.actor.type})`].filter(Boolean).join('')],
    ['targets', (event.targets ?? []).map((t) => `${t.type}:${t.id}`).join(', ') || null],
    ['ip', event.context?.ip ?? null],
    ['source', event.source ? `${event.source.app ?? ''} ${event.source.instance ?? ''} #${event.source.seq ?? ''}`.trim() : null],
  ]);

  const keyInput = h('textarea', { id: 'verifier-key', rows: 2, spellcheck: 'false', class: 'mono' });
  const stepsList = h('ol', { class: 'steps', 'aria-live': 'polite', 'data-testid': 'proof-steps' });
  const verdict = h('p', { class: 'verdict', 'data-testid': 'verdict' });
  const verifyButton = h('button', { type: 'button' }, 'Verify again with this key');

  fill(
    container,
    h('h1', {}, 'Event ', h('code', {}, event.id)),
    h('div', { class: 'columns' },
      h('section', { 'aria-labelledby': 'receipt-h' }, h('h2', { id: 'receipt-h' }, 'Receipt'), receipt),
      h('section', { 'aria-labelledby': 'summary-h' }, h('h2', { id: 'summary-h' }, 'What happened'), summary),
    ),
    h('section', { 'aria-labelledby': 'proof-h', class: 'proof' },
      h('h2', { id: 'proof-h' }, 'Proof, checked in this browser'),
      h('p', {}, 'This page fetched the checkpoint and the log\u2019s verifier key and checks them itself with WebCrypto: the checkpoint\u2019s Ed25519 signature, the leaf hash SHA-256(0x00 \u2016 entry) of the canonical entry below, and the RFC 9162 inclusion proof to the checkpoint\u2019s root.'),
      h('p', { class: 'notice', role: 'note' },
        h('strong', {}, 'Compare the key. '),
        'A server can sign its own lies with its own key: these checks mean something only if the verifier key below is the one you obtained out of band (from the operator, a witness, or an archive you trust). Paste that key here and verify again.'),
      h('div', { class: 'field' }, h('label', { for: 'verifier-key' }, 'Verifier key'), keyInput),
      verifyButton,
      stepsList,
      verdict,
      facts([
        ['leaf index', String(inclusion.leaf_index)],
        ['tree size', String(inclusion.tree_size)],
        ['proof hashes', h('ol', { class: 'hashes' }, inclusion.hashes.map((x) => h('li', {}, h('code', { class: 'hash' }, x))))],
        ['checkpoint', inclusion.checkpoint ? h('pre', { 'data-testid': 'checkpoint' }, inclusion.checkpoint) : null],
      ]),
    ),
    h('section', { 'aria-labelledby': 'entry-h' },
      h('h2', { id: 'entry-h' }, 'Canonical entry'),
      h('p', { class: 'muted' }, `The RFC 8785 canonical JSON the leaf hash is computed from (${proof.entryBytes(event).length} bytes).`),
      h('pre', { class: 'entry', 'data-testid': 'entry', tabindex: 0 }, entryText),
    ),
  );

  let servedKey = '';
  try {
    servedKey = (await api.request('/v1/log/key', { as: 'text' })).trim();
  } catch (error) {
    servedKey = '';
    stepsList.before(errorBox(`the verifier key cannot be fetched: ${error.message}`));
  }
  keyInput.value = servedKey;
  const run = () => verify(event, inclusion, keyInput.value.trim(), stepsList, verdict);
  verifyButton.addEventListener('click', run);
  await run();
}

/** Runs every step, showing each as it ends; returns whether all passed. */
export async function verify(event, inclusion, keyText, list, verdict) {
  const state = new Map(STEPS.map(([id]) => [id, { status: 'pending', detail: 'not checked yet' }]));
  const show = () =>
    fill(
      list,
      STEPS.map(([id, title]) => {
        const { status, detail } = state.get(id);
        const label = { pass: 'PASSED', fail: 'FAILED', pending: 'NOT CHECKED' }[status];
        return h('li', { class: `step step-${status}`, 'data-step': id, 'data-status': status },
          badge(status, label), ' ', h('span', { class: 'step-title' }, title),
          h('div', { class: 'step-detail' }, detail));
      }),
    );
  const pass = (id, detail) => state.set(id, { status: 'pass', detail });
  const failed = (id, error) => state.set(id, { status: 'fail', detail: error.message ?? String(error) });
  show();

  let key = null;
  try {
    key = await proof.parseVerifierKey(keyText);
    pass('key', `${key.name}, key id ${proof.bytesToHex(key.keyId)}`);
  } catch (error) {
    failed('key', error);
  }

  let checkpoint = null;
  try {
    if (!inclusion.checkpoint) throw new proof.VerifyError('no signed checkpoint covers this event yet; reload in a few seconds');
    if (!key) throw new proof.VerifyError('no valid key to check it with');
    const text = await proof.verifyNote(inclusion.checkpoint, key);
    checkpoint = proof.parseCheckpoint(text);
    if (checkpoint.origin !== key.name) throw new proof.VerifyError(`origin ${checkpoint.origin} is not the key's name ${key.name}`);
    pass('signature', `signed by ${key.name}: size ${checkpoint.size}, root ${proof.bytesToHex(checkpoint.root)}${checkpoint.timestamp ? `, issued ${checkpoint.timestamp}` : ''}`);
  } catch (error) {
    failed('signature', error);
  }

  try {
    if (!checkpoint) throw new proof.VerifyError('no verified checkpoint');
    if (BigInt(inclusion.tree_size) !== checkpoint.size) {
      throw new proof.VerifyError(`the proof is for a tree of ${inclusion.tree_size}, the checkpoint has ${checkpoint.size}`);
    }
    if (BigInt(inclusion.leaf_index) !== BigInt(event.seq)) {
      throw new proof.VerifyError(`the proof is for leaf ${inclusion.leaf_index}, the event is seq ${event.seq}`);
    }
    if (BigInt(event.seq) >= checkpoint.size) throw new proof.VerifyError(`seq ${event.seq} is not below the checkpoint size ${checkpoint.size}`);
    pass('coverage', `seq ${event.seq} < size ${checkpoint.size}`);
  } catch (error) {
    failed('coverage', error);
  }

  let leaf = null;
  try {
    leaf = await proof.leafHash(proof.entryBytes(event));
    const computed = proof.bytesToHex(leaf);
    if (computed !== event.event_hash) {
      throw new proof.VerifyError(`SHA-256(0x00 \u2016 entry) is ${computed}, the server says ${event.event_hash}`);
    }
    pass('leaf', computed);
  } catch (error) {
    failed('leaf', error);
  }

  try {
    if (!checkpoint) throw new proof.VerifyError('no verified checkpoint root to check against');
    if (!leaf) throw new proof.VerifyError('no leaf hash');
    const hashes = inclusion.hashes.map(proof.hexToBytes);
    const root = await proof.verifyInclusion(inclusion.leaf_index, inclusion.tree_size, leaf, hashes, checkpoint.root);
    pass('inclusion', `${hashes.length} hashes lead to ${proof.bytesToHex(root)}`);
  } catch (error) {
    failed('inclusion', error);
  }

  show();
  const all = [...state.values()].every((s) => s.status === 'pass');
  const firstFailed = STEPS.find(([id]) => state.get(id).status !== 'pass');
  fill(
    verdict,
    all
      ? badge('pass', 'VERIFIED: every check passed. This event is in the log the signed checkpoint commits to.')
      : badge('fail', `NOT VERIFIED: the check \u201c${firstFailed[1]}\u201d failed. Do not rely on this event or this server\u2019s answers.`),
  );
  verdict.dataset.result = all ? 'verified' : 'failed';
  announce(all ? 'Proof verified' : 'Proof verification failed');
  return all;
}
