-- The activity counters' keys carry their counter, on both editions: the primary keys of
-- 0013/0017/0018's per-(dim, bucket, value) tables become `(dim, bucket, value) INCLUDE
-- (events | people)`, so that the monitor's range reads (`monitor/src/query/activity.rs`:
-- `WHERE dim IN … AND bucket >= … AND bucket < …`) are index-only scans.
--
-- Why: a key's rows are spread over the heap in the order batches first touched them (every
-- dim of a bucket side by side), so a range read fetched about one heap page per two rows:
-- pages over 24 hours read 5,500 hourly rows of its 500 URLs from 2,377 heap pages. The
-- index holds them in key order, a few hundred rows a page. Old buckets are no longer
-- updated, so autovacuum marks their pages all-visible and the scan skips the heap; the
-- current minute, hour and day are a handful of rows.
--
-- Cost: updating the counter now changes an indexed column, so the batches' upserts are no
-- longer HOT updates (one more index entry per changed row, cleaned by vacuum). The key's
-- columns and the conflict target `(dim, bucket, value)` are unchanged, so every writer's
-- `ON CONFLICT (dim, bucket, value)` still finds its arbiter.
--
-- Upgrade: each key is rebuilt under an ACCESS EXCLUSIVE lock on its table (forwarders wait
-- for it; the README gives the time measured at 10M events).

ALTER TABLE activity_events_minute
    DROP CONSTRAINT activity_events_minute_pkey,
    ADD PRIMARY KEY (dim, bucket, value) INCLUDE (events);
ALTER TABLE activity_events_hourly
    DROP CONSTRAINT activity_events_hourly_pkey,
    ADD PRIMARY KEY (dim, bucket, value) INCLUDE (events);
ALTER TABLE activity_events_daily
    DROP CONSTRAINT activity_events_daily_pkey,
    ADD PRIMARY KEY (dim, bucket, value) INCLUDE (events);
ALTER TABLE activity_last_minute
    DROP CONSTRAINT activity_last_minute_pkey,
    ADD PRIMARY KEY (dim, bucket, value) INCLUDE (people);
ALTER TABLE activity_last_hourly
    DROP CONSTRAINT activity_last_hourly_pkey,
    ADD PRIMARY KEY (dim, bucket, value) INCLUDE (people);
ALTER TABLE activity_last_daily
    DROP CONSTRAINT activity_last_daily_pkey,
    ADD PRIMARY KEY (dim, bucket, value) INCLUDE (people);
