-- First-seen per user and a session summary: the seed's `user_attributes` and
-- `user_sessions`, rebuilt the way TimescaleDB allows. The seed's `user_first_activity`
-- continuous aggregate is rejected (no time bucket in its GROUP BY) and its row-level
-- trigger costs ~33x ingest time (FACTS.md), so both tables are maintained by ONE set-based
-- upsert per forwarded batch, in `edge_after_batch()`, which the forwarder calls in the
-- batch's transaction after inserting the batch from the session's `edge_staging` table.
--
-- Invariant: replaying a batch changes nothing. The forwarder may replay a batch after a
-- crash; rows already in `user_events` are skipped by ON CONFLICT but `edge_staging` still
-- holds them, so every column here is a merge that is idempotent, commutative and
-- associative (min/max/least of a time, the page at the earliest/latest time with ties
-- broken by value). There are no counters: event and page counts are computed at query
-- time from `user_events`.
--
-- The upserts read `edge_staging` as sent. An event re-sent with an existing
-- (event_id, event_time) but different content is skipped by `user_events` yet still merged
-- here (it can only move first/last times and pages outward); clients must not reuse
-- event ids.

CREATE TABLE user_attributes (
    user_id    BIGINT      PRIMARY KEY,
    -- Time of the user's first and last event ever ingested (first_seen drives retention
    -- cohorts; it survives the raw events' retention).
    first_seen TIMESTAMPTZ NOT NULL,
    last_seen  TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_user_attributes_first_seen ON user_attributes (first_seen);

-- A session is a session_id; events without one belong to no session. A plain table, not a
-- hypertable: its key is session_id alone and started_at moves earlier when an older event
-- of the session arrives late.
CREATE TABLE user_sessions (
    session_id   TEXT        PRIMARY KEY,
    -- The smallest non-null user_id seen in the session (normally its only one).
    user_id      BIGINT,
    started_at   TIMESTAMPTZ NOT NULL,
    ended_at     TIMESTAMPTZ NOT NULL,
    duration     INTERVAL    GENERATED ALWAYS AS (ended_at - started_at) STORED,
    -- At the session's first event (ties: the smallest non-null value).
    entry_page   TEXT,
    device_type  TEXT,
    country_code TEXT,
    -- At the session's last event (ties: the largest non-null value).
    exit_page    TEXT
);
CREATE INDEX idx_user_sessions_started ON user_sessions (started_at);
CREATE INDEX idx_user_sessions_user ON user_sessions (user_id);

CREATE OR REPLACE FUNCTION edge_after_batch() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    -- Rows are upserted in key order so concurrent batches lock rows in the same order.
    INSERT INTO user_attributes AS a (user_id, first_seen, last_seen)
    SELECT user_id, min(event_time), max(event_time)
    FROM edge_staging
    WHERE user_id IS NOT NULL
    GROUP BY user_id
    ORDER BY user_id
    ON CONFLICT (user_id) DO UPDATE
        SET first_seen = LEAST(a.first_seen, EXCLUDED.first_seen),
            last_seen  = GREATEST(a.last_seen, EXCLUDED.last_seen)
        WHERE EXCLUDED.first_seen < a.first_seen OR EXCLUDED.last_seen > a.last_seen;

    INSERT INTO user_sessions AS s
        (session_id, user_id, started_at, ended_at, entry_page, device_type, country_code, exit_page)
    SELECT session_id,
           min(user_id),
           min(event_time),
           max(event_time),
           (array_agg(page_url     ORDER BY event_time, page_url NULLS LAST))[1],
           (array_agg(device_type  ORDER BY event_time, device_type NULLS LAST))[1],
           (array_agg(country_code ORDER BY event_time, country_code NULLS LAST))[1],
           (array_agg(page_url     ORDER BY event_time DESC, page_url DESC NULLS LAST))[1]
    FROM edge_staging
    WHERE session_id IS NOT NULL
    GROUP BY session_id
    ORDER BY session_id
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

-- Deletes sessions that ended more than `older_than` ago (their raw events are gone too);
-- returns how many. Called by `collector maintain` on the apache edition and by a
-- scheduled job on the Community edition (migration 0007).
CREATE OR REPLACE FUNCTION edge_prune_sessions(older_than INTERVAL) RETURNS BIGINT
LANGUAGE plpgsql AS $fn$
DECLARE
    n BIGINT;
BEGIN
    DELETE FROM user_sessions WHERE ended_at < now() - older_than;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;
