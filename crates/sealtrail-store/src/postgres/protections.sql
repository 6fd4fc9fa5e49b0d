-- The append-only protections of the log tables, as migration 0001 installs them, in a form
-- that can be applied again at any time: `sealtrail migrate` runs it after the migrations, so
-- a trigger that was dropped or disabled is put back. (What happened to the rows meanwhile is
-- for `sealtrail verify` to tell.)
CREATE OR REPLACE FUNCTION sealtrail_append_only() RETURNS trigger LANGUAGE plpgsql AS $append_only$
BEGIN
    IF TG_TABLE_NAME = 'entries' AND TG_OP = 'DELETE' AND TG_LEVEL = 'ROW' THEN
        IF OLD.seq < COALESCE((SELECT max(p.below) FROM prunes p WHERE p.tenant = OLD.tenant), 0) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING HINT = 'sealtrail log rows are never updated or deleted; retention prunes only through sealtrail_prune()';
    RETURN NULL;
END
$append_only$;

CREATE OR REPLACE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION sealtrail_append_only();
CREATE OR REPLACE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION sealtrail_append_only();
CREATE OR REPLACE TRIGGER hashes_append_only BEFORE UPDATE OR DELETE ON hashes
    FOR EACH ROW EXECUTE FUNCTION sealtrail_append_only();
CREATE OR REPLACE TRIGGER hashes_no_truncate BEFORE TRUNCATE ON hashes
    FOR EACH STATEMENT EXECUTE FUNCTION sealtrail_append_only();
CREATE OR REPLACE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION sealtrail_append_only();
CREATE OR REPLACE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION sealtrail_append_only();
CREATE OR REPLACE TRIGGER seals_append_only BEFORE UPDATE OR DELETE ON seals
    FOR EACH ROW EXECUTE FUNCTION sealtrail_append_only();
CREATE OR REPLACE TRIGGER seals_no_truncate BEFORE TRUNCATE ON seals
    FOR EACH STATEMENT EXECUTE FUNCTION sealtrail_append_only();
CREATE OR REPLACE TRIGGER prunes_append_only BEFORE UPDATE OR DELETE ON prunes
    FOR EACH ROW EXECUTE FUNCTION sealtrail_append_only();
CREATE OR REPLACE TRIGGER prunes_no_truncate BEFORE TRUNCATE ON prunes
    FOR EACH STATEMENT EXECUTE FUNCTION sealtrail_append_only();

ALTER TABLE entries ENABLE ALWAYS TRIGGER entries_append_only;
ALTER TABLE entries ENABLE ALWAYS TRIGGER entries_no_truncate;
ALTER TABLE hashes ENABLE ALWAYS TRIGGER hashes_append_only;
ALTER TABLE hashes ENABLE ALWAYS TRIGGER hashes_no_truncate;
ALTER TABLE checkpoints ENABLE ALWAYS TRIGGER checkpoints_append_only;
ALTER TABLE checkpoints ENABLE ALWAYS TRIGGER checkpoints_no_truncate;
ALTER TABLE seals ENABLE ALWAYS TRIGGER seals_append_only;
ALTER TABLE seals ENABLE ALWAYS TRIGGER seals_no_truncate;
ALTER TABLE prunes ENABLE ALWAYS TRIGGER prunes_append_only;
ALTER TABLE prunes ENABLE ALWAYS TRIGGER prunes_no_truncate;
