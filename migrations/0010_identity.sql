-- Identity: the ids clients really send (opaque strings), anonymous visitors, the links
-- between them, a person's traits, and the source (write key name) of every event.
--
-- Definitions (the README's "metric definitions" say the same):
-- - an event's **actor** is `COALESCE(app_user_id, user_id::TEXT, anonymous_id)`: the user id
--   as the client sent it, else (rows older than this migration) the seed's numeric user_id,
--   else the anonymous id. Rows from before this migration have `app_user_id` NULL and keep
--   their numeric `user_id`, so their actor is the same text a new row with that id gets.
-- - a **link** ties an anonymous id to a user id: any event that carries both (an identify,
--   an alias's previousId → userId, a track sent after sign-in). When one anonymous id is
--   linked to several users, the earliest link (by event time, then the smallest user id)
--   wins, so the result does not depend on arrival order.
-- - an event's **person** is the user its actor is linked to, else its actor. A visitor who
--   signs up is one person with the user, including the events sent before the link. One
--   level only: a user id that is itself aliased maps to its alias target, but an anonymous
--   id linked to that first user id does not follow the second hop. User ids and anonymous
--   ids are assumed to be distinct strings (as Segment and PostHog assume).
--
-- Invariant (as in 0005/0009): replaying a batch changes nothing. Every table maintained
-- here is a set (`actor_daily`) or a merge that is idempotent, commutative and associative
-- (earliest link, earliest first_seen, latest trait by event time with ties broken by value).
--
-- In place on a database that holds events: the new columns are nullable without a default
-- (no rewrite, and allowed on hypertables with columnstore-compressed chunks); the summaries
-- are filled from the existing rows once, here.

ALTER TABLE user_events ADD COLUMN app_user_id TEXT;
ALTER TABLE user_events ADD COLUMN anonymous_id TEXT;
-- The name of the write key the event was accepted with (never the key itself).
ALTER TABLE user_events ADD COLUMN source TEXT;
-- An identify's traits (a JSON object), merged into `person_traits`.
ALTER TABLE user_events ADD COLUMN traits JSONB;

-- A person's history (`monitor query user`): by actor, newest first. It replaces the index
-- on the numeric user_id (the actor of an old row is its user_id as text), so ingest pays
-- for the same number of indexes as before.
CREATE INDEX idx_user_events_actor_time
    ON user_events ((COALESCE(app_user_id, user_id::TEXT, anonymous_id)), event_time DESC);
DROP INDEX IF EXISTS idx_user_events_user_time;

-- Links: anonymous id → user id (see the definitions above).
CREATE TABLE identity_links (
    anonymous_id TEXT        PRIMARY KEY,
    app_user_id  TEXT        NOT NULL,
    -- The event time of the earliest event that carried both.
    linked_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_identity_links_user ON identity_links (app_user_id);

-- First event time per actor: the base of retention cohorts (a person's first seen is the
-- earliest of their actors'). Survives the raw events' retention, as user_attributes did.
CREATE TABLE actor_first_seen (
    actor      TEXT        PRIMARY KEY,
    first_seen TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_actor_first_seen ON actor_first_seen (first_seen);

-- The UTC days each actor had an event: retention's "active on day D+n", mapped to persons
-- through the links when read. A set: replays add nothing.
CREATE TABLE actor_daily (
    day   TIMESTAMPTZ NOT NULL,
    actor TEXT        NOT NULL,
    PRIMARY KEY (day, actor)
);

-- Traits per actor and key; a person's traits are their actors' merged, the latest wins.
CREATE TABLE person_traits (
    actor  TEXT        NOT NULL,
    key    TEXT        NOT NULL,
    value  JSONB       NOT NULL,
    -- The event time of the identify that set it.
    set_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (actor, key)
);

-- The person of an actor: for readers (the monitor) and the seed's SQL.
CREATE OR REPLACE VIEW person_of_actor AS
SELECT anonymous_id AS actor, app_user_id AS person FROM identity_links;

-- Raw events with their actor and person.
CREATE OR REPLACE VIEW person_events AS
SELECT e.*,
       COALESCE(e.app_user_id, e.user_id::TEXT, e.anonymous_id) AS actor,
       COALESCE(l.app_user_id, e.app_user_id, e.user_id::TEXT, e.anonymous_id) AS person
FROM user_events e
LEFT JOIN identity_links l
       ON l.anonymous_id = COALESCE(e.app_user_id, e.user_id::TEXT, e.anonymous_id);

-- From the existing rows, once. Old rows have no anonymous ids, hence no links or traits.
INSERT INTO actor_first_seen (actor, first_seen)
SELECT user_id::TEXT, first_seen FROM user_attributes;

INSERT INTO actor_daily (day, actor)
SELECT DISTINCT time_bucket(INTERVAL '1 day', event_time), user_id::TEXT
FROM user_events
WHERE user_id IS NOT NULL;

-- `user_attributes` (numeric ids only) stays readable for the seed's SQL, as a view.
DROP TABLE user_attributes;
CREATE VIEW user_attributes AS
SELECT actor::BIGINT AS user_id, first_seen
FROM actor_first_seen
WHERE actor ~ '^-?[0-9]{1,18}$';

-- The per-batch upserts: 0009's sessions, plus the identity tables.
CREATE OR REPLACE FUNCTION edge_after_batch() RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    -- Rows are upserted in key order so concurrent batches lock rows in the same order.
    INSERT INTO actor_first_seen AS a (actor, first_seen)
    SELECT COALESCE(app_user_id, user_id::TEXT, anonymous_id), min(event_time)
    FROM edge_staging
    WHERE COALESCE(app_user_id, user_id::TEXT, anonymous_id) IS NOT NULL
    GROUP BY 1
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

-- The monitor role reads the new tables and views (0008's default privileges cover the
-- migrating role's new relations; this covers a role that differs).
DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'edge_monitor') THEN
        GRANT SELECT ON identity_links, actor_first_seen, actor_daily, person_traits,
                        person_of_actor, person_events, user_attributes TO edge_monitor;
    END IF;
END
$do$;
