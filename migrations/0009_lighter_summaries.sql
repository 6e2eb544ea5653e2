-- Lighter per-batch summary upserts (migration 0005's `edge_after_batch()`), because they
-- are most of what a forwarded batch costs beyond the COPY itself.
--
-- Invariant: unchanged from 0005 — replaying a batch changes nothing; every column is an
-- idempotent, commutative, associative merge. Only the cost changes:
-- - `user_attributes` keeps first_seen only. It changes only when an older event arrives
--   late, so for a known user the upsert finds the row and writes nothing. `last_seen`
--   was rewritten for every active user in every batch and nothing read it; a user's last
--   event is one index lookup away in `user_events` (idx_user_events_user_time).
-- - an active session's ended_at moves in every batch, so `user_sessions` is updated. Its
--   pages now keep 30% free space and it has no index but its key, so those updates are
--   HOT (no index maintenance). Add an index to it only if you query it by another column:
--   each one makes every session update cost more. `edge_prune_sessions` (daily) scans it.
-- - the entry/exit page, device and country come from min/max FILTER over the batch
--   instead of four sorted array_agg per session.
-- fillfactor applies to pages written from now on; `VACUUM FULL user_sessions` applies it
-- to existing ones (it locks the table: do it in a quiet hour, or let time do it).

ALTER TABLE user_attributes DROP COLUMN last_seen;
DROP INDEX IF EXISTS idx_user_sessions_started;
DROP INDEX IF EXISTS idx_user_sessions_user;
ALTER TABLE user_sessions SET (fillfactor = 70);

CREATE OR REPLACE FUNCTION edge_after_batch() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    -- Rows are upserted in key order so concurrent batches lock rows in the same order.
    INSERT INTO user_attributes AS a (user_id, first_seen)
    SELECT user_id, min(event_time)
    FROM edge_staging
    WHERE user_id IS NOT NULL
    GROUP BY user_id
    ORDER BY user_id
    ON CONFLICT (user_id) DO UPDATE
        SET first_seen = EXCLUDED.first_seen
        WHERE EXCLUDED.first_seen < a.first_seen;

    -- min/max ignore NULLs: the smallest non-null value at the earliest time (entry), the
    -- largest non-null at the latest time (exit), as in 0005.
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
            -- LEAST/GREATEST ignore NULLs: on a tie the non-null, then the extreme value wins.
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
