-- Every collector's health over time, written by its forwarder from heartbeats kept in its
-- buffer (so heartbeats produced during a database outage land afterwards: no hole).
-- Column names match the collector's `Heartbeat` JSON (jsonb_populate_recordset).

CREATE TABLE collector_heartbeats (
    collector_id                TEXT        NOT NULL,
    region                      TEXT,
    version                     TEXT,
    at                          TIMESTAMPTZ NOT NULL,
    started_at                  TIMESTAMPTZ,
    buffered_events             BIGINT,
    buffered_bytes              BIGINT,
    buffer_limit_bytes          BIGINT,
    buffer_disk_bytes           BIGINT,
    oldest_buffered_age_seconds DOUBLE PRECISION,
    accepted_total              BIGINT,
    forwarded_total             BIGINT,
    rejected_total              BIGINT,
    quarantined_total           BIGINT,
    quarantined_events          BIGINT,
    forward_rate                DOUBLE PRECISION,
    last_error                  TEXT,
    database_state              TEXT,
    forwarding_paused           BOOLEAN,
    CONSTRAINT collector_heartbeats_key UNIQUE (collector_id, at)
);

SELECT create_hypertable('collector_heartbeats', 'at', chunk_time_interval => INTERVAL '7 days');
CREATE INDEX idx_collector_heartbeats_collector ON collector_heartbeats (collector_id, at DESC);
