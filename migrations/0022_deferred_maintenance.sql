-- Deferred maintenance: a queue that lets the forwarders land events at COPY speed and
-- moves the per-batch summaries and rollups to one applier (`forward.maintenance =
-- "deferred"`; the default, "in-batch", keeps them in the batch's transaction).
--
-- Why: the maintenance of `edge_merge_batch()` (0011–0021) costs the database ~100–130 µs
-- per event against ~20 µs for a bare `\copy` of the row (README, Benchmarks), so during an
-- outage's backlog or a burst the collectors' buffers drain at a seventh of the speed the
-- database could store the rows. With the queue a forwarder only COPYs its batch into
-- `edge_pending` (no unique key, no index but the sequence) and commits; its buffer
-- empties as fast as the database writes rows, and the backlog waits in the central
-- database instead of on the edge machines' disks.
--
-- The applier, `edge_apply_pending(max_rows)`, run by a collector in its own transaction:
-- takes the oldest `max_rows` queued rows (DELETE … RETURNING), stages them in the
-- session's `edge_staging` (one row per (event_id, event_time), the first queued wins,
-- as the first forwarded wins in-batch) and calls `edge_merge_batch()`, the very function
-- the in-batch forwarder calls. So the rollups have one definition, `user_events` holds
-- exactly the events whose maintenance is applied (the rollups that read raw neighbours,
-- transitions and moved actors, see the same events as in-batch), and the removal from the
-- queue commits with the rows and rollups it produced: applied exactly once.
--
-- Exactly once under replay: a batch the forwarder sends again (a crash between COMMIT and
-- the buffer's deletion) is queued twice; the second copy is dropped by the insert's
-- `ON CONFLICT (event_id, event_time) DO NOTHING` and changes no rollup, as in-batch.
--
-- One applier at a time (a transaction advisory lock): concurrent appliers would wait on
-- each other's rollup rows anyway (README: 4 connections drain at the speed of one). A
-- collector whose try fails gets -1 and tries again later.
--
-- A row the queue accepted but the maintenance refuses (a constraint only `user_events` or
-- a rollup has) must not wedge the queue: the applier halves its chunk on such an error and,
-- at one row, moves that row to `edge_pending_rejected` with the database's message
-- (`edge_reject_pending`), the database-side quarantine.
--
-- The queue copies `user_events`' columns, defaults and CHECK constraints, so COPY refuses
-- what the insert would (the forwarder's split-and-quarantine still applies); a migration
-- that adds a column to `user_events` must add it here too.

CREATE TABLE edge_pending (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    LIKE user_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS
);
COMMENT ON TABLE edge_pending IS
    'Events committed by forwarders in deferred mode, waiting for edge_apply_pending()';

CREATE TABLE edge_pending_rejected (
    LIKE edge_pending,
    error       TEXT        NOT NULL,
    rejected_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Applies the oldest `max_rows` queued events; returns how many distinct events it staged
-- (0: the queue is empty; -1: another applier holds the lock). Call it in a transaction of
-- its own on a session where `edge_staging` exists (the collector's `copy::prepare`).
CREATE OR REPLACE FUNCTION edge_apply_pending(max_rows INT) RETURNS BIGINT
LANGUAGE plpgsql AS $fn$
DECLARE
    staged BIGINT;
BEGIN
    -- "edgepend" in ASCII, as the migrations' lock is "edgemig".
    IF NOT pg_try_advisory_xact_lock(x'6564676570656e64'::BIGINT) THEN
        RETURN -1;
    END IF;
    WITH taken AS (
        DELETE FROM edge_pending
        WHERE seq IN (SELECT seq FROM edge_pending ORDER BY seq LIMIT max_rows)
        RETURNING *
    )
    INSERT INTO edge_staging (event_id, user_id, session_id, event_type, event_name,
                              page_url, referrer, device_type, browser, os, country_code,
                              region, city, event_time, properties, received_at,
                              collector_id, app_user_id, anonymous_id, source, traits)
    SELECT DISTINCT ON (event_id, event_time)
           event_id, user_id, session_id, event_type, event_name, page_url, referrer,
           device_type, browser, os, country_code, region, city, event_time, properties,
           received_at, collector_id, app_user_id, anonymous_id, source, traits
    FROM taken
    ORDER BY event_id, event_time, seq;
    GET DIAGNOSTICS staged = ROW_COUNT;
    IF staged > 0 THEN
        PERFORM edge_merge_batch();
    END IF;
    RETURN staged;
END
$fn$;

-- Moves the oldest queued row to `edge_pending_rejected` with `error`; returns its seq
-- (NULL when the queue is empty). Under the applier's lock, so it never races one.
CREATE OR REPLACE FUNCTION edge_reject_pending(error TEXT) RETURNS BIGINT
LANGUAGE plpgsql AS $fn$
DECLARE
    moved BIGINT;
BEGIN
    IF NOT pg_try_advisory_xact_lock(x'6564676570656e64'::BIGINT) THEN
        RETURN NULL;
    END IF;
    WITH gone AS (
        DELETE FROM edge_pending
        WHERE seq = (SELECT min(seq) FROM edge_pending)
        RETURNING *
    )
    INSERT INTO edge_pending_rejected
    SELECT gone.*, error, now() FROM gone
    RETURNING seq INTO moved;
    RETURN moved;
END
$fn$;

-- How many events wait in the queue, from its sequence (an upper bound when rows were
-- rejected or taken out of order: cheap at any depth, unlike count(*)).
CREATE OR REPLACE FUNCTION edge_pending_depth() RETURNS BIGINT
LANGUAGE sql STABLE AS $fn$
    SELECT COALESCE(max(seq) - min(seq) + 1, 0) FROM edge_pending
$fn$;
