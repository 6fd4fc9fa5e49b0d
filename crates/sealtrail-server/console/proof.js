// The console's verification code: RFC 9162 (RFC 6962) Merkle proofs, C2SP signed notes and
// checkpoints, and RFC 8785 canonical JSON, on WebCrypto only (SHA-256 and Ed25519). Nothing
// here touches the page or the network, so the same module runs under `node --test` against
// the public Merkle test vectors.

const subtle = globalThis.crypto.subtle;
const utf8 = new TextEncoder();

/** A proof or note that does not verify; `message` says why. */
export class VerifyError extends Error {}

// ---- bytes ------------------------------------------------------------------------------

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

export function hexToBytes(hex) {
  if (typeof hex !== 'string' || !/^(?:[0-9a-f]{2})*$/.test(hex)) {
    throw new VerifyError(`not lowercase hex: ${String(hex).slice(0, 80)}`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Standard, padded base64 (RFC 4648 §4), canonical spelling only. */
export function base64ToBytes(text) {
  if (typeof text !== 'string' || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    throw new VerifyError(`not base64: ${String(text).slice(0, 80)}`);
  }
  const binary = atob(text);
  const out = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  if (bytesToBase64(out) !== text) throw new VerifyError(`not canonical base64: ${text.slice(0, 80)}`);
  return out;
}

export function bytesToBase64(bytes) {
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

export async function sha256(bytes) {
  return new Uint8Array(await subtle.digest('SHA-256', bytes));
}

// ---- RFC 9162 Merkle tree ---------------------------------------------------------------

/** The leaf hash of an entry: SHA-256(0x00 || entry). */
export function leafHash(entry) {
  return sha256(concat(Uint8Array.of(0), entry));
}

/** An interior node: SHA-256(0x01 || left || right). */
export function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

function checkHash(value, what) {
  if (!(value instanceof Uint8Array) || value.length !== 32) {
    throw new VerifyError(`${what} is not a 32-byte hash`);
  }
}

function treeNumber(value, what) {
  try {
    const n = BigInt(value);
    if (n < 0n) throw new RangeError();
    return n;
  } catch {
    throw new VerifyError(`${what} is not a tree index or size: ${value}`);
  }
}

/**
 * The root that the inclusion proof `proof` (32-byte hashes, leaf to root) gives for the leaf
 * hash `leaf` at `index` in a tree of `size` leaves (RFC 9162 §2.1.3.2). Throws when the
 * proof cannot be one for that index and size.
 */
export async function rootFromInclusion(index, size, leaf, proof) {
  let fn = treeNumber(index, 'the leaf index');
  let sn = treeNumber(size, 'the tree size');
  if (fn >= sn) throw new VerifyError(`leaf index ${fn} is not below tree size ${sn}`);
  checkHash(leaf, 'the leaf hash');
  proof.forEach((p, i) => checkHash(p, `proof hash ${i}`));
  sn -= 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new VerifyError(`the proof is longer than a tree of ${size} needs`);
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new VerifyError(`the proof is shorter than a tree of ${size} needs`);
  return r;
}

/** Verifies an inclusion proof against `root`; throws a VerifyError saying why not. */
export async function verifyInclusion(index, size, leaf, proof, root) {
  checkHash(root, 'the root');
  const computed = await rootFromInclusion(index, size, leaf, proof);
  if (!equalBytes(computed, root)) {
    throw new VerifyError(
      `the proof leads to root ${bytesToHex(computed)}, not the checkpoint's ${bytesToHex(root)}`,
    );
  }
  return computed;
}

/**
 * Verifies that the tree of `size2` leaves with root `root2` extends the tree of `size1`
 * leaves with root `root1` (RFC 9162 §2.1.4.2); throws a VerifyError saying why not.
 */
export async function verifyConsistency(size1, size2, root1, root2, proof) {
  const first = treeNumber(size1, 'the first size');
  const second = treeNumber(size2, 'the second size');
  checkHash(root1, 'the first root');
  checkHash(root2, 'the second root');
  proof.forEach((p, i) => checkHash(p, `proof hash ${i}`));
  if (first > second) throw new VerifyError(`the first size ${first} is above the second ${second}`);
  if (first === 0n) throw new VerifyError('a consistency proof from the empty tree proves nothing');
  if (first === second) {
    if (proof.length !== 0) throw new VerifyError('equal sizes take an empty proof');
    if (!equalBytes(root1, root2)) throw new VerifyError('equal sizes with different roots');
    return;
  }
  if (proof.length === 0) throw new VerifyError('the proof is empty');
  let path = proof;
  if ((first & (first - 1n)) === 0n) path = [root1, ...proof];
  let fn = first - 1n;
  let sn = second - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) throw new VerifyError('the proof is longer than the sizes need');
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new VerifyError('the proof is shorter than the sizes need');
  if (!equalBytes(fr, root1)) throw new VerifyError('the proof does not lead to the first root');
  if (!equalBytes(sr, root2)) throw new VerifyError('the proof does not lead to the second root');
}

// ---- RFC 8785 canonical JSON ------------------------------------------------------------

/**
 * The RFC 8785 (JCS) canonical form of a JSON value: object members sorted by the UTF-16
 * code units of their names, no whitespace, strings and numbers as ECMAScript serializes
 * them (which is how JCS defines them).
 */
export function canonicalize(value) {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') {
    return JSON.stringify(value);
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new VerifyError('a number JSON cannot carry');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalize).join(',')}]`;
  if (typeof value === 'object') {
    const names = Object.keys(value).sort();
    return `{${names.map((n) => `${JSON.stringify(n)}:${canonicalize(value[n])}`).join(',')}}`;
  }
  throw new VerifyError(`a value JSON cannot carry: ${typeof value}`);
}

/**
 * The canonical entry bytes behind an event as the API shows it: the event without the
 * `event_hash` the server adds to it, in canonical JSON, as UTF-8.
 */
export function entryBytes(event) {
  const entry = { ...event };
  delete entry.event_hash;
  return utf8.encode(canonicalize(entry));
}

// ---- C2SP signed notes, keys and checkpoints --------------------------------------------

const ED25519 = 0x01;

/** The 4-byte key id: SHA-256(name || "\n" || 0x01 || public key)[:4]. */
export async function keyId(name, publicKey) {
  const digest = await sha256(concat(utf8.encode(name), Uint8Array.of(0x0a, ED25519), publicKey));
  return digest.slice(0, 4);
}

/**
 * Parses a verifier key `<name>+<key id, 8 hex>+<base64(0x01 || public key)>` and checks
 * that its key id belongs to its key. Returns `{name, keyId, publicKey}`.
 */
export async function parseVerifierKey(text) {
  const line = text.endsWith('\n') ? text.slice(0, -1) : text;
  // The name holds no `+`; the base64 key may.
  const match = /^([^+]*)\+([^+]*)\+(.*)$/su.exec(line);
  if (!match) throw new VerifyError('a verifier key is <name>+<key id>+<key>');
  const [, name, idHex, material] = match;
  if (name === '' || /[\s\u0000-\u001f]/u.test(name)) throw new VerifyError('the key name is not valid');
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw new VerifyError('the key id is not 8 lowercase hex digits');
  const bytes = base64ToBytes(material);
  if (bytes.length !== 33 || bytes[0] !== ED25519) {
    throw new VerifyError('the key is not 0x01 followed by a 32-byte Ed25519 public key');
  }
  const publicKey = bytes.slice(1);
  const id = await keyId(name, publicKey);
  if (bytesToHex(id) !== idHex) throw new VerifyError('the key id does not match the key');
  return { name, keyId: id, publicKey };
}

/**
 * Splits a signed note into its text (everything up to and including the newline before the
 * last blank line) and its signature lines `— <name> <base64(key id || signature)>`.
 */
export function parseNote(note) {
  if (typeof note !== 'string' || !note.endsWith('\n')) throw new VerifyError('a note ends in a newline');
  if (/[\u0000-\u0009\u000b-\u001f]/.test(note)) throw new VerifyError('the note holds a control character');
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw new VerifyError('the note has no blank line before its signatures');
  const text = note.slice(0, split + 1);
  const signatures = note
    .slice(split + 2, -1)
    .split('\n')
    .map((line) => {
      const match = /^\u2014 (\S+) (\S+)$/u.exec(line);
      if (!match) throw new VerifyError(`not a signature line: ${line.slice(0, 80)}`);
      const blob = base64ToBytes(match[2]);
      if (blob.length < 5) throw new VerifyError('a signature is too short');
      return { name: match[1], keyId: blob.slice(0, 4), signature: blob.slice(4) };
    });
  if (text.length === 0) throw new VerifyError('the note has no text');
  return { text, signatures };
}

/**
 * Verifies a signed note with a verifier key (from parseVerifierKey): a signature line with
 * the key's name and id must verify with Ed25519 over the note's text. Returns the text.
 */
export async function verifyNote(note, key) {
  const { text, signatures } = parseNote(note);
  const mine = signatures.filter((s) => s.name === key.name && equalBytes(s.keyId, key.keyId));
  if (mine.length === 0) throw new VerifyError(`no signature by the key ${key.name}`);
  const publicKey = await subtle.importKey('raw', key.publicKey, { name: 'Ed25519' }, false, ['verify']);
  for (const s of mine) {
    const ok =
      s.signature.length === 64 &&
      (await subtle.verify({ name: 'Ed25519' }, publicKey, s.signature, utf8.encode(text)));
    if (!ok) throw new VerifyError(`the signature by ${key.name} does not verify`);
  }
  return text;
}

/**
 * Parses a C2SP checkpoint text: origin, tree size, base64 root hash, extension lines (and
 * sealtrail's `sealtrail-timestamp` among them).
 */
export function parseCheckpoint(text) {
  const lines = text.split('\n');
  if (lines.pop() !== '' || lines.length < 3) throw new VerifyError('a checkpoint has at least 3 lines');
  const [origin, sizeText, rootText, ...extensions] = lines;
  if (origin === '') throw new VerifyError('the checkpoint has no origin');
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText)) throw new VerifyError('the tree size is not a decimal number');
  const root = base64ToBytes(rootText);
  if (root.length !== 32) throw new VerifyError('the root is not a 32-byte hash');
  const stamp = extensions.find((l) => l.startsWith('sealtrail-timestamp '));
  return {
    origin,
    size: BigInt(sizeText),
    root,
    extensions,
    timestamp: stamp ? stamp.slice('sealtrail-timestamp '.length) : null,
  };
}
