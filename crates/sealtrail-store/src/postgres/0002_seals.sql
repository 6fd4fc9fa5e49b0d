-- sealtrail's PostgreSQL schema, version 2: the daily seals, one row per issue of a tenant's
-- day, append-only like the log tables.

CREATE TABLE seals (
    tenant     text    NOT NULL,
    day        text    NOT NULL,
    issue      integer NOT NULL,
    note       text    NOT NULL,
    created_at text    NOT NULL,
    PRIMARY KEY (tenant, day, issue)
);

CREATE TRIGGER seals_append_only BEFORE UPDATE OR DELETE ON seals
    FOR EACH ROW EXECUTE FUNCTION sealtrail_append_only();
CREATE TRIGGER seals_no_truncate BEFORE TRUNCATE ON seals
    FOR EACH STATEMENT EXECUTE FUNCTION sealtrail_append_only();

ALTER TABLE seals ENABLE ALWAYS TRIGGER seals_append_only;
ALTER TABLE seals ENABLE ALWAYS TRIGGER seals_no_truncate;
