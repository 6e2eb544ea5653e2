-- Page/event transitions pre-aggregated (the Paths analysis), on both editions, with one
-- definition: a transition a → b is a pair of consecutive events of a session (all its
-- events, ordered by event_time then event_id) less than `edge_session_gap()` (1 day)
-- apart; it belongs to the bucket of its second event b. The counters hold, per bucket and
-- (a, b), the number of transitions and the sum of their gaps in microseconds (integers:
-- exact under any order of additions and subtractions).
--
-- Maintained per batch by `edge_merge_batch()`, in the batch's transaction, from the rows
-- the batch really inserted (`INSERT … ON CONFLICT DO NOTHING RETURNING` into the session's
-- `edge_inserted` table), so a replayed batch changes nothing. A late or out-of-order event
-- n that lands between two events p, q of its session removes the transition p → q and adds
-- p → n and n → q: the counters are exact whatever the arrival order. Batches that touch
-- the same session are serialised by a transaction-level advisory lock per session (taken
-- in hash order, so two batches never wait on each other in a cycle), because each batch
-- must see the other's events to find its neighbours.
--
-- Two grains: hours (the bulk of any range) and minutes (the partial hours at a range's
-- edges); the monitor reads only the partial minutes at the very edges from raw events.
--
-- Collectors older than this migration still call `edge_after_batch()` directly and do
-- not feed these counters: upgrade every collector with the schema.

CREATE OR REPLACE FUNCTION edge_session_gap() RETURNS INTERVAL
LANGUAGE sql IMMUTABLE AS $fn$ SELECT INTERVAL '1 day' $fn$;

CREATE TABLE rollup_transitions_hourly (
    bucket      TIMESTAMPTZ NOT NULL,
    from_name   TEXT        NOT NULL,
    to_name     TEXT        NOT NULL,
    transitions BIGINT      NOT NULL,
    gap_us      BIGINT      NOT NULL,
    PRIMARY KEY (bucket, from_name, to_name)
);

CREATE TABLE rollup_transitions_minute (LIKE rollup_transitions_hourly INCLUDING ALL);

