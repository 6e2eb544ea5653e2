-- Activity rollups for live, breakdown and pages, on both editions (plain tables and
-- plpgsql only), with one definition: an event's *keys* are (dim, value) pairs —
--   dim 0 "all events" (value ''), dim 1 device_type, dim 2 country_code (NULL stored as
--   '(none)', which no device or two-letter country can be), dim 3 event_name, dim 4 the
--   page_url of a page_view event that has one —
-- and people are the README's (0010: the user an actor is linked to, else the actor).
--
-- Tables, maintained per forwarded batch from the rows it really inserted:
-- - `activity_person_last`: per (dim, value, person) the time of the person's LAST event
--   with that key (`prev_last_at`: the value it replaced, for the histogram's moves);
-- - `activity_last_hourly` / `_daily`: per (dim, hour or day, value) how many people have
--   their last event in that bucket (a histogram of `last_at`);
-- - `activity_events_hourly` / `_daily`: per (dim, hour or day, value) the events (dims 1–4);
-- - `activity_links`: the links (anonymous id → user) the person tables reflect.
--
-- Why this is exact: for a range [from, to) with no event at or after `to` (the monitor's
-- "last 1h / 24h / 7d / 30d"), the people active in the range with a key are the people
-- whose last event with that key is ≥ from; that is the histogram's buckets from the first
-- whole bucket after `from` (days, then the hours of from's day) plus the people whose last
-- event is in the partial hour at `from` (a range scan of `idx_activity_person_last_at`).
-- Distinct counts are never summed across buckets: each person is in exactly one bucket.
-- Events: the counters' buckets after `from` plus raw events of the partial hour at `from`.
-- (When an event at or after `to` exists the monitor reads raw events instead.)
--
-- Exactly once and order-independent: everything moves from the rows the batch inserted
-- (`edge_inserted`, joined to the batch's full rows in `edge_staging`), so a replay changes
-- nothing; `last_at` is a max-merge, and every change of a person's `last_at` moves that
-- person from one histogram bucket to another (−1, +1), whatever the arrival order. A link
-- change (0010: a new link, or an earlier one replacing it) moves an anonymous actor to a
-- new person: the new person's rows are max-merged with the actor's raw events, the old
-- person's rows are recomputed from the raw events of its remaining actors (old → new is
-- found by comparing `identity_links` with `activity_links`).
--
-- Concurrency: the forwarder runs up to 4 connections. Batches that move no actor run
-- side by side: the upserts' row locks serialise two batches on one key (the second sees
-- the first's `last_at` as its `prev_last_at`, so the histogram moves chain: −a +b, then
-- −b +c), counters are sums, and each table is written by one statement per batch in key
-- order (no lock cycle). A batch that moves an actor takes the transaction advisory lock
-- (13, 0) exclusively, the others take it shared: the move's recomputation runs alone,
-- after every batch in flight committed and with a fresh snapshot (a batch that read the
-- old link committed first and is recomputed; later ones see the new link). Whether a
-- batch moves an actor is decided on links this batch holds row locks on (0010's upsert),
-- so it cannot change under it. The lock is the last one a batch takes (after the session
-- locks of `edge_merge_batch()` and the rows of 0010–0012) and a holder never waits for an
-- earlier one, so it cannot close a cycle. Key 13 never collides with the session locks
-- (one-argument form) or retention's (14).
--
-- Collectors older than this migration do not call `edge_rollups()` with these tables:
-- upgrade every collector with the schema (a repair: `SELECT edge_rebuild_activity()`).

CREATE TABLE activity_person_last (
    dim          SMALLINT    NOT NULL,
    value        TEXT        NOT NULL,
    person       TEXT        NOT NULL,
    last_at      TIMESTAMPTZ NOT NULL,
    prev_last_at TIMESTAMPTZ,
    PRIMARY KEY (dim, value, person)
);
-- The partial hour at a range's start: the people of every value with last_at in it.
CREATE INDEX idx_activity_person_last_at ON activity_person_last (dim, last_at, value);

CREATE TABLE activity_last_hourly (
    dim    SMALLINT    NOT NULL,
    bucket TIMESTAMPTZ NOT NULL,
    value  TEXT        NOT NULL,
    people BIGINT      NOT NULL,
    PRIMARY KEY (dim, bucket, value)
);
CREATE TABLE activity_last_daily (LIKE activity_last_hourly INCLUDING ALL);

CREATE TABLE activity_events_hourly (
    dim    SMALLINT    NOT NULL,
    bucket TIMESTAMPTZ NOT NULL,
    value  TEXT        NOT NULL,
    events BIGINT      NOT NULL,
    PRIMARY KEY (dim, bucket, value)
);
CREATE TABLE activity_events_daily (LIKE activity_events_hourly INCLUDING ALL);

CREATE TABLE activity_links (
    anonymous_id TEXT PRIMARY KEY,
    app_user_id  TEXT NOT NULL
);

-- The keys of one event (see the definition above); the monitor's raw edges use it too.
CREATE OR REPLACE FUNCTION edge_activity_keys(device_type TEXT, country_code TEXT,
                                              event_name TEXT, page_url TEXT)
RETURNS TABLE (dim SMALLINT, value TEXT)
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT k.d, k.v
    FROM (VALUES (0::SMALLINT, ''::TEXT),
                 (1::SMALLINT, COALESCE(device_type, '(none)')),
                 (2::SMALLINT, COALESCE(country_code, '(none)')),
                 (3::SMALLINT, event_name),
                 (4::SMALLINT, CASE WHEN event_name = 'page_view' THEN page_url END)) k (d, v)
    WHERE k.v IS NOT NULL
$fn$;

-- Every activity table computed from scratch from `user_events` and `identity_links`
-- (the backfill below, a repair, the analyses benchmark's loader, the tests' reference).
CREATE OR REPLACE FUNCTION edge_rebuild_activity() RETURNS VOID
LANGUAGE plpgsql SET work_mem = '256MB' AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock(13, 0);
    TRUNCATE activity_person_last, activity_last_hourly, activity_last_daily,
             activity_events_hourly, activity_events_daily, activity_links;
    INSERT INTO activity_links SELECT anonymous_id, app_user_id FROM identity_links;
    INSERT INTO activity_person_last (dim, value, person, last_at)
    SELECT k.dim, k.value, e.person, max(e.event_time)
    FROM person_events e,
         edge_activity_keys(e.device_type, e.country_code::TEXT, e.event_name, e.page_url) k
    WHERE e.person IS NOT NULL
    GROUP BY 1, 2, 3;
    INSERT INTO activity_last_hourly
    SELECT dim, time_bucket(INTERVAL '1 hour', last_at), value, count(*)
    FROM activity_person_last GROUP BY 1, 2, 3;
    INSERT INTO activity_last_daily
    SELECT dim, time_bucket(INTERVAL '1 day', bucket), value, sum(people)
    FROM activity_last_hourly GROUP BY 1, 2, 3;
    INSERT INTO activity_events_hourly
    SELECT k.dim, time_bucket(INTERVAL '1 hour', e.event_time), k.value, count(*)
    FROM user_events e,
         edge_activity_keys(e.device_type, e.country_code::TEXT, e.event_name, e.page_url) k
    WHERE k.dim > 0
    GROUP BY 1, 2, 3;
    INSERT INTO activity_events_daily
    SELECT dim, time_bucket(INTERVAL '1 day', bucket), value, sum(events)
    FROM activity_events_hourly GROUP BY 1, 2, 3;
END
$fn$;

SELECT edge_rebuild_activity();

-- One batch's changes: reads `edge_inserted` and `edge_staging` (see the header).
CREATE OR REPLACE FUNCTION edge_rollup_activity() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    IF to_regclass('pg_temp.edge_activity_rows') IS NULL THEN
        -- The inserted rows' keys.
        CREATE TEMP TABLE edge_activity_rows (
            dim SMALLINT, value TEXT, actor TEXT, event_time TIMESTAMPTZ
        ) ON COMMIT DELETE ROWS;
        -- Anonymous actors whose person changed in this batch.
        CREATE TEMP TABLE edge_activity_moved (
            actor TEXT, old_person TEXT, new_person TEXT
        ) ON COMMIT DELETE ROWS;
        -- Every change of a person's last_at: old and new (NULL: none).
        CREATE TEMP TABLE edge_activity_delta (
            dim SMALLINT, value TEXT, person TEXT, old_at TIMESTAMPTZ, new_at TIMESTAMPTZ,
            recomputed BOOLEAN
        ) ON COMMIT DELETE ROWS;
    END IF;

    -- Each inserted row once (a batch may stage the same key twice; one row was inserted).
    INSERT INTO edge_activity_rows
    SELECT k.dim, k.value, COALESCE(s.app_user_id, s.user_id::TEXT, s.anonymous_id), s.event_time
    FROM (
        SELECT DISTINCT ON (s.event_id, s.event_time) s.*
        FROM edge_staging s
        JOIN edge_inserted i ON i.event_id = s.event_id AND i.event_time = s.event_time
    ) s,
    edge_activity_keys(s.device_type, s.country_code::TEXT, s.event_name, s.page_url) k;

    -- Links that changed (edge_after_batch() already wrote this batch's): a link changes
    -- only for an anonymous id staged together with a user id.
    INSERT INTO edge_activity_moved
    SELECT c.anonymous_id, COALESCE(m.app_user_id, c.anonymous_id), l.app_user_id
    FROM (
        SELECT DISTINCT anonymous_id
        FROM edge_staging
        WHERE anonymous_id IS NOT NULL
          AND COALESCE(app_user_id, user_id::TEXT) IS NOT NULL
          AND anonymous_id <> COALESCE(app_user_id, user_id::TEXT)
    ) c
    JOIN identity_links l ON l.anonymous_id = c.anonymous_id
    LEFT JOIN activity_links m ON m.anonymous_id = c.anonymous_id
    WHERE l.app_user_id IS DISTINCT FROM m.app_user_id;

    -- Moving an actor (rare) excludes every other batch's activity changes; all other
    -- batches run theirs side by side (see the header).
    IF EXISTS (SELECT 1 FROM edge_activity_moved) THEN
        PERFORM pg_advisory_xact_lock(13, 0);
    ELSE
        PERFORM pg_advisory_xact_lock_shared(13, 0);
    END IF;

    IF EXISTS (SELECT 1 FROM edge_activity_moved) THEN
        INSERT INTO activity_links AS m (anonymous_id, app_user_id)
        SELECT actor, new_person FROM edge_activity_moved ORDER BY actor
        ON CONFLICT (anonymous_id) DO UPDATE SET app_user_id = EXCLUDED.app_user_id;

        -- Persons that lost an actor: recomputed from the raw events of the actors they
        -- still have (those linked to them, and themselves unless linked elsewhere).
        WITH lost AS (SELECT DISTINCT old_person AS person FROM edge_activity_moved),
        actors AS (
            SELECT l.anonymous_id AS actor, l.app_user_id AS person
            FROM identity_links l JOIN lost ON lost.person = l.app_user_id
            UNION
            SELECT person, person FROM lost
            WHERE NOT EXISTS (SELECT 1 FROM identity_links l WHERE l.anonymous_id = lost.person)
        ),
        fresh AS (
            SELECT k.dim, k.value, a.person, max(e.event_time) AS last_at
            FROM actors a
            CROSS JOIN LATERAL (
                SELECT x.device_type, x.country_code, x.event_name, x.page_url, x.event_time
                FROM user_events x
                WHERE COALESCE(x.app_user_id, x.user_id::TEXT, x.anonymous_id) = a.actor
            ) e,
            edge_activity_keys(e.device_type, e.country_code::TEXT, e.event_name, e.page_url) k
            GROUP BY 1, 2, 3
        ),
        old AS (
            SELECT dim, value, person, last_at
            FROM activity_person_last
            WHERE person IN (SELECT person FROM lost)
        )
        INSERT INTO edge_activity_delta
        SELECT COALESCE(o.dim, f.dim), COALESCE(o.value, f.value), COALESCE(o.person, f.person),
               o.last_at, f.last_at, TRUE
        FROM old o
        FULL JOIN fresh f ON f.dim = o.dim AND f.value = o.value AND f.person = o.person
        WHERE o.last_at IS DISTINCT FROM f.last_at;

        DELETE FROM activity_person_last p
        USING edge_activity_delta d
        WHERE d.recomputed AND d.new_at IS NULL
          AND p.dim = d.dim AND p.value = d.value AND p.person = d.person;
        INSERT INTO activity_person_last AS p (dim, value, person, last_at, prev_last_at)
        SELECT dim, value, person, new_at, old_at
        FROM edge_activity_delta
        WHERE recomputed AND new_at IS NOT NULL
        ORDER BY 1, 2, 3
        ON CONFLICT (dim, value, person) DO UPDATE
            SET last_at = EXCLUDED.last_at, prev_last_at = p.last_at;
    END IF;

    -- Max-merge: the batch's rows under their (current) person; persons recomputed above
    -- are complete already.
    WITH merged AS (
        SELECT r.dim, r.value, COALESCE(l.app_user_id, r.actor) AS person,
               max(r.event_time) AS last_at
        FROM edge_activity_rows r
        LEFT JOIN identity_links l ON l.anonymous_id = r.actor
        WHERE r.actor IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM edge_activity_moved m
                          WHERE m.old_person = COALESCE(l.app_user_id, r.actor))
        GROUP BY 1, 2, 3
    ),
    up AS (
        INSERT INTO activity_person_last AS p (dim, value, person, last_at)
        SELECT dim, value, person, last_at FROM merged ORDER BY 1, 2, 3
        ON CONFLICT (dim, value, person) DO UPDATE
            SET prev_last_at = p.last_at, last_at = EXCLUDED.last_at
            WHERE EXCLUDED.last_at > p.last_at
        RETURNING p.dim, p.value, p.person, p.prev_last_at, p.last_at
    )
    INSERT INTO edge_activity_delta SELECT *, FALSE FROM up;

    -- Each moved actor's whole history joins its new person (a second max-merge: under
    -- the lock the two merges of one key chain their histogram moves).
    IF EXISTS (SELECT 1 FROM edge_activity_moved) THEN
        WITH merged AS (
            SELECT k.dim, k.value, m.new_person AS person, max(e.event_time) AS last_at
            FROM edge_activity_moved m
            CROSS JOIN LATERAL (
                SELECT x.device_type, x.country_code, x.event_name, x.page_url, x.event_time
                FROM user_events x
                WHERE COALESCE(x.app_user_id, x.user_id::TEXT, x.anonymous_id) = m.actor
            ) e,
            edge_activity_keys(e.device_type, e.country_code::TEXT, e.event_name, e.page_url) k
            WHERE NOT EXISTS (SELECT 1 FROM edge_activity_moved o WHERE o.old_person = m.new_person)
            GROUP BY 1, 2, 3
        ),
        up AS (
            INSERT INTO activity_person_last AS p (dim, value, person, last_at)
            SELECT dim, value, person, last_at FROM merged ORDER BY 1, 2, 3
            ON CONFLICT (dim, value, person) DO UPDATE
                SET prev_last_at = p.last_at, last_at = EXCLUDED.last_at
                WHERE EXCLUDED.last_at > p.last_at
            RETURNING p.dim, p.value, p.person, p.prev_last_at, p.last_at
        )
        INSERT INTO edge_activity_delta SELECT *, FALSE FROM up;
    END IF;

    -- The histogram: each changed person leaves its old bucket and enters its new one.
    INSERT INTO activity_last_hourly AS h (dim, bucket, value, people)
    SELECT dim, bucket, value, sum(n)
    FROM (
        SELECT dim, time_bucket(INTERVAL '1 hour', old_at) AS bucket, value, -1 AS n
        FROM edge_activity_delta WHERE old_at IS NOT NULL
        UNION ALL
        SELECT dim, time_bucket(INTERVAL '1 hour', new_at), value, 1
        FROM edge_activity_delta WHERE new_at IS NOT NULL
    ) x
    GROUP BY 1, 2, 3
    HAVING sum(n) <> 0
    ORDER BY 1, 2, 3
    ON CONFLICT (dim, bucket, value) DO UPDATE SET people = h.people + EXCLUDED.people;

    INSERT INTO activity_last_daily AS h (dim, bucket, value, people)
    SELECT dim, bucket, value, sum(n)
    FROM (
        SELECT dim, time_bucket(INTERVAL '1 day', old_at) AS bucket, value, -1 AS n
        FROM edge_activity_delta WHERE old_at IS NOT NULL
        UNION ALL
        SELECT dim, time_bucket(INTERVAL '1 day', new_at), value, 1
        FROM edge_activity_delta WHERE new_at IS NOT NULL
    ) x
    GROUP BY 1, 2, 3
    HAVING sum(n) <> 0
    ORDER BY 1, 2, 3
    ON CONFLICT (dim, bucket, value) DO UPDATE SET people = h.people + EXCLUDED.people;

    -- Events per key (every inserted row, with or without a person).
    INSERT INTO activity_events_hourly AS c (dim, bucket, value, events)
    SELECT dim, time_bucket(INTERVAL '1 hour', event_time), value, count(*)
    FROM edge_activity_rows WHERE dim > 0
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (dim, bucket, value) DO UPDATE SET events = c.events + EXCLUDED.events;

    INSERT INTO activity_events_daily AS c (dim, bucket, value, events)
    SELECT dim, time_bucket(INTERVAL '1 day', event_time), value, count(*)
    FROM edge_activity_rows WHERE dim > 0
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (dim, bucket, value) DO UPDATE SET events = c.events + EXCLUDED.events;
END
$fn$;

-- The rollups of 0011 and 0012 plus the activity's.
CREATE OR REPLACE FUNCTION edge_rollups() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM edge_rollup_transitions();
    PERFORM edge_rollup_funnel();
    PERFORM edge_rollup_activity();
END
$fn$;

DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'edge_monitor') THEN
        GRANT SELECT ON activity_person_last, activity_last_hourly, activity_last_daily,
                        activity_events_hourly, activity_events_daily, activity_links
              TO edge_monitor;
        GRANT EXECUTE ON FUNCTION edge_activity_keys(TEXT, TEXT, TEXT, TEXT) TO edge_monitor;
    END IF;
END
$do$;
