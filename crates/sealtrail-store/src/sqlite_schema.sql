-- sealtrail's embedded store, schema version 1. The log tables are append-only: triggers refuse
-- UPDATE and DELETE, so even a bug in sealtrail cannot rewrite history through this database.

CREATE TABLE tenants (
    name       TEXT PRIMARY KEY,
    origin     TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
) WITHOUT ROWID;

-- One row per log entry: the canonical bytes that are hashed, filed under their seq.
CREATE TABLE entries (
    tenant TEXT    NOT NULL,
    seq    INTEGER NOT NULL,
    id     TEXT    NOT NULL,
    entry  BLOB    NOT NULL,
    PRIMARY KEY (tenant, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX entries_by_id ON entries (tenant, id);

-- The stored-hash array of each tenant's Merkle tree (see sealtrail_core::merkle).
CREATE TABLE hashes (
    tenant TEXT    NOT NULL,
    idx    INTEGER NOT NULL,
    hash   BLOB    NOT NULL,
    PRIMARY KEY (tenant, idx)
) WITHOUT ROWID;

-- Every signed checkpoint, as the note text.
CREATE TABLE checkpoints (
    tenant     TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    note       TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (tenant, size)
) WITHOUT ROWID;

-- Idempotency keys per tenant, pointing at the entry they first produced.
CREATE TABLE idempotency (
    tenant TEXT    NOT NULL,
    key    TEXT    NOT NULL,
    seq    INTEGER NOT NULL,
    PRIMARY KEY (tenant, key)
) WITHOUT ROWID;

-- API tokens: only the SHA-256 of the secret is kept.
CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    secret_sha256 BLOB NOT NULL UNIQUE,
    scopes     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
) WITHOUT ROWID;

CREATE TRIGGER entries_append_only_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'entries are append-only'); END;
CREATE TRIGGER entries_append_only_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'entries are append-only'); END;
CREATE TRIGGER hashes_append_only_update BEFORE UPDATE ON hashes
BEGIN SELECT RAISE(ABORT, 'stored hashes are append-only'); END;
CREATE TRIGGER hashes_append_only_delete BEFORE DELETE ON hashes
BEGIN SELECT RAISE(ABORT, 'stored hashes are append-only'); END;
CREATE TRIGGER checkpoints_append_only_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
CREATE TRIGGER checkpoints_append_only_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;

-- The effective server configuration last applied, so that a change is noticed (and audited
-- in the `_system` log) at the next start.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