-- The transitions of `user_events` rows with event_time in [lo, hi) of their second event,
-- computed from scratch (the backfill below, and a repair after a collector older than
-- this migration forwarded batches: delete the range's rows and insert these).
CREATE OR REPLACE FUNCTION edge_transitions_between(lo TIMESTAMPTZ, hi TIMESTAMPTZ, width INTERVAL)
RETURNS TABLE (bucket TIMESTAMPTZ, from_name TEXT, to_name TEXT, transitions BIGINT, gap_us BIGINT)
LANGUAGE sql STABLE AS $fn$
    SELECT time_bucket(width, tb), a, b, count(*),
           sum((extract(epoch FROM tb - ta) * 1000000)::BIGINT)
    FROM (
        SELECT event_name AS b, event_time AS tb,
               lag(event_name) OVER w AS a, lag(event_time) OVER w AS ta
        FROM user_events
        WHERE session_id IS NOT NULL
          AND event_time >= lo - edge_session_gap() AND event_time < hi
        WINDOW w AS (PARTITION BY session_id ORDER BY event_time, event_id)
    ) t
    WHERE a IS NOT NULL AND tb >= lo AND tb - ta < edge_session_gap()
    GROUP BY 1, 2, 3
$fn$;

-- (NULL bounds on an empty table: no rows.)
INSERT INTO rollup_transitions_hourly
SELECT * FROM edge_transitions_between((SELECT min(event_time) FROM user_events),
                                       (SELECT max(event_time) FROM user_events) + INTERVAL '1 second',
                                       INTERVAL '1 hour');
INSERT INTO rollup_transitions_minute
SELECT * FROM edge_transitions_between((SELECT min(event_time) FROM user_events),
                                       (SELECT max(event_time) FROM user_events) + INTERVAL '1 second',
                                       INTERVAL '1 minute');

-- The counter changes of one batch: reads `edge_inserted` (the rows this batch inserted).
CREATE OR REPLACE FUNCTION edge_rollup_transitions() RETURNS VOID
LANGUAGE plpgsql AS $fn$
DECLARE
    lo TIMESTAMPTZ;
    hi TIMESTAMPTZ;
BEGIN
    SELECT min(event_time) - edge_session_gap(), max(event_time) + edge_session_gap()
    INTO lo, hi
    FROM edge_inserted WHERE session_id IS NOT NULL;
    IF lo IS NULL THEN
        RETURN;
    END IF;
    IF to_regclass('pg_temp.edge_transition_delta') IS NULL THEN
        CREATE TEMP TABLE edge_transition_delta (
            tb TIMESTAMPTZ, a TEXT, b TEXT, n BIGINT, gap_us BIGINT
        ) ON COMMIT DELETE ROWS;
    END IF;

    WITH sessions AS (
        SELECT DISTINCT session_id FROM edge_inserted WHERE session_id IS NOT NULL
    ),
    -- Every event of the touched sessions near the new ones (a neighbour of a new event,
    -- or a pair a new event splits, is at most one gap away from it).
    w AS (
        SELECT e.session_id, e.event_id, e.event_time, e.event_name,
               (n.event_id IS NOT NULL) AS is_new
        FROM sessions s
        JOIN user_events e ON e.session_id = s.session_id
        LEFT JOIN edge_inserted n ON n.event_id = e.event_id AND n.event_time = e.event_time
        WHERE e.event_time >= lo AND e.event_time <= hi
    ),
    ordered AS (
        SELECT w.*,
               lead(event_name) OVER o AS next_name,
               lead(event_time) OVER o AS next_time,
               lead(is_new)     OVER o AS next_is_new
        FROM w
        WINDOW o AS (PARTITION BY session_id ORDER BY event_time, event_id)
    ),
    -- Pairs of the new order with a new event in them.
    added AS (
        SELECT next_time AS tb, event_name AS a, next_name AS b, 1 AS n,
               (extract(epoch FROM next_time - event_time) * 1000000)::BIGINT AS gap_us
        FROM ordered
        WHERE next_name IS NOT NULL AND (is_new OR next_is_new)
          AND next_time - event_time < edge_session_gap()
    ),
    -- Pairs of the old order that a new event now separates.
    old_pairs AS (
        SELECT event_name AS a, event_time AS ta, next_is_new,
               lead(event_name) OVER o AS b, lead(event_time) OVER o AS tb
        FROM ordered
        WHERE NOT is_new
        WINDOW o AS (PARTITION BY session_id ORDER BY event_time, event_id)
    ),
    removed AS (
        SELECT tb, a, b, -1 AS n, -(extract(epoch FROM tb - ta) * 1000000)::BIGINT AS gap_us
        FROM old_pairs
        WHERE b IS NOT NULL AND next_is_new AND tb - ta < edge_session_gap()
    )
    INSERT INTO edge_transition_delta
    SELECT tb, a, b, sum(n), sum(gap_us)
    FROM (SELECT * FROM added UNION ALL SELECT * FROM removed) d
    GROUP BY tb, a, b;

    INSERT INTO rollup_transitions_hourly AS r (bucket, from_name, to_name, transitions, gap_us)
    SELECT time_bucket(INTERVAL '1 hour', tb), a, b, sum(n), sum(gap_us)
    FROM edge_transition_delta
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (bucket, from_name, to_name) DO UPDATE
        SET transitions = r.transitions + EXCLUDED.transitions,
            gap_us      = r.gap_us + EXCLUDED.gap_us;

    INSERT INTO rollup_transitions_minute AS r (bucket, from_name, to_name, transitions, gap_us)
    SELECT time_bucket(INTERVAL '1 minute', tb), a, b, sum(n), sum(gap_us)
    FROM edge_transition_delta
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (bucket, from_name, to_name) DO UPDATE
        SET transitions = r.transitions + EXCLUDED.transitions,
            gap_us      = r.gap_us + EXCLUDED.gap_us;
END
$fn$;

-- The counters fed by the rows a batch inserted (`edge_inserted`); a later migration that
-- adds a rollup replaces this function, not `edge_merge_batch()`.
CREATE OR REPLACE FUNCTION edge_rollups() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM edge_rollup_transitions();
END
$fn$;

-- One forwarded batch, in its transaction, after the rows were staged in `edge_staging`:
-- insert what is new, then every per-batch summary; returns the rows inserted.
CREATE OR REPLACE FUNCTION edge_merge_batch() RETURNS BIGINT
LANGUAGE plpgsql AS $fn$
DECLARE
    inserted BIGINT;
BEGIN
    IF to_regclass('pg_temp.edge_inserted') IS NULL THEN
        CREATE TEMP TABLE edge_inserted (
            event_id UUID, session_id TEXT, event_name TEXT, event_time TIMESTAMPTZ
        ) ON COMMIT DELETE ROWS;
    END IF;

    PERFORM pg_advisory_xact_lock(k)
    FROM (
        SELECT DISTINCT hashtextextended(session_id, 0) AS k
        FROM edge_staging WHERE session_id IS NOT NULL
    ) s
    ORDER BY k;

    WITH ins AS (
        INSERT INTO user_events (event_id, user_id, session_id, event_type, event_name,
                                 page_url, referrer, device_type, browser, os, country_code,
                                 region, city, event_time, properties, received_at,
                                 collector_id, app_user_id, anonymous_id, source, traits)
        SELECT event_id, user_id, session_id, event_type, event_name, page_url, referrer,
               device_type, browser, os, country_code, region, city, event_time, properties,
               received_at, collector_id, app_user_id, anonymous_id, source, traits
        FROM edge_staging
        ON CONFLICT (event_id, event_time) DO NOTHING
        RETURNING event_id, session_id, event_name, event_time
    )
    INSERT INTO edge_inserted SELECT * FROM ins;
    GET DIAGNOSTICS inserted = ROW_COUNT;

    PERFORM edge_after_batch();
    PERFORM edge_rollups();
    RETURN inserted;
END
$fn$;

DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'edge_monitor') THEN
        GRANT SELECT ON rollup_transitions_hourly, rollup_transitions_minute TO edge_monitor;
    END IF;
END
$do$;
