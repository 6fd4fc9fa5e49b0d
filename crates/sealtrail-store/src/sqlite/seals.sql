-- 3: the daily seals, one row per issue of a tenant's day, append-only like the log.
CREATE TABLE seals (
    tenant     TEXT    NOT NULL,
    day        TEXT    NOT NULL,
    issue      INTEGER NOT NULL,
    note       TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (tenant, day, issue)
) WITHOUT ROWID;
CREATE TRIGGER seals_append_only_update BEFORE UPDATE ON seals
BEGIN SELECT RAISE(ABORT, 'seals are append-only'); END;
CREATE TRIGGER seals_append_only_delete BEFORE DELETE ON seals
BEGIN SELECT RAISE(ABORT, 'seals are append-only'); END;
