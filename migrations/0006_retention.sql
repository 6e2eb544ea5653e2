-- Raw-event retention, the part shared by both editions.
--
-- Default: 6 months. On the Community edition a retention policy does it (migration 0007,
-- change it with `SELECT edge_set_retention(INTERVAL '…')`); on the apache edition,
-- `collector maintain --retention …` calls `edge_drop_expired_events` (schedule it, e.g.
-- daily from cron or a systemd timer).
--
-- Invariant: raw events are never dropped inside the aggregates' refresh window. On the
-- Community edition a refresh over a range whose raw rows were dropped would empty the
-- continuous aggregate's buckets there (FACTS.md); the same bound is kept on apache so a
-- retention setting means the same on both editions.

-- The shortest retention allowed: the refresh window plus one day.
CREATE OR REPLACE FUNCTION edge_min_retention() RETURNS INTERVAL
LANGUAGE sql IMMUTABLE AS $fn$ SELECT edge_refresh_window() + INTERVAL '1 day' $fn$;

CREATE OR REPLACE FUNCTION edge_check_retention(retention INTERVAL) RETURNS VOID
LANGUAGE plpgsql AS $fn$
BEGIN
    IF retention IS NULL OR retention < edge_min_retention() THEN
        RAISE EXCEPTION 'retention % is shorter than the minimum %', retention, edge_min_retention()
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'raw events must outlive the aggregates'' refresh window (edge_refresh_window())';
    END IF;
END
$fn$;

-- Drops the chunks of `user_events` and `collector_heartbeats` whose data is entirely older
-- than `now() - retention`; returns the dropped chunks' names. Sessions are pruned by
-- `edge_prune_sessions` (migration 0005). `user_attributes` (first-seen per user) is kept:
-- a user returning after the retention period is not new.
CREATE OR REPLACE FUNCTION edge_drop_expired_events(retention INTERVAL) RETURNS SETOF TEXT
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM edge_check_retention(retention);
    RETURN QUERY SELECT c::TEXT FROM drop_chunks('user_events', older_than => now() - retention) AS c;
    RETURN QUERY SELECT c::TEXT FROM drop_chunks('collector_heartbeats', older_than => now() - retention) AS c;
END
$fn$;
