-- The raw event hypertable, from the seed's `user_events`, corrected for what TimescaleDB
-- accepts: a hypertable's unique index must contain the time column, so the key is
-- (event_id, event_time) and the forwarder's `ON CONFLICT (event_id, event_time) DO NOTHING`
-- makes every replay of a batch idempotent.
--
-- No GIN index on `properties` by default: it costs about 3x ingest (FACTS.md). To opt in:
--   CREATE INDEX CONCURRENTLY idx_user_events_properties ON user_events USING GIN (properties);
-- (on a hypertable, create it without CONCURRENTLY, or per chunk, during a quiet period).

CREATE TABLE user_events (
    event_id     UUID        NOT NULL DEFAULT gen_random_uuid(),
    user_id      BIGINT,
    session_id   TEXT,
    event_type   TEXT,
    event_name   TEXT        NOT NULL,
    page_url     TEXT,
    referrer     TEXT,
    device_type  TEXT CHECK (device_type IN ('desktop', 'mobile', 'tablet', 'other')),
    browser      TEXT,
    os           TEXT,
    country_code CHAR(2),
    region       TEXT,
    city         TEXT,
    event_time   TIMESTAMPTZ NOT NULL,
    properties   JSONB,
    -- Lineage: when the collector accepted the event, and which collector did.
    received_at  TIMESTAMPTZ,
    collector_id TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT user_events_event_id_time_key UNIQUE (event_id, event_time)
);

SELECT create_hypertable('user_events', 'event_time', chunk_time_interval => INTERVAL '1 day');

-- Analytical access paths: a user's history, one event's trend, one session's sequence.
CREATE INDEX idx_user_events_user_time    ON user_events (user_id, event_time DESC);
CREATE INDEX idx_user_events_name_time    ON user_events (event_name, event_time DESC);
CREATE INDEX idx_user_events_session_time ON user_events (session_id, event_time DESC);
