-- Least-privilege roles for sealtrail on PostgreSQL (see docs/postgres.md).
--
--   sealtrail_owner  owns the `sealtrail` schema and its tables; runs `sealtrail migrate`.
--   sealtrail_app    what `sealtrail serve` connects as: reads, appends to the log tables,
--                    updates only tenants (verifier-key backfill), tokens (revocation) and
--                    settings. It cannot update, delete or truncate log rows, and as it owns
--                    nothing it cannot drop or disable the append-only triggers.
--
-- Run it as a superuser, connected to the database sealtrail will use:
--
--   psql -d sealtrail -f docs/postgres-roles.sql
--
-- Passwords are optional psql variables (or set them yourself later, e.g. with \password):
--
--   psql -d sealtrail -v owner_password='…' -v app_password='…' -f docs/postgres-roles.sql
--
-- Run it once before the first `sealtrail migrate` (roles and schema) and again after every
-- `sealtrail migrate` (privileges on the tables the migrations created). Running it again is
-- harmless: it creates only what is missing and resets sealtrail_app's table privileges to
-- exactly those below.

\set ON_ERROR_STOP on

-- Roles ---------------------------------------------------------------------------------------

SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sealtrail_owner') AS st_create_owner,
       NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sealtrail_app') AS st_create_app
\gset
\if :st_create_owner
CREATE ROLE sealtrail_owner LOGIN;
\endif
\if :st_create_app
CREATE ROLE sealtrail_app LOGIN;
\endif
\if :{?owner_password}
ALTER ROLE sealtrail_owner PASSWORD :'owner_password';
\endif
\if :{?app_password}
ALTER ROLE sealtrail_app PASSWORD :'app_password';
\endif

-- Neither role is a superuser, creates roles or databases, or bypasses row security, even if
-- it existed before this script ran.
ALTER ROLE sealtrail_owner NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE sealtrail_app NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;

-- Schema --------------------------------------------------------------------------------------

GRANT CONNECT ON DATABASE :"DBNAME" TO sealtrail_owner, sealtrail_app;

CREATE SCHEMA IF NOT EXISTS sealtrail AUTHORIZATION sealtrail_owner;
ALTER SCHEMA sealtrail OWNER TO sealtrail_owner;
REVOKE ALL ON SCHEMA sealtrail FROM PUBLIC;
-- USAGE only: the service role cannot create objects in the schema.
GRANT USAGE ON SCHEMA sealtrail TO sealtrail_app;

-- Both roles find sealtrail's tables in its schema when they connect to this database.
ALTER ROLE sealtrail_owner IN DATABASE :"DBNAME" SET search_path = sealtrail;
ALTER ROLE sealtrail_app IN DATABASE :"DBNAME" SET search_path = sealtrail;

-- Table privileges of the service role ----------------------------------------------------------

-- Tables that do not exist yet (before the first `sealtrail migrate`) are skipped.
DO $grants$
DECLARE
    spec record;
    missing text[] := '{}';
BEGIN
    FOR spec IN
        SELECT * FROM (VALUES
            -- The log: read and append, never change.
            ('entries',                     'SELECT, INSERT'),
            ('hashes',                      'SELECT, INSERT'),
            ('checkpoints',                 'SELECT, INSERT'),
            ('seals',                       'SELECT, INSERT'),
            ('idempotency',                 'SELECT, INSERT'),
            -- Retention: the archive watermark rises (a trigger refuses it falling); prunes
            -- are recorded only by sealtrail_prune(), which runs with the owner's rights.
            ('archive_watermarks',          'SELECT, INSERT, UPDATE'),
            ('prunes',                      'SELECT'),
            -- Verifier-key backfill, token revocation, the recorded configuration.
            ('tenants',                     'SELECT, INSERT, UPDATE'),
            ('tokens',                      'SELECT, INSERT, UPDATE'),
            ('settings',                    'SELECT, INSERT, UPDATE'),
            -- Enough to see that the schema is up to date, not to claim otherwise.
            ('sealtrail_schema_migrations', 'SELECT')
        ) AS t (name, privileges)
    LOOP
        IF to_regclass(format('sealtrail.%I', spec.name)) IS NOT NULL THEN
            EXECUTE format('REVOKE ALL ON sealtrail.%I FROM sealtrail_app, PUBLIC', spec.name);
            EXECUTE format('GRANT %s ON sealtrail.%I TO sealtrail_app', spec.privileges, spec.name);
        ELSE
            missing := missing || spec.name;
        END IF;
    END LOOP;
    -- The one way entries leave the log: the owner's function, which checks the watermark.
    IF to_regprocedure('sealtrail.sealtrail_prune(text, bigint, text, bigint, text)') IS NOT NULL THEN
        REVOKE ALL ON FUNCTION sealtrail.sealtrail_prune(text, bigint, text, bigint, text) FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION sealtrail.sealtrail_prune(text, bigint, text, bigint, text) TO sealtrail_app;
    END IF;
    IF cardinality(missing) > 0 THEN
        RAISE NOTICE 'not yet created: % (run `sealtrail migrate` as sealtrail_owner, then this script again)',
            array_to_string(missing, ', ');
    END IF;
END
$grants$;
