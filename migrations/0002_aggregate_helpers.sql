-- `edge_create_aggregate` turns one SELECT into the right object for the running edition:
--   * on the Community (`timescale`) license, a continuous aggregate with real-time
--     aggregation (materialized_only = false) and a refresh policy;
--   * on the `apache` license, a plain view with the same name, columns and meaning.
-- The SELECT must be valid for a continuous aggregate (one hypertable, a time_bucket in the
-- GROUP BY, no CTE/subquery/window function, no now()); see FACTS.md.

CREATE OR REPLACE FUNCTION edge_create_aggregate(
    view_name     TEXT,
    select_sql    TEXT,
    refresh_start INTERVAL,
    refresh_end   INTERVAL,
    refresh_every INTERVAL
) RETURNS TEXT
LANGUAGE plpgsql AS $fn$
BEGIN
    IF current_setting('timescaledb.license', true) = 'timescale' THEN
        EXECUTE format(
            'CREATE MATERIALIZED VIEW %I WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS %s WITH NO DATA',
            view_name, select_sql);
        PERFORM add_continuous_aggregate_policy(
            view_name::regclass,
            start_offset      => refresh_start,
            end_offset        => refresh_end,
            schedule_interval => refresh_every);
        RETURN 'continuous aggregate';
    ELSE
        EXECUTE format('CREATE VIEW %I AS %s', view_name, select_sql);
        RETURN 'view';
    END IF;
END
$fn$;

-- Which kind of object each aggregate became, for `monitor query database` and the README.
CREATE OR REPLACE VIEW edge_aggregates AS
SELECT c.relname::TEXT AS name,
       CASE WHEN ca.view_name IS NOT NULL THEN 'continuous aggregate' ELSE 'view' END AS kind
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
LEFT JOIN timescaledb_information.continuous_aggregates ca
       ON ca.view_schema = 'public' AND ca.view_name = c.relname
WHERE c.relkind IN ('v', 'm')
  AND c.relname NOT IN ('edge_aggregates');

-- Called by the forwarder once per batch, in the batch's transaction, after the rows were
-- inserted from the session's `edge_staging` table. Later migrations replace it with the
-- per-batch upserts of the aggregate layer. It must be idempotent: a batch can be replayed.
CREATE OR REPLACE FUNCTION edge_after_batch() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    RETURN;
END
$fn$;
