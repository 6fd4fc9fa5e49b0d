-- 5: the log tables keyed by integers. Each tenant has a number; a row of `entries` or `hashes`
-- is filed under the key (number << 44) | seq (or stored-hash index), so one tenant's rows are
-- one key range in order, and appending to a log appends to the end of its range of a rowid
-- b-tree instead of inserting into a WITHOUT ROWID b-tree keyed by text. An entry's id is the
-- 16 bytes of its UUID when it is one in its canonical spelling (what sealtrail assigns), the
-- text itself otherwise. The copy of the rows is `sqlite/layout.rs`; this file is run in two
-- parts around it, split at the line `-- copy`.

ALTER TABLE tenants ADD COLUMN number INTEGER;
UPDATE tenants SET number = (SELECT COUNT(*) FROM tenants AS t WHERE t.name < tenants.name);
CREATE UNIQUE INDEX tenants_by_number ON tenants (number);

DROP TRIGGER entries_append_only_update;
DROP TRIGGER entries_append_only_delete;
DROP TRIGGER hashes_append_only_update;
DROP TRIGGER hashes_append_only_delete;
DROP TRIGGER prunes_within_archive;
DROP INDEX entries_by_id;
ALTER TABLE entries RENAME TO entries_v4;
ALTER TABLE hashes RENAME TO hashes_v4;
ALTER TABLE idempotency RENAME TO idempotency_v4;

-- One row per log entry: the canonical bytes that are hashed, filed under tenant and seq.
-- `tenant_number` and `seq` are computed from the key, never stored.
CREATE TABLE entries (
    key           INTEGER PRIMARY KEY,
    id            BLOB    NOT NULL,
    entry         BLOB    NOT NULL,
    tenant_number INTEGER GENERATED ALWAYS AS (key >> 44) VIRTUAL,
    seq           INTEGER GENERATED ALWAYS AS (key & 17592186044415) VIRTUAL
);
CREATE UNIQUE INDEX entries_by_id ON entries (tenant_number, id);

-- The stored-hash array of each tenant's Merkle tree (see sealtrail_core::merkle).
CREATE TABLE hashes (
    key           INTEGER PRIMARY KEY,
    hash          BLOB    NOT NULL,
    tenant_number INTEGER GENERATED ALWAYS AS (key >> 44) VIRTUAL,
    idx           INTEGER GENERATED ALWAYS AS (key & 17592186044415) VIRTUAL
);

-- Idempotency keys per tenant, pointing at the entry they first produced.
CREATE TABLE idempotency (
    tenant_number INTEGER NOT NULL,
    key           TEXT    NOT NULL,
    seq           INTEGER NOT NULL,
    PRIMARY KEY (tenant_number, key)
) WITHOUT ROWID;

-- copy

DROP TABLE entries_v4;
DROP TABLE hashes_v4;
DROP TABLE idempotency_v4;

CREATE TRIGGER entries_append_only_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'entries are append-only'); END;
-- The one way out of the entries table: below the tenant's recorded prune mark.
CREATE TRIGGER entries_append_only_delete BEFORE DELETE ON entries
WHEN (OLD.key & 17592186044415) >= COALESCE((SELECT MAX(below) FROM prunes
    WHERE tenant = (SELECT name FROM tenants WHERE number = OLD.key >> 44)), 0)
BEGIN SELECT RAISE(ABORT, 'entries are append-only'); END;
CREATE TRIGGER hashes_append_only_update BEFORE UPDATE ON hashes
BEGIN SELECT RAISE(ABORT, 'stored hashes are append-only'); END;
CREATE TRIGGER hashes_append_only_delete BEFORE DELETE ON hashes
BEGIN SELECT RAISE(ABORT, 'stored hashes are append-only'); END;

CREATE TRIGGER prunes_within_archive BEFORE INSERT ON prunes
WHEN NEW.below > COALESCE((SELECT size FROM archive_watermarks WHERE tenant = NEW.tenant), 0)
  OR NEW.below <= COALESCE((SELECT MAX(below) FROM prunes WHERE tenant = NEW.tenant), 0)
  OR NEW.below >= COALESCE((SELECT (key & 17592186044415) + 1 FROM entries
      WHERE key >= (SELECT number << 44 FROM tenants WHERE name = NEW.tenant)
        AND key < (SELECT (number + 1) << 44 FROM tenants WHERE name = NEW.tenant)
      ORDER BY key DESC LIMIT 1), 0)
BEGIN SELECT RAISE(ABORT, 'a prune must rise, stay below the archive watermark and keep the newest entry'); END;
