//! "What is happening right now": events per minute, events per second, active users,
//! top events and ingest lag, relative to `range.to` (the reference "now"; `range.from` is
//! not used: the windows are fixed).
//!
//! Definitions (all windows half-open, ending at `to`):
//! - `per_minute`: the 60 one-minute buckets from the one 59 minutes before the bucket
//!   holding `to` up to that bucket (the current, partial minute is the last entry), read
//!   from migration 0017's per-minute counters (`activity_events_minute`, dim 0: 60 rows,
//!   whatever the event rate), missing minutes filled with 0;
//! - `top_events`: the 10 most frequent event names over the same 60 buckets (ties by name),
//!   from the same counters (dim 3, event name);
//! - `events_per_second`: events with event_time in `[to - 10 s, to)`, divided by 10;
//! - `active_users_*`: distinct people (see the README: the user id when known, else the
//!   anonymous id, a linked visitor counted as their user) with an event in `[to - w, to)`
//!   for w = 5 min, 1 h, 24 h — one distinct set per window (never a sum of per-bucket
//!   distinct counts);
//! - `lag_*`: percentiles of `created_at - received_at` over events with event_time in
//!   `[to - 5 min, to)` and a received_at.
//!
//! Active people come from migration 0013's rollups ([`super::activity`]): when no event
//! has event_time at or after `to` (the monitor's "now"), the people active since
//! `to - w` are the people whose last event is at or after `to - w`: the `last_at`
//! histogram's buckets after the window's first whole hour plus the people whose last
//! event is in its partial first hour — each person in one bucket, so the count is exact,
//! and it costs buckets, not events. The few people with an event at or after `to` (a
//! client clock ahead) are corrected exactly from their raw events. With more than
//! [`activity::MAX_LATER`] such events (`to` well in the past) they are counted over raw
//! events (`person_events`), each person's last event in the 24 h window deciding the
//! shorter windows.
//!
//! Under a filter ([`live_filtered`]) every number is the same definition over only the
//! matching events, all read from raw events (`per_minute` and `top_events` too: the
//! aggregate keeps no source, device or property); top-event ties are then cut in byte
//! order.
//!
//! Invariant: the windows are distinct counts over the whole window, whatever the bucket
//! widths of the aggregates and whichever path answers.

use std::time::Duration;

use time::OffsetDateTime;
use tokio_postgres::{types::ToSql, Client};

use super::{
    activity::{self, Since},
    check_range,
    filter::FilterSql,
    floor_to, Binds, QueryError,
};
use crate::model::{Filter, Live, MinuteCount, NameCount, Range};

const MINUTE: Duration = Duration::from_secs(60);
/// How many names `top_events` lists.
pub const TOP_EVENTS: i64 = 10;

