-- The aggregate layer: each SELECT is written once and becomes, through
-- `edge_create_aggregate` (migration 0002),
--   * on the Community (`timescale`) license: a continuous aggregate with real-time
--     aggregation (materialized_only = false) and a refresh policy;
--   * on the `apache` license: a plain view with the same name, columns and meaning.
--
-- Every definition obeys the continuous-aggregate rules (FACTS.md): one hypertable, a
-- time_bucket in the GROUP BY, no CTE, subquery, window function, LIMIT or now(). Time
-- filters belong to the reader, never to the definition.
--
-- Distinct counts (`unique_users`, `unique_sessions`) are per bucket: they must NEVER be
-- summed across buckets (a user active in 24 hourly buckets would count 24 times). Readers
-- that need distinct users over a range count them over user-level rows instead
-- (`user_daily_activity`) or over raw events.
--
-- Refresh windows (Community edition): every policy refreshes the last
-- `edge_refresh_window()` = 8 days, which covers the collector's default maximum event age
-- (7 days) plus a day for buffered backlogs; real-time aggregation covers what the last
-- refresh has not materialized. The raw retention must stay longer than this window, or a
-- refresh would empty buckets whose raw rows were dropped (enforced by
-- `edge_drop_expired_events` and `edge_set_retention`).

CREATE OR REPLACE FUNCTION edge_refresh_window() RETURNS INTERVAL
LANGUAGE sql IMMUTABLE AS $fn$ SELECT INTERVAL '8 days' $fn$;

-- Live monitoring (the seed's `real_time_monitoring`, without its now() filter, which a
-- continuous aggregate would freeze at refresh time): per minute x event name.
SELECT edge_create_aggregate(
    'real_time_monitoring',
    $q$
    SELECT time_bucket(INTERVAL '1 minute', event_time) AS bucket,
           event_name,
           count(*)                AS event_count,
           count(DISTINCT user_id) AS unique_users
    FROM user_events
    GROUP BY time_bucket(INTERVAL '1 minute', event_time), event_name
    $q$,
    edge_refresh_window(), INTERVAL '1 minute', INTERVAL '1 minute');

-- Multi-dimension behaviour (the seed's `user_behavior_multi_dimension`): per hour x device
-- type x country. `conversion` = purchases / page_views in the bucket, a fraction (NULL when
-- the bucket has no page view). Unlike a session-based rate it re-aggregates exactly over
-- any set of buckets: sum(purchases) / sum(page_views).
SELECT edge_create_aggregate(
    'user_behavior_multi_dimension',
    $q$
    SELECT time_bucket(INTERVAL '1 hour', event_time) AS bucket,
           device_type,
           country_code,
           count(*)                                             AS total_events,
           count(DISTINCT user_id)                              AS unique_users,
           count(DISTINCT session_id)                           AS unique_sessions,
           count(*) FILTER (WHERE event_name = 'page_view')     AS page_views,
           count(*) FILTER (WHERE event_name = 'add_to_cart')   AS add_to_carts,
           count(*) FILTER (WHERE event_name = 'purchase')      AS purchases,
           count(*) FILTER (WHERE event_name = 'purchase')::DOUBLE PRECISION
             / NULLIF(count(*) FILTER (WHERE event_name = 'page_view'), 0) AS conversion
    FROM user_events
    GROUP BY time_bucket(INTERVAL '1 hour', event_time), device_type, country_code
    $q$,
    edge_refresh_window(), INTERVAL '1 hour', INTERVAL '10 minutes');

-- Daily statistics (the seed's `user_events_daily`): per UTC day x event type x country.
SELECT edge_create_aggregate(
    'user_events_daily',
    $q$
    SELECT time_bucket(INTERVAL '1 day', event_time) AS bucket,
           event_type,
           country_code,
           count(*)                AS event_count,
           count(DISTINCT user_id) AS unique_users
    FROM user_events
    GROUP BY time_bucket(INTERVAL '1 day', event_time), event_type, country_code
    $q$,
    edge_refresh_window(), INTERVAL '1 hour', INTERVAL '30 minutes');

-- Funnel steps per session (the seed's `user_session_funnel`, corrected: `bool_or`, not
-- `bool_and`, which was true only when every event of the session was that step). One row
-- per session and hour; a session spanning several hours has several rows, merged by the
-- reader with min() (the first time of a step is the min over the session's rows).
-- Events without a session_id are not part of any session.
SELECT edge_create_aggregate(
    'user_session_funnel',
    $q$
    SELECT time_bucket(INTERVAL '1 hour', event_time) AS bucket,
           session_id,
           min(user_id)                                                  AS user_id,
           min(event_time) FILTER (WHERE event_name = 'page_view')      AS page_view_time,
           min(event_time) FILTER (WHERE event_name = 'add_to_cart')    AS add_to_cart_time,
           min(event_time) FILTER (WHERE event_name = 'checkout_start') AS checkout_start_time,
           min(event_time) FILTER (WHERE event_name = 'purchase')       AS purchase_time,
           bool_or(event_name = 'page_view')                            AS has_page_view,
           bool_or(event_name = 'add_to_cart')                          AS has_add_to_cart,
           bool_or(event_name = 'checkout_start')                       AS has_checkout_start,
           bool_or(event_name = 'purchase')                             AS has_purchase
    FROM user_events
    WHERE session_id IS NOT NULL
      AND event_name IN ('page_view', 'add_to_cart', 'checkout_start', 'purchase')
    GROUP BY time_bucket(INTERVAL '1 hour', event_time), session_id
    $q$,
    edge_refresh_window(), INTERVAL '1 hour', INTERVAL '10 minutes');

-- Daily activity per user (the seed's `user_daily_activity`), the base of retention: one
-- row per (UTC day, user) with at least one event, so counting rows counts distinct users.
SELECT edge_create_aggregate(
    'user_daily_activity',
    $q$
    SELECT time_bucket(INTERVAL '1 day', event_time) AS bucket,
           user_id,
           count(*) AS event_count
    FROM user_events
    WHERE user_id IS NOT NULL
    GROUP BY time_bucket(INTERVAL '1 day', event_time), user_id
    $q$,
    edge_refresh_window(), INTERVAL '1 hour', INTERVAL '30 minutes');
