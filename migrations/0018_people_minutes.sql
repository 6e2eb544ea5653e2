-- People per minute, on both editions: 0013's `last_at` histogram (how many people have
-- their last event with a key in a bucket) gets a minute grain, `activity_last_minute`, so
-- that distinct people over a range no longer need the index `idx_activity_person_last_at`
-- (dim, last_at, value), which is dropped:
--
-- - The monitor read the people whose last event is in the partial hour at a range's start
--   by a range scan of that index: its rows follow the event rate (at 50M events over 30
--   days the breakdown took 1.3–2.3× its 10M time, README "50M events, the growth
--   target"). Now: the histogram's minutes of that hour, and for the partial minute the
--   people of that minute's raw events, each looked up by key (`person, dim, value`).
--   Likewise the people whose last event is at or after `to`: from the raw events dated
--   there (at most `MAX_LATER` of them, or the monitor reads raw events anyway).
--   Both are exact: a person's `last_at` is the time of one of its events, by an actor
--   linked to it now (0013 recomputes a person whose actor moved), so that event is among
--   the raw events read.
-- - Every batch updated each changed person's row (`last_at`, `prev_last_at`), which with
--   that index was a new index entry in two B-trees per row (the drain's largest statement,
--   173 of 499 ms a batch, README "The drain's profile again"). Without it no indexed
--   column changes, and with room left on the pages (fillfactor 80, for pages written from
--   now on) the update is a heap-only tuple: no index entry at all.
--
-- Exactly once: `edge_rollup_people_minute()` moves the minute buckets by the same −1/+1
-- changes of `last_at` as 0013's hourly and daily histograms (`edge_activity_delta`, filled
-- by `edge_rollup_activity()` earlier in the batch's transaction from the rows it really
-- inserted), upserted in key order by one statement.
--
-- Retention: `edge_prune_sessions()` deletes the minute buckets older than the raw events'
-- retention (a person's later event may move it out of a pruned bucket: that re-creates a
-- negative row below the retention, never read, and deleted again by the next pruning).
--
-- Upgrade: filled below from `activity_person_last` under a SHARE lock on it, so that no
-- batch of a collector still running the previous `edge_rollups()` commits between the
-- backfill's snapshot and this migration's commit.

CREATE TABLE activity_last_minute (LIKE activity_last_hourly INCLUDING ALL);

-- One batch's moves of the people histogram's minutes; called after
-- `edge_rollup_activity()`, whose `edge_activity_delta` it reads.
CREATE OR REPLACE FUNCTION edge_rollup_people_minute() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO activity_last_minute AS h (dim, bucket, value, people)
    SELECT dim, bucket, value, sum(n)
    FROM (
        SELECT dim, time_bucket(INTERVAL '1 minute', old_at) AS bucket, value, -1 AS n
        FROM edge_activity_delta WHERE old_at IS NOT NULL
        UNION ALL
        SELECT dim, time_bucket(INTERVAL '1 minute', new_at), value, 1
        FROM edge_activity_delta WHERE new_at IS NOT NULL
    ) x
    GROUP BY 1, 2, 3
    HAVING sum(n) <> 0
    ORDER BY 1, 2, 3
    ON CONFLICT (dim, bucket, value) DO UPDATE SET people = h.people + EXCLUDED.people;
END
$fn$;

-- 0017's rollups plus the people's minutes.
CREATE OR REPLACE FUNCTION edge_rollups() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM edge_rollup_transitions();
    PERFORM edge_rollup_funnel();
    PERFORM edge_rollup_activity();
    PERFORM edge_rollup_retention();
    PERFORM edge_rollup_minute();
    PERFORM edge_rollup_people_minute();
END
$fn$;

-- The people's minutes from scratch, from `activity_person_last` (a repair, the backfill).
CREATE OR REPLACE FUNCTION edge_rebuild_people_minute() RETURNS VOID
LANGUAGE plpgsql SET work_mem = '256MB' AS $fn$
BEGIN
    TRUNCATE activity_last_minute;
    INSERT INTO activity_last_minute
    SELECT dim, time_bucket(INTERVAL '1 minute', last_at), value, count(*)
    FROM activity_person_last
    GROUP BY 1, 2, 3
    ORDER BY 2, 1, 3;
END
$fn$;

-- `edge_rebuild_activity()` (0017's) keeps its body under a new name; the name callers use
-- rebuilds the people's minutes too, after `activity_person_last`.
ALTER FUNCTION edge_rebuild_activity() RENAME TO edge_rebuild_activity_0017;

CREATE OR REPLACE FUNCTION edge_rebuild_activity() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM edge_rebuild_activity_0017();
    PERFORM edge_rebuild_people_minute();
END
$fn$;

-- `edge_prune_sessions()` (0017's) likewise, plus the people's minutes.
ALTER FUNCTION edge_prune_sessions(INTERVAL) RENAME TO edge_prune_sessions_0017;

CREATE OR REPLACE FUNCTION edge_prune_sessions(older_than INTERVAL) RETURNS BIGINT
LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM activity_last_minute WHERE bucket < now() - older_than;
    RETURN edge_prune_sessions_0017(older_than);
END
$fn$;

LOCK TABLE activity_person_last IN SHARE MODE;
SELECT edge_rebuild_people_minute();

DROP INDEX idx_activity_person_last_at;
ALTER TABLE activity_person_last SET (fillfactor = 80);

DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'edge_monitor') THEN
        GRANT SELECT ON activity_last_minute TO edge_monitor;
    END IF;
END
$do$;
