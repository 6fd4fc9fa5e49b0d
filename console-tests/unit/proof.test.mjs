// Unit tests of the console's verification code (crates/sealtrail-server/console/proof.js)
// under `node --test`, with no dependency: the public RFC 6962/9162 Merkle vectors that the
// core's tests run (SEALTRAIL_MERKLE_VECTORS, a path relative to the repository root unless
// absolute; by default ../shared/testdata/merkle/testdata), plus signed notes, keys,
// checkpoints and canonical JSON.
//
// Values of the wrong length in the vectors (empty strings, 12-byte placeholders) are
// replaced by 32-byte stand-ins derived from their bytes and role, as the core's test does:
// equal values stay equal and a stand-in equals no real hash, so every vector, happy or not,
// runs through the verifier instead of being refused while it is read.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { join, resolve, dirname, isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as proof from '../../crates/sealtrail-server/console/proof.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const setting = process.env.SEALTRAIL_MERKLE_VECTORS ?? '../shared/testdata/merkle/testdata';
const vectors = isAbsolute(setting) ? setting : resolve(root, setting);

function jsonFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...jsonFiles(path));
    else if (name.endsWith('.json')) out.push(path);
  }
  return out;
}

async function decode(text, role) {
  const bytes = Uint8Array.from(Buffer.from(text, 'base64'));
  if (bytes.length === 32) return bytes;
  const tag = new TextEncoder().encode(`sealtrail vector stand-in for a ${role}:`);
  return proof.leafHash(proof.concat(tag, bytes));
}

async function proofOf(v) {
  return Promise.all((v.proof ?? []).map((p) => decode(p, 'proof')));
}

async function outcome(run) {
  try {
    await run();
    return 'verified';
  } catch (error) {
    if (!(error instanceof proof.VerifyError)) throw error;
    return 'rejected';
  }
}

function vectorFiles(kind) {
  const dir = join(vectors, kind);
  if (!existsSync(dir)) {
    if (process.env.CI) throw new Error(`Merkle vectors not found at ${dir}`);
    return null;
  }
  return jsonFiles(dir);
}

for (const kind of ['inclusion', 'consistency']) {
  test(`${kind} vectors: happy ones verify, wantErr ones are rejected`, async (t) => {
    const files = vectorFiles(kind);
    if (files === null) {
      t.skip(`vectors not found under ${vectors} (set SEALTRAIL_MERKLE_VECTORS)`);
      return;
    }
    assert.ok(files.length > 50, `too few ${kind} vectors: ${files.length}`);
    let happy = 0;
    let rejected = 0;
    for (const file of files) {
      const v = JSON.parse(readFileSync(file, 'utf8'));
      const hashes = await proofOf(v);
      const result =
        kind === 'inclusion'
          ? await outcome(async () =>
              proof.verifyInclusion(
                v.leafIdx,
                v.treeSize,
                await decode(v.leafHash, 'leaf'),
                hashes,
                await decode(v.root, 'root'),
              ),
            )
          : await outcome(async () =>
              proof.verifyConsistency(
                v.size1,
                v.size2,
                await decode(v.root1, 'root'),
                await decode(v.root2, 'root'),
                hashes,
              ),
            );
      assert.equal(result, v.wantErr ? 'rejected' : 'verified', `${file}: ${v.desc}`);
      if (v.wantErr) rejected++;
      else happy++;
    }
    assert.ok(happy > 0 && rejected > 0, `${happy} happy, ${rejected} rejected`);
  });
}

test('rootFromInclusion rebuilds the root of a small tree for every leaf', async () => {
  // A tree of 7 leaves built by hand, RFC 9162 §2.1.1: split at the largest power of two.
  const leaves = await Promise.all([...Array(7).keys()].map((i) => proof.leafHash(Uint8Array.of(i))));
  const mth = async (items) => {
    if (items.length === 1) return items[0];
    let k = 1;
    while (k * 2 < items.length) k *= 2;
    return proof.nodeHash(await mth(items.slice(0, k)), await mth(items.slice(k)));
  };
  const paths = async (items, index) => {
    if (items.length === 1) return [];
    let k = 1;
    while (k * 2 < items.length) k *= 2;
    return index < k
      ? [...(await paths(items.slice(0, k), index)), await mth(items.slice(k))]
      : [...(await paths(items.slice(k), index - k)), await mth(items.slice(0, k))];
  };
  const treeRoot = await mth(leaves);
  for (let i = 0; i < leaves.length; i++) {
    const path = await paths(leaves, i);
    assert.deepEqual(await proof.verifyInclusion(i, 7, leaves[i], path, treeRoot), treeRoot);
    const flipped = path.map((h) => h.slice());
    if (flipped.length) {
      flipped[0][5] ^= 1;
      await assert.rejects(proof.verifyInclusion(i, 7, leaves[i], flipped, treeRoot), proof.VerifyError);
    }
    await assert.rejects(proof.verifyInclusion(i ^ 1, 7, leaves[i], path, treeRoot), proof.VerifyError);
  }
});