pub async fn live(client: &Client, range: Range) -> Result<Live, QueryError> {
    check_range(range)?;
    let to = range.to;
    let last_minute = floor_to(to, MINUTE);
    let first_minute = last_minute - time::Duration::minutes(59);
    let w24h = to - time::Duration::hours(24);
    let w1h = to - time::Duration::hours(1);
    let w5m = to - time::Duration::minutes(5);
    let w10s = to - time::Duration::seconds(10);

    let per_minute_params: [&(dyn ToSql + Sync); 3] = [&first_minute, &last_minute, &activity::ALL];
    let per_minute = client.query(
        "SELECT m.minute, COALESCE(a.events, 0)::INT8
         FROM generate_series($1::TIMESTAMPTZ, $2::TIMESTAMPTZ, INTERVAL '1 minute') AS m(minute)
         LEFT JOIN (
             SELECT bucket, events FROM activity_events_minute
             WHERE dim = $3 AND value = '' AND bucket >= $1 AND bucket <= $2
         ) a ON a.bucket = m.minute
         ORDER BY m.minute",
        &per_minute_params,
    );
    let top_params: [&(dyn ToSql + Sync); 4] =
        [&first_minute, &last_minute, &TOP_EVENTS, &activity::EVENT];
    let top = client.query(
        "SELECT value, sum(events)::INT8 AS n
         FROM activity_events_minute
         WHERE dim = $4 AND bucket >= $1 AND bucket <= $2
         GROUP BY value
         HAVING sum(events) > 0
         ORDER BY n DESC, value
         LIMIT $3",
        &top_params,
    );
    // From the rollups (when few events are dated at or after `to`, checked alongside).
    let since = [
        Since::new(w5m, to),
        Since::new(w1h, to),
        Since::new(w24h, to),
    ];
    let mut binds = Binds::default();
    let windows: Vec<String> = since
        .iter()
        .map(|s| {
            let rows = activity::people_sql(&mut binds, &format!("({})", activity::ALL), s, "");
            format!("(SELECT COALESCE(sum(people), 0) FROM ({rows}) w)::INT8")
        })
        .collect();
    let users_sql = format!("SELECT {}", windows.join(", "));
    let users = client.query_one(&users_sql, binds.as_slice());
    let few_later = activity::few_later_events(client, to);
    let recent_params: [&(dyn ToSql + Sync); 3] = [&w5m, &w10s, &to];
    let recent = client.query_one(
        "SELECT count(*) FILTER (WHERE event_time >= $2)::INT8,
                percentile_cont(0.5) WITHIN GROUP (
                    ORDER BY extract(epoch FROM created_at - received_at)::FLOAT8)
                    FILTER (WHERE received_at IS NOT NULL),
                percentile_cont(0.99) WITHIN GROUP (
                    ORDER BY extract(epoch FROM created_at - received_at)::FLOAT8)
                    FILTER (WHERE received_at IS NOT NULL)
         FROM user_events
         WHERE event_time >= $1 AND event_time < $3",
        &recent_params,
    );
    // One connection pipelines the statements.
    let (per_minute, top, users, recent, few_later) =
        tokio::try_join!(per_minute, top, users, recent, few_later)?;
    let users = if few_later {
        users
    } else {
        raw_users(client, to).await?
    };

    assemble(&per_minute, &top, &users, &recent)
}

/// [`live`] over the events matching `filter`, from raw events.
pub async fn live_filtered(
    client: &Client,
    range: Range,
    filter: &Filter,
) -> Result<Live, QueryError> {
    check_range(range)?;
    let to = range.to;
    let last_minute = floor_to(to, MINUTE);
    let first_minute = last_minute - time::Duration::minutes(59);
    // The aggregate's last bucket holds the whole minute.
    let end_minute = last_minute + time::Duration::minutes(1);
    let w24h = to - time::Duration::hours(24);
    let w1h = to - time::Duration::hours(1);
    let w5m = to - time::Duration::minutes(5);
    let w10s = to - time::Duration::seconds(10);
    let where_sql = FilterSql::new(filter);

    let mut b1 = Binds::default();
    let (p1, p2, p3) = (
        b1.push(&first_minute),
        b1.push(&last_minute),
        b1.push(&end_minute),
    );
    let c1 = where_sql.and("e", &mut b1);
    let per_minute_sql = format!(
        "SELECT m.minute, COALESCE(a.events, 0)::INT8
         FROM generate_series({p1}::TIMESTAMPTZ, {p2}::TIMESTAMPTZ, INTERVAL '1 minute') AS m(minute)
         LEFT JOIN (
             SELECT time_bucket(INTERVAL '1 minute', e.event_time) AS bucket, count(*) AS events
             FROM user_events e
             WHERE e.event_time >= {p1} AND e.event_time < {p3}{c1}
             GROUP BY 1
         ) a ON a.bucket = m.minute
         ORDER BY m.minute"
    );
    let mut b2 = Binds::default();
    let (p1, p2, p3) = (
        b2.push(&first_minute),
        b2.push(&end_minute),
        b2.push(&TOP_EVENTS),
    );
    let c2 = where_sql.and("e", &mut b2);
    let top_sql = format!(
        "SELECT e.event_name, count(*)::INT8 AS n
         FROM user_events e
         WHERE e.event_time >= {p1} AND e.event_time < {p2}{c2}
         GROUP BY e.event_name
         ORDER BY n DESC, e.event_name COLLATE \"C\"
         LIMIT {p3}"
    );
    let mut b3 = Binds::default();
    let (p1, p2, p3, p4) = (b3.push(&w24h), b3.push(&w1h), b3.push(&w5m), b3.push(&to));
    let c3 = where_sql.and("e", &mut b3);
    let users_sql = format!(
        "SELECT count(*) FILTER (WHERE last_at >= {p3})::INT8,
                count(*) FILTER (WHERE last_at >= {p2})::INT8,
                count(*)::INT8
         FROM (
             SELECT e.person, max(e.event_time) AS last_at
             FROM person_events e
             WHERE e.event_time >= {p1} AND e.event_time < {p4} AND e.person IS NOT NULL{c3}
             GROUP BY e.person
         ) u"
    );
    let mut b4 = Binds::default();
    let (p1, p2, p3) = (b4.push(&w5m), b4.push(&w10s), b4.push(&to));
    let c4 = where_sql.and("e", &mut b4);
    let recent_sql = format!(
        "SELECT count(*) FILTER (WHERE e.event_time >= {p2})::INT8,
                percentile_cont(0.5) WITHIN GROUP (
                    ORDER BY extract(epoch FROM e.created_at - e.received_at)::FLOAT8)
                    FILTER (WHERE e.received_at IS NOT NULL),
                percentile_cont(0.99) WITHIN GROUP (
                    ORDER BY extract(epoch FROM e.created_at - e.received_at)::FLOAT8)
                    FILTER (WHERE e.received_at IS NOT NULL)
         FROM user_events e
         WHERE e.event_time >= {p1} AND e.event_time < {p3}{c4}"
    );
    let (per_minute, top, users, recent) = tokio::try_join!(
        client.query(&per_minute_sql, b1.as_slice()),
        client.query(&top_sql, b2.as_slice()),
        client.query_one(&users_sql, b3.as_slice()),
        client.query_one(&recent_sql, b4.as_slice()),
    )?;
    assemble(&per_minute, &top, &users, &recent)
}

