-- Concurrent batches stop waiting on actors they do not change.
--
-- `edge_after_batch()` (0010) upserted the `actor_first_seen` row of every actor of the
-- batch with `ON CONFLICT DO UPDATE … WHERE EXCLUDED.first_seen < a.first_seen`. Such an
-- upsert locks the existing row even when its WHERE is false, and keeps the lock to
-- commit; it is the first statement of the per-batch maintenance, so two batches that
-- shared one actor (a returning person, anywhere in either batch) ran everything after it
-- one after the other. Measured on `bench drain` with 4 connections: 104 of 165 s of the
-- backends' time was spent waiting on these rows.
--
-- Now the batch upserts only the actors it changes: new ones, and those whose stored
-- first_seen is later than the batch's earliest event. Skipping the others is exact
-- because first_seen only ever moves earlier (a min-merge): a committed value at or
-- before the batch's stays so. A row another batch is inserting right now is not
-- visible to the check, so that actor is upserted, and waits for it, as before.
--
-- The function is otherwise 0010's. Batches that share a *session* still wait for each
-- other at the `user_sessions` upsert, on purpose (0015's `edge_merge_batch()`).

CREATE OR REPLACE FUNCTION edge_after_batch() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    -- Rows are upserted in key order so concurrent batches lock rows in the same order.
    -- Only actors whose first_seen this batch moves earlier (or who are new): see the
    -- header of 0016.
    INSERT INTO actor_first_seen AS a (actor, first_seen)
    SELECT b.actor, b.first_seen
    FROM (
        SELECT COALESCE(app_user_id, user_id::TEXT, anonymous_id) AS actor,
               min(event_time) AS first_seen
        FROM edge_staging
        WHERE COALESCE(app_user_id, user_id::TEXT, anonymous_id) IS NOT NULL
        GROUP BY 1
    ) b
    WHERE NOT EXISTS (SELECT 1 FROM actor_first_seen f
                      WHERE f.actor = b.actor AND f.first_seen <= b.first_seen)
    ORDER BY 1
    ON CONFLICT (actor) DO UPDATE
        SET first_seen = EXCLUDED.first_seen
        WHERE EXCLUDED.first_seen < a.first_seen;

    INSERT INTO actor_daily (day, actor)
    SELECT DISTINCT time_bucket(INTERVAL '1 day', event_time),
           COALESCE(app_user_id, user_id::TEXT, anonymous_id)
    FROM edge_staging
    WHERE COALESCE(app_user_id, user_id::TEXT, anonymous_id) IS NOT NULL
    ORDER BY 1, 2
    ON CONFLICT DO NOTHING;

    -- The earliest link of each anonymous id in the batch, kept if earlier than the stored.
    INSERT INTO identity_links AS l (anonymous_id, app_user_id, linked_at)
    SELECT DISTINCT ON (anonymous_id) anonymous_id, who, event_time
    FROM (
        SELECT anonymous_id, COALESCE(app_user_id, user_id::TEXT) AS who, event_time
        FROM edge_staging
        WHERE anonymous_id IS NOT NULL
          AND COALESCE(app_user_id, user_id::TEXT) IS NOT NULL
          AND anonymous_id <> COALESCE(app_user_id, user_id::TEXT)
    ) s
    ORDER BY anonymous_id, event_time, who
    ON CONFLICT (anonymous_id) DO UPDATE
        SET app_user_id = EXCLUDED.app_user_id,
            linked_at   = EXCLUDED.linked_at
        WHERE (EXCLUDED.linked_at, EXCLUDED.app_user_id) < (l.linked_at, l.app_user_id);

    -- Traits: per actor and key the value of the latest event (ties: the larger JSON text).
    INSERT INTO person_traits AS t (actor, key, value, set_at)
    SELECT DISTINCT ON (actor, key) actor, key, value, event_time
    FROM (
        SELECT COALESCE(s.app_user_id, s.user_id::TEXT, s.anonymous_id) AS actor,
               kv.key, kv.value, s.event_time
        FROM edge_staging s, jsonb_each(s.traits) kv
        WHERE jsonb_typeof(s.traits) = 'object'
    ) x
    WHERE actor IS NOT NULL
    ORDER BY actor, key, event_time DESC, value::TEXT DESC
    ON CONFLICT (actor, key) DO UPDATE
        SET value  = EXCLUDED.value,
            set_at = EXCLUDED.set_at
        WHERE (EXCLUDED.set_at, EXCLUDED.value::TEXT) > (t.set_at, t.value::TEXT);

    -- Sessions, unchanged from 0009.
    INSERT INTO user_sessions AS s
        (session_id, user_id, started_at, ended_at, entry_page, device_type, country_code, exit_page)
    SELECT g.session_id, g.user_id, g.started_at, g.ended_at,
           min(e.page_url)     FILTER (WHERE e.event_time = g.started_at),
           min(e.device_type)  FILTER (WHERE e.event_time = g.started_at),
           min(e.country_code) FILTER (WHERE e.event_time = g.started_at),
           max(e.page_url)     FILTER (WHERE e.event_time = g.ended_at)
    FROM (
        SELECT session_id, min(user_id) AS user_id,
               min(event_time) AS started_at, max(event_time) AS ended_at
        FROM edge_staging
        WHERE session_id IS NOT NULL
        GROUP BY session_id
    ) g
    JOIN edge_staging e ON e.session_id = g.session_id
    GROUP BY g.session_id, g.user_id, g.started_at, g.ended_at
    ORDER BY g.session_id
    ON CONFLICT (session_id) DO UPDATE
        SET user_id      = LEAST(s.user_id, EXCLUDED.user_id),
            started_at   = LEAST(s.started_at, EXCLUDED.started_at),
            ended_at     = GREATEST(s.ended_at, EXCLUDED.ended_at),
            entry_page   = CASE WHEN EXCLUDED.started_at < s.started_at THEN EXCLUDED.entry_page
                                WHEN EXCLUDED.started_at = s.started_at THEN LEAST(s.entry_page, EXCLUDED.entry_page)
                                ELSE s.entry_page END,
            device_type  = CASE WHEN EXCLUDED.started_at < s.started_at THEN EXCLUDED.device_type
                                WHEN EXCLUDED.started_at = s.started_at THEN LEAST(s.device_type, EXCLUDED.device_type)
                                ELSE s.device_type END,
            country_code = CASE WHEN EXCLUDED.started_at < s.started_at THEN EXCLUDED.country_code
                                WHEN EXCLUDED.started_at = s.started_at THEN LEAST(s.country_code, EXCLUDED.country_code)
                                ELSE s.country_code END,
            exit_page    = CASE WHEN EXCLUDED.ended_at > s.ended_at THEN EXCLUDED.exit_page
                                WHEN EXCLUDED.ended_at = s.ended_at THEN GREATEST(s.exit_page, EXCLUDED.exit_page)
                                ELSE s.exit_page END
        WHERE EXCLUDED.started_at <= s.started_at
           OR EXCLUDED.ended_at >= s.ended_at
           OR EXCLUDED.user_id < s.user_id
           OR (s.user_id IS NULL AND EXCLUDED.user_id IS NOT NULL);
END
$fn$;