test('canonical JSON sorts members by UTF-16 code units and writes numbers as JCS does', () => {
  const value = { b: [1, 2.5, -0, 1e21, 'x\u000a\u2028'], a: { '\u00e9': null, z: true, é: 1 }, '\u{1f600}': 0, '\ue000': 1 };
  assert.equal(
    proof.canonicalize(value),
    '{"a":{"z":true,"é":1},"b":[1,2.5,0,1e+21,"x\\n\u2028"],"\u{1f600}":0,"\ue000":1}',
  );
  const bytes = proof.entryBytes({ seq: 3, event_hash: 'ab', action: 'x' });
  assert.equal(new TextDecoder().decode(bytes), '{"action":"x","seq":3}');
});

async function signedNote(name, text) {
  const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
  const publicKey = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
  const id = await proof.keyId(name, publicKey);
  const signature = new Uint8Array(
    await crypto.subtle.sign({ name: 'Ed25519' }, pair.privateKey, new TextEncoder().encode(text)),
  );
  const key = `${name}+${proof.bytesToHex(id)}+${proof.bytesToBase64(proof.concat(Uint8Array.of(1), publicKey))}`;
  const note = `${text}\n\u2014 ${name} ${proof.bytesToBase64(proof.concat(id, signature))}\n`;
  return { key, note };
}

test('a signed checkpoint verifies with its key, and one changed byte anywhere fails', async () => {
  const root = proof.bytesToBase64(await proof.leafHash(new Uint8Array()));
  const text = `sealtrail.example/acme\n42\n${root}\nsealtrail-timestamp 2026-11-23T10:00:00.000000Z\n`;
  const { key, note } = await signedNote('sealtrail.example/acme', text);
  const parsed = await proof.parseVerifierKey(key);
  assert.equal(await proof.verifyNote(note, parsed), text);
  const checkpoint = proof.parseCheckpoint(text);
  assert.equal(checkpoint.origin, 'sealtrail.example/acme');
  assert.equal(checkpoint.size, 42n);
  assert.equal(checkpoint.timestamp, '2026-11-23T10:00:00.000000Z');

  // Each byte of the text changed, one at a time (skipping newlines, which change the note's
  // shape rather than its content): never verifies.
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\n') continue;
    const changed = note.slice(0, i) + String.fromCharCode(text.charCodeAt(i) ^ 1) + note.slice(i + 1);
    await assert.rejects(proof.verifyNote(changed, parsed), proof.VerifyError, `byte ${i}`);
  }
  // Another key under the same name, and a key whose id does not match it.
  const other = await signedNote('sealtrail.example/acme', text);
  await assert.rejects(proof.verifyNote(note, await proof.parseVerifierKey(other.key)), proof.VerifyError);
  const wrongId = key.replace(/\+([0-9a-f]{8})\+/, (_, id) => `+${id === '00000000' ? '00000001' : '00000000'}+`);
  await assert.rejects(proof.parseVerifierKey(wrongId), proof.VerifyError);
});

test('malformed notes, keys and checkpoints are refused', async () => {
  assert.throws(() => proof.parseNote('no signatures\n'), proof.VerifyError);
  assert.throws(() => proof.parseNote('text\n\nnot a signature\n'), proof.VerifyError);
  assert.throws(() => proof.parseCheckpoint('origin\n01\nAAAA\n'), proof.VerifyError);
  assert.throws(() => proof.parseCheckpoint('origin\n1\nAAAA\n'), proof.VerifyError);
  assert.throws(() => proof.base64ToBytes('AR=='), proof.VerifyError);
  assert.throws(() => proof.hexToBytes('ABCD'), proof.VerifyError);
  await assert.rejects(proof.parseVerifierKey('name+0000+AQ=='), proof.VerifyError);
});
