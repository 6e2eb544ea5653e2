-- Storage policies of the Community (TSL) edition: columnstore (compression), retention, and
-- the pruning of the session summary. The apache edition has none of these
-- (0007_storage.apache.sql); there, `collector maintain --retention …` does the retention.
--
-- Columnstore: chunks older than 10 days (the collector's default 7-day maximum event age
-- plus 3 days for buffered backlogs, so late rows rarely land in compressed chunks) are
-- compressed. segmentby = event_name: a few dozen values, so each segment holds thousands of
-- rows and compresses well, and per-event queries read one segment; user_id or session_id
-- would make tiny segments. orderby = event_time DESC, then event_id: the unique key
-- (event_id, event_time) must be covered by segmentby/orderby for the columnstore to enforce
-- it on late inserts. The old `compress*` spellings are used on purpose: they work on every
-- 2.x release (2.18 renamed them enable_columnstore/segmentby/orderby).
ALTER TABLE user_events SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'event_name',
    timescaledb.compress_orderby   = 'event_time DESC, event_id'
);
SELECT add_compression_policy('user_events', compress_after => INTERVAL '10 days');

ALTER TABLE collector_heartbeats SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'collector_id',
    timescaledb.compress_orderby   = 'at DESC'
);
SELECT add_compression_policy('collector_heartbeats', compress_after => INTERVAL '10 days');

-- Retention: raw events and heartbeats 6 months (change with edge_set_retention). The
-- continuous aggregates keep their history beyond it (their refresh window, 8 days, lies
-- inside the retention period), except the per-minute live aggregate, kept 30 days.
SELECT add_retention_policy('user_events', drop_after => INTERVAL '6 months');
SELECT add_retention_policy('collector_heartbeats', drop_after => INTERVAL '6 months');
SELECT add_retention_policy('real_time_monitoring', drop_after => INTERVAL '30 days');

-- Sessions whose events have been dropped are pruned daily by a job.
CREATE OR REPLACE PROCEDURE edge_prune_sessions_job(job_id INT, config JSONB)
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM edge_prune_sessions((config->>'drop_after')::INTERVAL);
END
$fn$;
SELECT add_job('edge_prune_sessions_job', INTERVAL '1 day', config => '{"drop_after": "6 months"}');

-- Changes the retention of raw events, heartbeats and sessions:
--   SELECT edge_set_retention(INTERVAL '90 days');
-- Refuses a retention shorter than edge_min_retention() (the refresh window plus a day).
CREATE OR REPLACE FUNCTION edge_set_retention(retention INTERVAL) RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM edge_check_retention(retention);
    PERFORM remove_retention_policy('user_events', if_exists => true);
    PERFORM add_retention_policy('user_events', drop_after => retention);
    PERFORM remove_retention_policy('collector_heartbeats', if_exists => true);
    PERFORM add_retention_policy('collector_heartbeats', drop_after => retention);
    PERFORM alter_job(j.job_id, config => jsonb_build_object('drop_after', retention::TEXT))
    FROM timescaledb_information.jobs j
    WHERE j.proc_name = 'edge_prune_sessions_job';
END
$fn$;
