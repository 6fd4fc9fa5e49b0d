-- sealtrail's PostgreSQL schema, version 1: the same tables as the embedded store, in the
-- connection's current schema. The log tables (entries, hashes, checkpoints) are append-only:
-- triggers refuse UPDATE, DELETE and TRUNCATE, so even a bug in sealtrail cannot rewrite
-- history through this database. The triggers are enabled ALWAYS, so they fire in replication
-- sessions (session_replication_role = replica) too.

CREATE TABLE tenants (
    name       text PRIMARY KEY,
    origin     text NOT NULL UNIQUE,
    created_at text NOT NULL,
    -- The verifier key the tenant's checkpoints are signed with.
    vkey       text
);

-- One row per log entry: the canonical bytes that are hashed, filed under their seq.
CREATE TABLE entries (
    tenant text   NOT NULL,
    seq    bigint NOT NULL,
    id     text   NOT NULL,
    entry  bytea  NOT NULL,
    PRIMARY KEY (tenant, seq),
    CONSTRAINT entries_by_id UNIQUE (tenant, id)
);

-- The stored-hash array of each tenant's Merkle tree (see sealtrail_core::merkle).
CREATE TABLE hashes (
    tenant text   NOT NULL,
    idx    bigint NOT NULL,
    hash   bytea  NOT NULL,
    PRIMARY KEY (tenant, idx)
);

-- Every signed checkpoint, as the note text.
CREATE TABLE checkpoints (
    tenant     text   NOT NULL,
    size       bigint NOT NULL,
    note       text   NOT NULL,
    created_at text   NOT NULL,
    PRIMARY KEY (tenant, size)
);

-- Idempotency keys per tenant, pointing at the entry they first produced.
CREATE TABLE idempotency (
    tenant text   NOT NULL,
    key    text   NOT NULL,
    seq    bigint NOT NULL,
    PRIMARY KEY (tenant, key)
);

-- API tokens: only the SHA-256 of the secret is kept.
CREATE TABLE tokens (
    id            text PRIMARY KEY,
    tenant        text  NOT NULL,
    secret_sha256 bytea NOT NULL UNIQUE,
    scopes        text  NOT NULL,
    created_at    text  NOT NULL,
    revoked_at    text
);

-- The effective server configuration last applied, so that a change is noticed (and audited
-- in the `_system` log) at the next start.
CREATE TABLE settings (
    name  text PRIMARY KEY,
    value text NOT NULL
);

-- Refuses any change to a log row, and truncation of a log table. `sealtrail verify` checks
-- that the triggers below call this function with this body.
CREATE FUNCTION sealtrail_append_only() RETURNS trigger LANGUAGE plpgsql AS $append_only$
BEGIN
    RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING HINT = 'sealtrail log rows are never updated or deleted';
    RETURN NULL;
END
$append_only$;

CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION sealtrail_append_only();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION sealtrail_append_only();
CREATE TRIGGER hashes_append_only BEFORE UPDATE OR DELETE ON hashes
    FOR EACH ROW EXECUTE FUNCTION sealtrail_append_only();
CREATE TRIGGER hashes_no_truncate BEFORE TRUNCATE ON hashes
    FOR EACH STATEMENT EXECUTE FUNCTION sealtrail_append_only();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION sealtrail_append_only();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION sealtrail_append_only();

ALTER TABLE entries ENABLE ALWAYS TRIGGER entries_append_only;
ALTER TABLE entries ENABLE ALWAYS TRIGGER entries_no_truncate;
ALTER TABLE hashes ENABLE ALWAYS TRIGGER hashes_append_only;
ALTER TABLE hashes ENABLE ALWAYS TRIGGER hashes_no_truncate;
ALTER TABLE checkpoints ENABLE ALWAYS TRIGGER checkpoints_append_only;
ALTER TABLE checkpoints ENABLE ALWAYS TRIGGER checkpoints_no_truncate;