/// The four statements' rows (per minute, top events, active people 5m/1h/24h, recent
/// count and lag percentiles) into [`Live`], whichever path computed them.
fn assemble(
    per_minute: &[tokio_postgres::Row],
    top: &[tokio_postgres::Row],
    users: &tokio_postgres::Row,
    recent: &tokio_postgres::Row,
) -> Result<Live, QueryError> {
    let per_minute = per_minute
        .iter()
        .map(|r| {
            Ok(MinuteCount {
                minute: r.try_get::<_, OffsetDateTime>(0)?,
                events: r.try_get(1)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    let top_events = top
        .iter()
        .map(|r| {
            Ok(NameCount {
                name: r.try_get(0)?,
                count: r.try_get(1)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    let last_10s: i64 = recent.try_get(0)?;
    Ok(Live {
        per_minute,
        events_per_second: last_10s as f64 / 10.0,
        active_users_5m: users.try_get(0)?,
        active_users_1h: users.try_get(1)?,
        active_users_24h: users.try_get(2)?,
        top_events,
        lag_p50_seconds: recent.try_get(1)?,
        lag_p99_seconds: recent.try_get(2)?,
    })
}

/// Active people per window over raw events (one distinct set: each person's last event in
/// the 24 h window decides which shorter windows the person is active in).
async fn raw_users(client: &Client, to: OffsetDateTime) -> Result<tokio_postgres::Row, QueryError> {
    let w24h = to - time::Duration::hours(24);
    let w1h = to - time::Duration::hours(1);
    let w5m = to - time::Duration::minutes(5);
    let users_params: [&(dyn ToSql + Sync); 4] = [&w24h, &w1h, &w5m, &to];
    Ok(client
        .query_one(
            "SELECT count(*) FILTER (WHERE last_at >= $3)::INT8,
                    count(*) FILTER (WHERE last_at >= $2)::INT8,
                    count(*)::INT8
             FROM (
                 SELECT person, max(event_time) AS last_at
                 FROM person_events
                 WHERE event_time >= $1 AND event_time < $4 AND person IS NOT NULL
                 GROUP BY person
             ) u",
            &users_params,
        )
        .await?)
}

impl super::Query for Live {
    async fn run(client: &Client, params: crate::analysis::Params<'_>) -> Result<Live, QueryError> {
        if params.filter.is_empty() {
            live(client, params.range).await
        } else {
            live_filtered(client, params.range, params.filter).await
        }
    }
}
