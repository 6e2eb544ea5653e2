-- Minute grains, on both editions, so that what the monitor reads at a range's edges is a
-- partial minute of raw rows instead of a partial hour (whose rows follow the event rate):
--
-- - `activity_events_minute`: 0013's event counters (its layout and keys, one definition:
--   `edge_activity_keys()`, dim 0 "every event" included) per minute. Live's events per
--   minute and top events read them on both editions (60 buckets); they read
--   `real_time_monitoring`, on the apache edition a plain view that aggregated every raw
--   event of the hour twice per refresh (live took 1.7–1.8× at 50M events what it took at
--   10M, README "50M events, the growth target"), on the Community edition the real-time
--   part of a continuous aggregate for what its policy had not materialized. The breakdown
--   and pages read the events of the partial hour at a range's start from raw events: at
--   10M events over 30 days, 87 of the breakdown's 124 ms at 24h (10,863 events, 3 keys
--   each); now the minutes of that hour from here and a partial minute from raw events.
-- - `rollup_funnel_minute`: 0012's funnel counters per minute of the session's first
--   page_view, for the funnel's partial hours (read from `session_funnel` until now: up to
--   two hours of sessions).
--
-- The price is in the forwarder: a batch upserts a row per (key, minute) it touches; for a
-- batch of a few seconds of traffic that is about the hourly counters' rows again, for a
-- backlog spread over hours (the drain benchmark's 6 days) many more (README, Benchmarks).
--
-- Exactly once: `edge_rollup_minute()` counts `edge_activity_rows`, the keys of the rows the
-- batch really inserted (filled by 0013's `edge_rollup_activity()` earlier in the
-- transaction from 0011's `edge_inserted`), so a replay adds nothing, and moves the funnel's
-- minute counters by the same −1/+1 session changes as its hourly ones
-- (`edge_funnel_change`, filled under the sessions' row locks by 0012's
-- `edge_rollup_funnel()`). Counters are sums, upserted in key order by one statement each
-- per batch, so concurrent batches cannot deadlock on them. Identity does not enter (events
-- and sessions, not people), so link changes move nothing here.
--
-- Retention: `edge_prune_sessions(older_than)` (0005), which `collector maintain` calls on
-- the apache edition and a daily job on the Community edition (0007), now also deletes the
-- minute rows older than `older_than`, the raw events' retention.
--
-- Upgrade: both tables are filled below (from `user_events` and `session_funnel`) under a
-- SHARE lock on `user_events`, so that no batch of a collector still running the previous
-- `edge_rollups()` commits between the backfill's snapshot and this migration's commit (it
-- waits instead, then runs the new one). At 10M events the migration took 25 s.

CREATE TABLE activity_events_minute (
    dim    SMALLINT    NOT NULL,
    bucket TIMESTAMPTZ NOT NULL,
    value  TEXT        NOT NULL,
    events BIGINT      NOT NULL,
    PRIMARY KEY (dim, bucket, value)
);

CREATE TABLE rollup_funnel_minute (LIKE rollup_funnel_hourly INCLUDING ALL);

-- One batch's minute counters, from the rows it inserted; called after
-- `edge_rollup_funnel()` and `edge_rollup_activity()`, whose rows it reads.
CREATE OR REPLACE FUNCTION edge_rollup_minute() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO activity_events_minute AS c (dim, bucket, value, events)
    SELECT dim, time_bucket(INTERVAL '1 minute', event_time), value, count(*)
    FROM edge_activity_rows
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (dim, bucket, value) DO UPDATE SET events = c.events + EXCLUDED.events;

    INSERT INTO rollup_funnel_minute AS r (bucket, level, sessions)
    SELECT bucket, level, sum(d)
    FROM (
        SELECT time_bucket(INTERVAL '1 minute', o1) AS bucket, edge_funnel_level(o1, o2, o3, o4) AS level, -1 AS d
        FROM edge_funnel_change WHERE existed AND o1 IS NOT NULL
        UNION ALL
        SELECT time_bucket(INTERVAL '1 minute', n1), edge_funnel_level(n1, n2, n3, n4), 1
        FROM edge_funnel_change WHERE n1 IS NOT NULL
    ) d
    GROUP BY bucket, level
    HAVING sum(d) <> 0
    ORDER BY bucket, level
    ON CONFLICT (bucket, level) DO UPDATE SET sessions = r.sessions + EXCLUDED.sessions;
END
$fn$;

-- 0014's rollups plus the minute counters.
CREATE OR REPLACE FUNCTION edge_rollups() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM edge_rollup_transitions();
    PERFORM edge_rollup_funnel();
    PERFORM edge_rollup_activity();
    PERFORM edge_rollup_retention();
    PERFORM edge_rollup_minute();
END
$fn$;

-- `edge_rebuild_activity()` (0013) keeps its body under a new name; the name callers use
-- rebuilds the minute counters too.
ALTER FUNCTION edge_rebuild_activity() RENAME TO edge_rebuild_activity_0013;

-- The event minute counters computed from scratch from `user_events` (a repair, the
-- backfill below).
CREATE OR REPLACE FUNCTION edge_rebuild_events_minute() RETURNS VOID
LANGUAGE plpgsql SET work_mem = '256MB' AS $fn$
BEGIN
    TRUNCATE activity_events_minute;
    INSERT INTO activity_events_minute
    SELECT k.dim, time_bucket(INTERVAL '1 minute', e.event_time), k.value, count(*)
    FROM user_events e,
         edge_activity_keys(e.device_type, e.country_code::TEXT, e.event_name, e.page_url) k
    GROUP BY 1, 2, 3
    -- Stored in time order, as the forwarder's batches store them: a range of minutes is
    -- then a few adjacent pages (in hash order it was a page per row, 127 ms for the
    -- 2,700 rows of pages' partial hour at 10M events, cold).
    ORDER BY 2, 1, 3;
END
$fn$;

CREATE OR REPLACE FUNCTION edge_rebuild_activity() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM edge_rebuild_activity_0013();
    PERFORM edge_rebuild_events_minute();
END
$fn$;

-- `edge_rebuild_funnel()` (0012) likewise, plus the funnel's minute counters.
ALTER FUNCTION edge_rebuild_funnel() RENAME TO edge_rebuild_funnel_0012;

CREATE OR REPLACE FUNCTION edge_rebuild_funnel() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM edge_rebuild_funnel_0012();
    PERFORM edge_rebuild_funnel_minute();
END
$fn$;

-- The funnel's minute counters from `session_funnel` (the sessions' first times).
CREATE OR REPLACE FUNCTION edge_rebuild_funnel_minute() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM rollup_funnel_minute;
    INSERT INTO rollup_funnel_minute
    SELECT time_bucket(INTERVAL '1 minute', page_view_time),
           edge_funnel_level(page_view_time, add_to_cart_time, checkout_start_time, purchase_time),
           count(*)
    FROM session_funnel
    WHERE page_view_time IS NOT NULL
    GROUP BY 1, 2
    ORDER BY 1, 2;
END
$fn$;

-- `edge_prune_sessions()` (0005) likewise, plus the minute counters' retention.
ALTER FUNCTION edge_prune_sessions(INTERVAL) RENAME TO edge_prune_sessions_0005;

CREATE OR REPLACE FUNCTION edge_prune_sessions(older_than INTERVAL) RETURNS BIGINT
LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM activity_events_minute WHERE bucket < now() - older_than;
    DELETE FROM rollup_funnel_minute WHERE bucket < now() - older_than;
    RETURN edge_prune_sessions_0005(older_than);
END
$fn$;

LOCK TABLE user_events IN SHARE MODE;
SELECT edge_rebuild_events_minute();
SELECT edge_rebuild_funnel_minute();

DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'edge_monitor') THEN
        GRANT SELECT ON activity_events_minute, rollup_funnel_minute TO edge_monitor;
    END IF;
END
$do$;
