-- 4: retention. Entries leave the log only through a recorded prune, below a watermark that an
-- archive verified against this store reached; their stored hashes and the checkpoints stay.

-- Per tenant, the log size below which a verified archive holds every entry. It only rises.
CREATE TABLE archive_watermarks (
    tenant      TEXT    PRIMARY KEY,
    size        INTEGER NOT NULL,
    archive     TEXT    NOT NULL,
    recorded_at TEXT    NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER archive_watermarks_rise_only BEFORE UPDATE ON archive_watermarks
WHEN NEW.size < OLD.size OR NEW.tenant <> OLD.tenant
BEGIN SELECT RAISE(ABORT, 'an archive watermark only rises'); END;
CREATE TRIGGER archive_watermarks_no_delete BEFORE DELETE ON archive_watermarks
BEGIN SELECT RAISE(ABORT, 'an archive watermark only rises: it is never deleted'); END;

-- One row per prune: entries of the tenant below `below` were removed, announced by the
-- `_system` entry at `system_seq`, and are in `archive`. Append-only.
CREATE TABLE prunes (
    tenant     TEXT    NOT NULL,
    below      INTEGER NOT NULL,
    archive    TEXT    NOT NULL,
    system_seq INTEGER NOT NULL,
    pruned_at  TEXT    NOT NULL,
    PRIMARY KEY (tenant, below)
) WITHOUT ROWID;
CREATE TRIGGER prunes_within_archive BEFORE INSERT ON prunes
WHEN NEW.below > COALESCE((SELECT size FROM archive_watermarks WHERE tenant = NEW.tenant), 0)
  OR NEW.below <= COALESCE((SELECT MAX(below) FROM prunes WHERE tenant = NEW.tenant), 0)
  OR NEW.below >= (SELECT COALESCE(MAX(seq), -1) + 1 FROM entries WHERE tenant = NEW.tenant)
BEGIN SELECT RAISE(ABORT, 'a prune must rise, stay below the archive watermark and keep the newest entry'); END;
CREATE TRIGGER prunes_append_only_update BEFORE UPDATE ON prunes
BEGIN SELECT RAISE(ABORT, 'prunes are append-only'); END;
CREATE TRIGGER prunes_append_only_delete BEFORE DELETE ON prunes
BEGIN SELECT RAISE(ABORT, 'prunes are append-only'); END;

-- The one way out of the entries table: below the tenant's recorded prune mark.
DROP TRIGGER entries_append_only_delete;
CREATE TRIGGER entries_append_only_delete BEFORE DELETE ON entries
WHEN OLD.seq >= COALESCE((SELECT MAX(below) FROM prunes WHERE tenant = OLD.tenant), 0)
BEGIN SELECT RAISE(ABORT, 'entries are append-only'); END;
