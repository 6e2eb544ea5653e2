-- The seed's funnel (page_view → add_to_cart → checkout_start → purchase) pre-aggregated,
-- on both editions, with one definition: per session the first time of each step over all
-- its events; a session reaches step 1 when it has a page_view, step k when its first
-- step-k event comes strictly after its first step-(k−1) event and it reached k−1. Its
-- *level* is the last step it reaches. It counts in a range when its first page_view is in
-- the range (whatever the time of its later steps).
--
-- `session_funnel` holds each session's first times (a min-merge per batch: idempotent);
-- `rollup_funnel_hourly` counts sessions per (hour of the first page_view, level). Per
-- batch, from the rows really inserted, each touched session's old row is read under lock
-- (the session advisory locks of `edge_merge_batch()` are held too), merged, and the
-- counters move by −1 at the old (hour, level) and +1 at the new: exact under replay, late
-- events and any order.

CREATE TABLE session_funnel (
    session_id          TEXT PRIMARY KEY,
    page_view_time      TIMESTAMPTZ,
    add_to_cart_time    TIMESTAMPTZ,
    checkout_start_time TIMESTAMPTZ,
    purchase_time       TIMESTAMPTZ
);
-- The monitor reads the sessions entering in a range's partial hours by their entry time.
CREATE INDEX idx_session_funnel_entry ON session_funnel (page_view_time);

CREATE TABLE rollup_funnel_hourly (
    bucket   TIMESTAMPTZ NOT NULL,
    level    INT         NOT NULL,
    sessions BIGINT      NOT NULL,
    PRIMARY KEY (bucket, level)
);

CREATE OR REPLACE FUNCTION edge_funnel_level(t1 TIMESTAMPTZ, t2 TIMESTAMPTZ, t3 TIMESTAMPTZ, t4 TIMESTAMPTZ)
RETURNS INT LANGUAGE sql IMMUTABLE AS $fn$
    SELECT CASE WHEN t1 IS NULL THEN 0
                WHEN t2 IS NULL OR t2 <= t1 THEN 1
                WHEN t3 IS NULL OR t3 <= t2 THEN 2
                WHEN t4 IS NULL OR t4 <= t3 THEN 3
                ELSE 4 END
$fn$;

-- Both tables computed from scratch from `user_events` (the backfill below; a repair; the
-- analyses benchmark's loader).
CREATE OR REPLACE FUNCTION edge_rebuild_funnel() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM rollup_funnel_hourly;
    DELETE FROM session_funnel;
    INSERT INTO session_funnel
    SELECT session_id,
           min(event_time) FILTER (WHERE event_name = 'page_view'),
           min(event_time) FILTER (WHERE event_name = 'add_to_cart'),
           min(event_time) FILTER (WHERE event_name = 'checkout_start'),
           min(event_time) FILTER (WHERE event_name = 'purchase')
    FROM user_events
    WHERE session_id IS NOT NULL
      AND event_name IN ('page_view', 'add_to_cart', 'checkout_start', 'purchase')
    GROUP BY session_id;
    INSERT INTO rollup_funnel_hourly
    SELECT time_bucket(INTERVAL '1 hour', page_view_time),
           edge_funnel_level(page_view_time, add_to_cart_time, checkout_start_time, purchase_time),
           count(*)
    FROM session_funnel
    WHERE page_view_time IS NOT NULL
    GROUP BY 1, 2;
END
$fn$;

SELECT edge_rebuild_funnel();

CREATE OR REPLACE FUNCTION edge_rollup_funnel() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    IF to_regclass('pg_temp.edge_funnel_change') IS NULL THEN
        CREATE TEMP TABLE edge_funnel_change (
            session_id TEXT,
            o1 TIMESTAMPTZ, o2 TIMESTAMPTZ, o3 TIMESTAMPTZ, o4 TIMESTAMPTZ,
            n1 TIMESTAMPTZ, n2 TIMESTAMPTZ, n3 TIMESTAMPTZ, n4 TIMESTAMPTZ,
            existed BOOLEAN
        ) ON COMMIT DELETE ROWS;
    END IF;

    -- Old and merged first times of every session the batch touched.
    INSERT INTO edge_funnel_change
    SELECT b.session_id,
           f.page_view_time, f.add_to_cart_time, f.checkout_start_time, f.purchase_time,
           LEAST(f.page_view_time, b.t1), LEAST(f.add_to_cart_time, b.t2),
           LEAST(f.checkout_start_time, b.t3), LEAST(f.purchase_time, b.t4),
           f.session_id IS NOT NULL
    FROM (
        SELECT session_id,
               min(event_time) FILTER (WHERE event_name = 'page_view')      AS t1,
               min(event_time) FILTER (WHERE event_name = 'add_to_cart')    AS t2,
               min(event_time) FILTER (WHERE event_name = 'checkout_start') AS t3,
               min(event_time) FILTER (WHERE event_name = 'purchase')       AS t4
        FROM edge_inserted
        WHERE session_id IS NOT NULL
          AND event_name IN ('page_view', 'add_to_cart', 'checkout_start', 'purchase')
        GROUP BY session_id
    ) b
    LEFT JOIN (
        SELECT * FROM session_funnel
        WHERE session_id IN (SELECT session_id FROM edge_inserted)
        ORDER BY session_id
        FOR UPDATE
    ) f ON f.session_id = b.session_id;

    INSERT INTO session_funnel AS f
    SELECT session_id, n1, n2, n3, n4 FROM edge_funnel_change ORDER BY session_id
    ON CONFLICT (session_id) DO UPDATE
        SET page_view_time      = EXCLUDED.page_view_time,
            add_to_cart_time    = EXCLUDED.add_to_cart_time,
            checkout_start_time = EXCLUDED.checkout_start_time,
            purchase_time       = EXCLUDED.purchase_time;

    INSERT INTO rollup_funnel_hourly AS r (bucket, level, sessions)
    SELECT bucket, level, sum(d)
    FROM (
        SELECT time_bucket(INTERVAL '1 hour', o1) AS bucket, edge_funnel_level(o1, o2, o3, o4) AS level, -1 AS d
        FROM edge_funnel_change WHERE existed AND o1 IS NOT NULL
        UNION ALL
        SELECT time_bucket(INTERVAL '1 hour', n1), edge_funnel_level(n1, n2, n3, n4), 1
        FROM edge_funnel_change WHERE n1 IS NOT NULL
    ) d
    GROUP BY bucket, level
    HAVING sum(d) <> 0
    ORDER BY bucket, level
    ON CONFLICT (bucket, level) DO UPDATE SET sessions = r.sessions + EXCLUDED.sessions;
END
$fn$;

-- The rollups of 0011 plus the funnel's.
CREATE OR REPLACE FUNCTION edge_rollups() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM edge_rollup_transitions();
    PERFORM edge_rollup_funnel();
END
$fn$;

DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'edge_monitor') THEN
        GRANT SELECT ON session_funnel, rollup_funnel_hourly TO edge_monitor;
    END IF;
END
$do$;
