-- Transitions per day, on both editions: 0011's counters (same layout and meaning: per
-- bucket of the second event and (a, b), the transitions and the sum of their gaps) get a
-- day grain, `rollup_transitions_daily`, the coarsest the paths analysis reads.
--
-- Why: a 30-day range read ~720 hourly buckets, each with a row per (a, b) pair seen in that
-- hour, and the pairs an hour holds grow with its events until every pair occurs: a site
-- with 50 event names has up to 2,500 pairs, so up to 1.8M rows for one 30-day figure.
-- Days hold each pair once per day: 30 buckets. (The benchmark's generator has 4 event
-- names and 6 pairs: there the 720 hours are 4,300 rows, 2 ms; what made its paths grow
-- from 10M to 50M events was the raw edges' predecessor lookups, fixed in the monitor.)
--
-- Exactly once: `edge_rollup_transitions_daily()` adds the same −1/+1 transition changes as
-- the hourly and minute counters (`edge_transition_delta`, filled by
-- `edge_rollup_transitions()` earlier in the batch's transaction from the rows it really
-- inserted), upserted in key order by one statement.
--
-- Upgrade: filled below from the hourly counters under a SHARE lock on them, so that no
-- batch of a collector still running the previous `edge_rollups()` commits between the
-- backfill's snapshot and this migration's commit.

CREATE TABLE rollup_transitions_daily (LIKE rollup_transitions_hourly INCLUDING ALL);

-- One batch's transition changes per day; called after `edge_rollup_transitions()`, which
-- creates its delta table only on a connection's first batch with a session.
CREATE OR REPLACE FUNCTION edge_rollup_transitions_daily() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    IF to_regclass('pg_temp.edge_transition_delta') IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO rollup_transitions_daily AS r (bucket, from_name, to_name, transitions, gap_us)
    SELECT time_bucket(INTERVAL '1 day', tb), a, b, sum(n), sum(gap_us)
    FROM edge_transition_delta
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (bucket, from_name, to_name) DO UPDATE
        SET transitions = r.transitions + EXCLUDED.transitions,
            gap_us      = r.gap_us + EXCLUDED.gap_us;
END
$fn$;

-- 0018's rollups plus the daily transitions.
CREATE OR REPLACE FUNCTION edge_rollups() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM edge_rollup_transitions();
    PERFORM edge_rollup_transitions_daily();
    PERFORM edge_rollup_funnel();
    PERFORM edge_rollup_activity();
    PERFORM edge_rollup_retention();
    PERFORM edge_rollup_minute();
    PERFORM edge_rollup_people_minute();
END
$fn$;

-- The daily counters from the hourly ones (a repair after the hourly ones were rebuilt with
-- `edge_transitions_between()`, the backfill below, the analyses benchmark's loader).
CREATE OR REPLACE FUNCTION edge_rebuild_transitions_daily() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    TRUNCATE rollup_transitions_daily;
    INSERT INTO rollup_transitions_daily
    SELECT time_bucket(INTERVAL '1 day', bucket), from_name, to_name,
           sum(transitions), sum(gap_us)
    FROM rollup_transitions_hourly
    GROUP BY 1, 2, 3
    HAVING sum(transitions) <> 0 OR sum(gap_us) <> 0
    ORDER BY 1, 2, 3;
END
$fn$;

LOCK TABLE rollup_transitions_hourly IN SHARE MODE;
SELECT edge_rebuild_transitions_daily();

DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'edge_monitor') THEN
        GRANT SELECT ON rollup_transitions_daily TO edge_monitor;
    END IF;
END
$do$;
