-- A read-only role for the monitor: `edge_monitor` (NOLOGIN). Give people and dashboards a
-- login role that is a member of it, e.g.
--   CREATE ROLE oncall LOGIN PASSWORD '…' IN ROLE edge_monitor;
-- and run `monitor --database-url postgres://oncall@host/db`.
--
-- Roles are cluster-wide while migrations run per database, possibly in parallel on one
-- cluster (the tests create many databases): the role is created only if missing, and a
-- concurrent creation or a migrating user without CREATEROLE is tolerated (the grants are
-- then skipped with a notice; create the role and re-run the GRANTs below by hand). The
-- privileges are granted in every database that runs this migration.

DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'edge_monitor') THEN
        BEGIN
            CREATE ROLE edge_monitor NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN
                NULL; -- created concurrently by a migration of another database
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'cannot create role edge_monitor (no CREATEROLE): skipped';
        END;
    END IF;
END
$do$;

DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'edge_monitor') THEN
        RETURN;
    END IF;
    BEGIN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO edge_monitor', current_database());
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'cannot grant CONNECT on this database to edge_monitor: skipped';
    END;
    GRANT USAGE ON SCHEMA public TO edge_monitor;
    -- Tables, hypertables, views and continuous aggregates (all relations of the schema).
    GRANT SELECT ON ALL TABLES IN SCHEMA public TO edge_monitor;
    -- Relations later migrations create (as the migrating role) are readable too.
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO edge_monitor;
END
$do$;
