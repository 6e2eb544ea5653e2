-- Day-N retention pre-aggregated (the Retention analysis), on both editions, with the
-- definition of `monitor/src/query/retention.rs`: a person's cohort is the UTC day of the
-- earliest `actor_first_seen` of their actors; they count at (cohort, n) when any of their
-- actors has an `actor_daily` row on cohort + n, n = 0..30. The person of an actor is as in
-- 0010: the user its link points to, else the actor itself; so a person's actors are the
-- anonymous ids linked to them plus themselves when they have no link of their own.
--
-- Three plain tables:
-- - `retention_person`: per person, the earliest first_seen of their actors and a bit set
--   of their active days relative to that cohort day (bit n: active on cohort + n). A
--   person's days before their cohort day cannot exist (first_seen is the minimum over the
--   same rows that fill actor_daily), so when the cohort moves earlier by k days the old set
--   shifted by k is exact for the new window, and so is the union of two persons' sets.
-- - `retention_links`: the links as these counters last applied them, to find the links a
--   batch changed (a new link, or one replaced by an earlier one) and the person an actor
--   left.
-- - `rollup_retention`: per (cohort, n) the number of people; n = -1 is the cohort's size.
--   Every person adds 1 at (cohort, -1) and at (cohort, n) for each bit n.
--
-- Maintained per batch by `edge_rollup_retention()` (called by `edge_rollups()` in the
-- forwarder's transaction, after `edge_after_batch()` merged the identity tables): every
-- person the batch touches has their summary recomputed into a new row and the counters move
-- by −1 at the old cells and +1 at the new. The new summary comes from state, not from the
-- rows inserted: a person whose actors did not change merges the old summary with the
-- batch's days (an OR, shifted when the cohort moved earlier); a person who gained or lost an
-- actor through a changed link is recomputed from `actor_first_seen`/`actor_daily` (31
-- primary-key probes per actor). So a replay, which changes none of those tables, moves no
-- counter, and the result does not depend on the order or batching of events.
--
-- Concurrency: the forwarder runs several batches at once. Each batch locks the summary
-- rows of the persons it touches (an upsert in key order, which inserts the missing ones)
-- before it reads them, then checks that the persons of its actors did not change meanwhile
-- (another batch that committed a new link); if they did it locks the new ones too (out of
-- key order: a rare deadlock is detected and the forwarder retries the batch). A batch that
-- changes a link holds its `identity_links` row, and locks the old and the new person.
--
-- Retention of raw events: these are plain tables, never dropped with chunks, so cohorts
-- and counters survive the raw events (as `actor_first_seen` and `actor_daily` do).
--
-- Collectors older than 0011 call `edge_after_batch()` directly and do not feed these
-- counters: upgrade every collector with the schema, or call `edge_rebuild_retention()`.

CREATE TABLE retention_person (
    person     TEXT        PRIMARY KEY,
    -- NULL while a batch holds a new person's row, before its summary is written.
    first_seen TIMESTAMPTZ,
    -- Bit n (0..30): active on cohort day + n.
    days       INT         NOT NULL DEFAULT 0
);

CREATE TABLE retention_links (
    anonymous_id TEXT PRIMARY KEY,
    person       TEXT NOT NULL
);

CREATE TABLE rollup_retention (
    cohort DATE     NOT NULL,
    -- Days after the cohort day (0..30); -1: the cohort's size.
    n      SMALLINT NOT NULL,
    people BIGINT   NOT NULL,
    PRIMARY KEY (cohort, n)
);

-- The cells one person adds: -1 (the cohort size) and every bit of `days`.
CREATE OR REPLACE FUNCTION edge_retention_cells(days INT)
RETURNS SETOF SMALLINT LANGUAGE sql IMMUTABLE AS $fn$
    SELECT k::SMALLINT FROM generate_series(-1, 30) k
    WHERE k = -1 OR days & (1 << k) <> 0
$fn$;

-- The UTC day of a time, and a UTC day's start.
CREATE OR REPLACE FUNCTION edge_utc_day(t TIMESTAMPTZ) RETURNS DATE
LANGUAGE sql IMMUTABLE AS $fn$ SELECT (t AT TIME ZONE 'UTC')::DATE $fn$;

CREATE OR REPLACE FUNCTION edge_utc_start(d DATE) RETURNS TIMESTAMPTZ
LANGUAGE sql IMMUTABLE AS $fn$ SELECT d::TIMESTAMP AT TIME ZONE 'UTC' $fn$;

-- The three tables computed from scratch from the identity tables (the backfill below; a
-- repair; the analyses benchmark's loader).
CREATE OR REPLACE FUNCTION edge_rebuild_retention() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM rollup_retention;
    DELETE FROM retention_person;
    DELETE FROM retention_links;
    INSERT INTO retention_links SELECT anonymous_id, app_user_id FROM identity_links;
    INSERT INTO retention_person (person, first_seen, days)
    WITH p AS (
        SELECT COALESCE(l.app_user_id, f.actor) AS person, min(f.first_seen) AS first_seen
        FROM actor_first_seen f
        LEFT JOIN identity_links l ON l.anonymous_id = f.actor
        GROUP BY 1
    ),
    d AS (
        SELECT COALESCE(l.app_user_id, a.actor) AS person, edge_utc_day(a.day) AS day
        FROM actor_daily a
        LEFT JOIN identity_links l ON l.anonymous_id = a.actor
    )
    SELECT p.person, p.first_seen,
           COALESCE(bit_or(1 << (d.day - edge_utc_day(p.first_seen)))
                        FILTER (WHERE d.day - edge_utc_day(p.first_seen) BETWEEN 0 AND 30), 0)
    FROM p
    LEFT JOIN d ON d.person = p.person
    GROUP BY p.person, p.first_seen;
    INSERT INTO rollup_retention (cohort, n, people)
    SELECT g.cohort, c.n, sum(g.people)
    FROM (
        SELECT edge_utc_day(first_seen) AS cohort, days, count(*) AS people
        FROM retention_person
        GROUP BY 1, 2
    ) g
    CROSS JOIN LATERAL edge_retention_cells(g.days) AS c(n)
    GROUP BY 1, 2;
END
$fn$;

SELECT edge_rebuild_retention();

-- The counter changes of one batch (reads `edge_staging`; see the head of this file).
CREATE OR REPLACE FUNCTION edge_rollup_retention() RETURNS VOID
LANGUAGE plpgsql
-- The batch's persons are found by primary-key probes, a few thousand at most: without
-- this the planner prefers a scan of the whole table once a batch has a few hundred.
SET random_page_cost = 1.1
AS $fn$
DECLARE
    missing BIGINT;
    locked  BOOLEAN := false;
    last_day DATE;
BEGIN
    IF to_regclass('pg_temp.edge_ret_day') IS NULL THEN
        -- The batch's actors, their UTC days and their first time each day.
        CREATE TEMP TABLE edge_ret_day (actor TEXT, day DATE, first TIMESTAMPTZ)
            ON COMMIT DELETE ROWS;
        -- The links the batch changed: the person the anonymous id leaves and joins;
        -- `simple`: it left a person of its own with no other actor (a visitor merging).
        CREATE TEMP TABLE edge_ret_link (
            anonymous_id TEXT, old_person TEXT, new_person TEXT, simple BOOLEAN
        ) ON COMMIT DELETE ROWS;
        -- The persons touched, locked. mode: 'merge' (old summary, merged visitors and the
        -- batch's days), 'vanish' (a merged visitor), 'recompute' (lost an actor).
        CREATE TEMP TABLE edge_ret_touch (person TEXT PRIMARY KEY, mode TEXT)
            ON COMMIT DELETE ROWS;
        CREATE TEMP TABLE edge_ret_change (
            person TEXT, old_first TIMESTAMPTZ, old_days INT,
            new_first TIMESTAMPTZ, new_days INT
        ) ON COMMIT DELETE ROWS;
    END IF;

    INSERT INTO edge_ret_day
    SELECT COALESCE(app_user_id, user_id::TEXT, anonymous_id), edge_utc_day(event_time),
           min(event_time)
    FROM edge_staging
    WHERE COALESCE(app_user_id, user_id::TEXT, anonymous_id) IS NOT NULL
    GROUP BY 1, 2;

    -- Links of the batch's anonymous ids that differ from the applied ones. Only this batch
    -- can have changed them: it holds their `identity_links` rows since edge_after_batch().
    INSERT INTO edge_ret_link
    SELECT l.anonymous_id, COALESCE(r.person, l.anonymous_id), l.app_user_id, false
    FROM (SELECT DISTINCT anonymous_id FROM edge_staging WHERE anonymous_id IS NOT NULL) s
    JOIN identity_links l ON l.anonymous_id = s.anonymous_id
    LEFT JOIN retention_links r ON r.anonymous_id = s.anonymous_id
    WHERE r.person IS DISTINCT FROM l.app_user_id;

    INSERT INTO edge_ret_touch
    SELECT old_person, 'recompute' FROM edge_ret_link
    UNION
    SELECT new_person, 'recompute' FROM edge_ret_link;

    -- Lock every touched person's row, inserting the missing ones, in key order; repeat
    -- while the persons of the batch's actors (read after the locks) include unlocked ones.
    LOOP
        INSERT INTO edge_ret_touch
        SELECT DISTINCT x.person, 'merge'
        FROM (
            SELECT COALESCE(l.app_user_id, d.actor) AS person
            FROM (SELECT DISTINCT actor FROM edge_ret_day) d
            LEFT JOIN identity_links l ON l.anonymous_id = d.actor
        ) x
        WHERE NOT EXISTS (SELECT 1 FROM edge_ret_touch t WHERE t.person = x.person);
        GET DIAGNOSTICS missing = ROW_COUNT;
        EXIT WHEN missing = 0 AND locked;
        -- (DO UPDATE … WHERE false locks the existing row and writes nothing.)
        INSERT INTO retention_person AS p (person)
        SELECT person FROM edge_ret_touch ORDER BY person
        ON CONFLICT (person) DO UPDATE SET days = p.days WHERE false;
        locked := true;
    END LOOP;

    IF EXISTS (SELECT 1 FROM edge_ret_link) THEN
        -- A visitor who was their own person, with no other actor, merges into the user:
        -- their old summary joins the user's (exact: see the head of this file).
        UPDATE edge_ret_link l SET simple = true
        WHERE l.old_person = l.anonymous_id
          AND NOT EXISTS (SELECT 1 FROM identity_links i WHERE i.app_user_id = l.anonymous_id);
        UPDATE edge_ret_touch t SET mode = 'vanish'
        FROM edge_ret_link l
        WHERE l.simple AND t.person = l.old_person;
        -- A user who only gains such visitors merges too.
        UPDATE edge_ret_touch t SET mode = 'merge'
        WHERE t.mode = 'recompute'
          AND NOT EXISTS (SELECT 1 FROM edge_ret_link l
                          WHERE NOT l.simple AND t.person IN (l.old_person, l.new_person));
    END IF;

    -- Persons who lost an actor (a link replaced by an earlier one): recomputed from the
    -- identity tables, 31 primary-key probes per actor at most (none past the last day).
    IF EXISTS (SELECT 1 FROM edge_ret_touch WHERE mode = 'recompute') THEN
        SELECT edge_utc_day(max(day)) INTO last_day FROM actor_daily;
        INSERT INTO edge_ret_change
        WITH actors AS (
            SELECT t.person, l.anonymous_id AS actor
            FROM edge_ret_touch t
            JOIN identity_links l ON l.app_user_id = t.person
            WHERE t.mode = 'recompute'
            UNION
            SELECT t.person, t.person
            FROM edge_ret_touch t
            WHERE t.mode = 'recompute'
              AND NOT EXISTS (SELECT 1 FROM identity_links l WHERE l.anonymous_id = t.person)
        ),
        firsts AS (
            SELECT a.person, min(f.first_seen) AS first_seen
            FROM actors a
            JOIN actor_first_seen f ON f.actor = a.actor
            GROUP BY a.person
        ),
        days AS (
            SELECT f.person, f.first_seen,
                   bit_or(CASE WHEN EXISTS (
                                   SELECT 1 FROM actor_daily d
                                   WHERE d.day = edge_utc_start(edge_utc_day(f.first_seen) + k)
                                     AND d.actor = a.actor)
                               THEN 1 << k ELSE 0 END) AS days
            FROM firsts f
            JOIN actors a ON a.person = f.person
            CROSS JOIN LATERAL generate_series(
                0, LEAST(30, last_day - edge_utc_day(f.first_seen))) k
            GROUP BY f.person, f.first_seen
        )
        SELECT t.person, p.first_seen, p.days, d.first_seen, COALESCE(d.days, 0)
        FROM edge_ret_touch t
        JOIN retention_person p ON p.person = t.person
        LEFT JOIN days d ON d.person = t.person
        WHERE t.mode = 'recompute';
    END IF;

    -- Merged visitors: their summary goes.
    INSERT INTO edge_ret_change
    SELECT t.person, p.first_seen, p.days, NULL, 0
    FROM edge_ret_touch t
    JOIN retention_person p ON p.person = t.person
    WHERE t.mode = 'vanish';

    -- The others: the old summaries (their own and merged visitors') shifted to the new
    -- cohort day, with the batch's days.
    INSERT INTO edge_ret_change
    WITH b AS (
        SELECT COALESCE(l.app_user_id, d.actor) AS person, d.actor, d.day, d.first
        FROM edge_ret_day d
        LEFT JOIN identity_links l ON l.anonymous_id = d.actor
    ),
    -- The batch's earliest time per person. (Their `actor_first_seen` before the batch is
    -- no earlier than the person's, or they came with a merged visitor's summary.)
    batch_first AS (
        SELECT b.person, min(b.first) AS first_seen
        FROM b
        GROUP BY b.person
    ),
    merged_in AS (
        SELECT l.new_person AS person, p.first_seen, p.days
        FROM edge_ret_link l
        JOIN retention_person p ON p.person = l.anonymous_id
        WHERE l.simple AND p.first_seen IS NOT NULL
    ),
    target AS (
        SELECT t.person, p.first_seen AS old_first, p.days AS old_days,
               LEAST(p.first_seen, bf.first_seen,
                     (SELECT min(m.first_seen) FROM merged_in m WHERE m.person = t.person))
                   AS new_first
        FROM edge_ret_touch t
        JOIN retention_person p ON p.person = t.person
        LEFT JOIN batch_first bf ON bf.person = t.person
        WHERE t.mode = 'merge'
    ),
    shifted AS (
        -- Each old summary moved to the new cohort day (bits past day 30 drop out).
        SELECT g.person, bit_or(
                   CASE WHEN edge_utc_day(s.first_seen) - edge_utc_day(g.new_first) > 30 THEN 0
                        ELSE ((s.days::INT8 << (edge_utc_day(s.first_seen) - edge_utc_day(g.new_first)))
                              & 2147483647)::INT
                   END) AS days
        FROM target g
        JOIN (SELECT person, old_first AS first_seen, old_days AS days
              FROM target WHERE old_first IS NOT NULL
              UNION ALL
              SELECT person, first_seen, days FROM merged_in) s ON s.person = g.person
        GROUP BY g.person
    ),
    batch_days AS (
        SELECT g.person, bit_or(1 << (b.day - edge_utc_day(g.new_first))) AS days
        FROM target g
        JOIN b ON b.person = g.person
        WHERE b.day - edge_utc_day(g.new_first) BETWEEN 0 AND 30
        GROUP BY g.person
    )
    SELECT g.person, g.old_first, g.old_days, g.new_first,
           COALESCE(s.days, 0) | COALESCE(d.days, 0)
    FROM target g
    LEFT JOIN shifted s ON s.person = g.person
    LEFT JOIN batch_days d ON d.person = g.person;

    INSERT INTO rollup_retention AS r (cohort, n, people)
    SELECT g.cohort, x.n, sum(g.d)
    FROM (
        -- (Grouped before the cells are expanded: a batch has few distinct summaries.)
        SELECT cohort, days, sum(d) AS d
        FROM (
            SELECT edge_utc_day(old_first) AS cohort, old_days AS days, -1 AS d
            FROM edge_ret_change WHERE old_first IS NOT NULL
            UNION ALL
            SELECT edge_utc_day(new_first), new_days, 1
            FROM edge_ret_change WHERE new_first IS NOT NULL
        ) c
        GROUP BY cohort, days
        HAVING sum(d) <> 0
    ) g
    CROSS JOIN LATERAL edge_retention_cells(g.days) x(n)
    GROUP BY g.cohort, x.n
    HAVING sum(g.d) <> 0
    ORDER BY g.cohort, x.n
    ON CONFLICT (cohort, n) DO UPDATE SET people = r.people + EXCLUDED.people;

    UPDATE retention_person p
    SET first_seen = c.new_first, days = c.new_days
    FROM edge_ret_change c
    WHERE p.person = c.person AND c.new_first IS NOT NULL
      AND (c.old_first IS DISTINCT FROM c.new_first OR c.old_days <> c.new_days);

    -- Merged visitors, and rows locked for a person who turned out to have no actor.
    DELETE FROM retention_person
    WHERE person = ANY (ARRAY(SELECT person FROM edge_ret_change WHERE new_first IS NULL));

    INSERT INTO retention_links AS r (anonymous_id, person)
    SELECT anonymous_id, new_person FROM edge_ret_link ORDER BY anonymous_id
    ON CONFLICT (anonymous_id) DO UPDATE SET person = EXCLUDED.person;
END
$fn$;

-- The rollups of 0011 and 0012 plus retention's.
CREATE OR REPLACE FUNCTION edge_rollups() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM edge_rollup_transitions();
    PERFORM edge_rollup_funnel();
    PERFORM edge_rollup_activity();
    PERFORM edge_rollup_retention();
END
$fn$;

DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'edge_monitor') THEN
        GRANT SELECT ON retention_person, retention_links, rollup_retention TO edge_monitor;
    END IF;
END
$do$;
