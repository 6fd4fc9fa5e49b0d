-- sealtrail's PostgreSQL schema, version 3: retention. Entries leave the log only through
-- sealtrail_prune(), a function of the schema's owner, below a watermark that an archive
-- verified against this store reached; their stored hashes and the checkpoints stay.

-- Per tenant, the log size below which a verified archive holds every entry. It only rises.
CREATE TABLE archive_watermarks (
    tenant      text   PRIMARY KEY,
    size        bigint NOT NULL,
    archive     text   NOT NULL,
    recorded_at text   NOT NULL
);

CREATE FUNCTION sealtrail_watermark_rises() RETURNS trigger LANGUAGE plpgsql AS $rises$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.size < OLD.size OR NEW.tenant <> OLD.tenant THEN
        RAISE EXCEPTION 'an archive watermark only rises: % refused', TG_OP;
    END IF;
    RETURN NEW;
END
$rises$;
CREATE TRIGGER archive_watermarks_rise_only BEFORE UPDATE OR DELETE ON archive_watermarks
    FOR EACH ROW EXECUTE FUNCTION sealtrail_watermark_rises();
ALTER TABLE archive_watermarks ENABLE ALWAYS TRIGGER archive_watermarks_rise_only;

-- One row per prune: entries of the tenant below `below` were removed, announced by the
-- `_system` entry at `system_seq`, and are in `archive`. Append-only; only sealtrail_prune()
-- writes it (the service role may read it, see docs/postgres-roles.sql).
CREATE TABLE prunes (
    tenant     text   NOT NULL,
    below      bigint NOT NULL,
    archive    text   NOT NULL,
    system_seq bigint NOT NULL,
    pruned_at  text   NOT NULL,
    PRIMARY KEY (tenant, below)
);

CREATE TRIGGER prunes_append_only BEFORE UPDATE OR DELETE ON prunes
    FOR EACH ROW EXECUTE FUNCTION sealtrail_append_only();
CREATE TRIGGER prunes_no_truncate BEFORE TRUNCATE ON prunes
    FOR EACH STATEMENT EXECUTE FUNCTION sealtrail_append_only();
ALTER TABLE prunes ENABLE ALWAYS TRIGGER prunes_append_only;
ALTER TABLE prunes ENABLE ALWAYS TRIGGER prunes_no_truncate;

-- The append-only function learns its one exception: a DELETE of an entry below its tenant's
-- recorded prune mark (which only sealtrail_prune() records).
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

-- Removes the entries of `p_tenant` below `p_below`, and their idempotency keys, after
-- recording the prune. Refuses a mark that does not rise, passes the archive watermark or
-- would remove the newest entry. Runs with its owner's rights, so the service role needs
-- only EXECUTE on it, not DELETE on the log. Returns the number of entries removed.
CREATE FUNCTION sealtrail_prune(p_tenant text, p_below bigint, p_archive text,
                                p_system_seq bigint, p_at text)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $prune$
DECLARE
    watermark bigint;
    current_mark bigint;
    log_size bigint;
    removed bigint;
BEGIN
    SELECT size INTO watermark FROM archive_watermarks WHERE tenant = p_tenant;
    SELECT COALESCE(max(below), 0) INTO current_mark FROM prunes WHERE tenant = p_tenant;
    SELECT COALESCE(max(seq) + 1, 0) INTO log_size FROM entries WHERE tenant = p_tenant;
    IF watermark IS NULL OR p_below > watermark THEN
        RAISE EXCEPTION 'prune of % below % refused: the archive watermark is %',
            p_tenant, p_below, COALESCE(watermark::text, 'not recorded');
    END IF;
    IF p_below <= current_mark THEN
        RAISE EXCEPTION 'prune of % below % refused: entries below % are pruned already',
            p_tenant, p_below, current_mark;
    END IF;
    IF p_below >= log_size THEN
        RAISE EXCEPTION 'prune of % below % refused: the newest entry (%) is always kept',
            p_tenant, p_below, log_size - 1;
    END IF;
    INSERT INTO prunes (tenant, below, archive, system_seq, pruned_at)
        VALUES (p_tenant, p_below, p_archive, p_system_seq, p_at);
    DELETE FROM entries WHERE tenant = p_tenant AND seq < p_below;
    GET DIAGNOSTICS removed = ROW_COUNT;
    DELETE FROM idempotency WHERE tenant = p_tenant AND seq < p_below;
    RETURN removed;
END
$prune$;
REVOKE ALL ON FUNCTION sealtrail_prune(text, bigint, text, bigint, text) FROM PUBLIC;
