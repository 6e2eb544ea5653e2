-- The per-batch maintenance must cost the batch, not the history. Measured with
-- `pg_stat_statements` over `bench drain` (5,000-event batches, 1 connection): from 100k to
-- 500k stored events three statements grew from ~20 ms to 60–120 ms a batch, because each
-- read a table whose size is the history's:
--
-- - the recomputation of a person that lost an actor (every sign-up or log-in moves an
--   anonymous actor to its user) read "the rows of person P" from `activity_person_last`,
--   whose key was (dim, value, person): no index, a scan of the whole table per batch;
-- - that recomputation and the merge of the moved actor's history read the actor's raw
--   events; the planner flattened the lateral lookup into a join over every chunk;
-- - the transitions read the touched sessions' events near the batch as a join with every
--   event of the ±1 day window (at 10M events over 30 days: ~700k rows a batch).
--
-- Now each is an index lookup per key of the batch: `activity_person_last` is keyed
-- (person, dim, value) (upserts on (dim, value, person) find the same unique index: the
-- conflict target names columns, not their order; no reader used the old order), and
-- every lookup by a batch's key is a `LATERAL (… OFFSET 0)` subquery, which the planner
-- cannot flatten, so it stays a parameterised index scan whatever the statistics say.
-- The functions are otherwise those of 0011 and 0013, but for `edge_merge_batch()`, which
-- no longer takes an advisory lock per session (see its comment below).
--
-- In place: the key is rebuilt once (a few seconds per million rows).

ALTER TABLE activity_person_last DROP CONSTRAINT activity_person_last_pkey;
ALTER TABLE activity_person_last ADD PRIMARY KEY (person, dim, value);

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
        CROSS JOIN LATERAL (SELECT x.session_id, x.event_id, x.event_time, x.event_name
                            FROM user_events x
                            WHERE x.session_id = s.session_id
                              AND x.event_time >= lo AND x.event_time <= hi
                            OFFSET 0) e
        LEFT JOIN edge_inserted n ON n.event_id = e.event_id AND n.event_time = e.event_time
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
            FROM lost
            CROSS JOIN LATERAL (SELECT i.anonymous_id, i.app_user_id FROM identity_links i
                                WHERE i.app_user_id = lost.person OFFSET 0) l
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
                OFFSET 0
            ) e,
            edge_activity_keys(e.device_type, e.country_code::TEXT, e.event_name, e.page_url) k
            GROUP BY 1, 2, 3
        ),
        old AS (
            SELECT p.dim, p.value, p.person, p.last_at
            FROM lost
            CROSS JOIN LATERAL (SELECT * FROM activity_person_last x
                                WHERE x.person = lost.person OFFSET 0) p
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
                OFFSET 0
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

-- One forwarded batch, in its transaction, after the rows were staged in `edge_staging`:
-- insert what is new, then every per-batch summary; returns the rows inserted.
--
-- Batches that touch the same session are ordered by row locks, not by advisory locks
-- any more: `edge_after_batch()` (0010) upserts the `user_sessions` row of every staged
-- session, in session order, before any rollup reads a session's events, and an
-- `ON CONFLICT DO UPDATE` locks the existing row even when its WHERE is false. So the
-- second of two such batches waits there until the first commits, and its later
-- statements (READ COMMITTED: a snapshot per statement) see the first's events, which is
-- what 0011's transitions and 0012's funnel need. The advisory locks this replaces took
-- one lock-table entry per session per batch (1,776 for a 5,000-event batch of the drain
-- benchmark, held until commit by each of the forwarder's connections), while the shared
-- lock table holds `max_locks_per_transaction` × `max_connections` entries (6,400 by
-- default) for the whole server: a few collectors could exhaust it.
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
