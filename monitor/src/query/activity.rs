//! Reading migration 0013's activity rollups (shared by [`super::live`](mod@super::live),
//! [`super::breakdown`](mod@super::breakdown) and [`super::pages`]): distinct people and
//! events per key over a range `[from, to)` that ends after (nearly) every event — the
//! monitor's "last 1h / 24h / 7d / 30d".
//!
//! A key is (dim, value): [`ALL`] (every event, value `''`), [`DEVICE`], [`COUNTRY`] (NULL
//! stored as `(none)`), [`EVENT`] (event name), [`PAGE`] (page_url of a page_view).
//!
//! - people with a key active in `[from, to)`: when no event is dated at or after `to`,
//!   exactly the people whose last event with the key is ≥ `from` — the `last_at`
//!   histogram's days from the first midnight after `from`, its hours from the first whole
//!   hour after `from` up to that midnight, its minutes (migration 0018) of the partial hour
//!   at `from`, and the people whose `last_at` is in the partial minute at `from`. Each
//!   person is in exactly one bucket, so the sum is a distinct count. The few people whose
//!   last event is at or after `to` (a client clock ahead, or `to` slightly in the past)
//!   are taken out and counted back when they have an event with the key in `[from, to)`
//!   (their raw events, by actor: migration 0020's `edge_activity_later_people()`, which
//!   plans that read only when such people exist).
//!   A person's `last_at` is the time of one of its events, by an actor linked to it now,
//!   so the people whose `last_at` is in `[from, minute)` (or at or after `to`) are among
//!   the people of the raw events there: both are found from those events, then their rows
//!   by key (`person, dim, value`), never by a scan of `last_at`.
//! - events with a key: the counters' days and hours after `from` (as above), the minute
//!   counters (migration 0017) of the partial hour at `from` and the raw events of the
//!   partial minute at `from`, minus the raw events at or after `to`.
//! - the partial minute at `from` is read the shorter way ([`Since::complement`]): as
//!   above when `[from, minute)` is under half a minute, else as the whole minute's bucket
//!   minus the same computation over `[floor, from)` (people whose `last_at` is there, or
//!   events). So at most half a minute of raw events is read, a quarter on average.
//!
//! Only the range's start needs partial buckets: everything between it and `to` is in the
//! range, and what lies after `to` is subtracted exactly.
//!
//! Invariant: the sums equal the definitions for any `to`; their cost grows with the events
//! at or after `to`, so callers use them only when there are at most [`MAX_LATER`] such
//! events ([`few_later_events`]) and read raw events otherwise.

use std::time::Duration;

use time::OffsetDateTime;
use tokio_postgres::Client;

use super::{ceil_to, floor_to, Binds, QueryError};

/// Every event (live's active people).
pub const ALL: i16 = 0;
/// device_type.
pub const DEVICE: i16 = 1;
/// country_code.
pub const COUNTRY: i16 = 2;
/// event_name.
pub const EVENT: i16 = 3;
/// page_url of page_view events.
pub const PAGE: i16 = 4;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// Events dated at or after `to` the sums correct for; beyond, callers read raw events.
pub const MAX_LATER: i64 = 1000;

/// The bounds the sums need for a range `[from, to)`.
pub struct Since {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    /// The first whole minute at or after `from`.
    pub minute: OffsetDateTime,
    /// The whole minute at or before `from`.
    pub floor: OffsetDateTime,
    /// The first whole hour at or after `from`.
    pub hour: OffsetDateTime,
    /// The first midnight (UTC) at or after `from`.
    pub day: OffsetDateTime,
}

impl Since {
    pub fn new(from: OffsetDateTime, to: OffsetDateTime) -> Since {
        Since {
            from,
            to,
            minute: ceil_to(from, MINUTE),
            floor: floor_to(from, MINUTE),
            hour: ceil_to(from, HOUR),
            day: ceil_to(from, DAY),
        }
    }

    /// Whether the partial minute at `from` is cheaper read as its whole minute's bucket
    /// minus the raw events of `[floor, from)`: when that piece is the shorter one.
    pub fn complement(&self) -> bool {
        super::minute_complement(self.from, self.minute).is_some()
    }
}

/// A condition true when the minute counters still hold the minute at `floor` (a bind):
/// `edge_prune_sessions()` deletes old minutes, and a complement read against a pruned
/// minute would subtract from nothing. Its dim-0 (every event) row exists whenever the
/// minute had an event, so when it is absent the minute's raw pieces have nothing either.
fn minute_kept(floor: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM activity_events_minute g WHERE g.dim = 0 AND g.bucket = {floor})"
    )
}

/// Whether at most [`MAX_LATER`] events have event_time at or after `to`.
pub(crate) async fn few_later_events(
    client: &Client,
    to: OffsetDateTime,
) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT count(*) <= $2::INT8 FROM (
                 SELECT 1 FROM user_events WHERE event_time >= $1 LIMIT $2::INT8 + 1
             ) later",
            &[&to, &MAX_LATER],
        )
        .await?;
    row.try_get(0)
}

/// The rows of `rollup` (a statement over these sums for a range ending at `to`), or those
/// of `raw` when more than [`MAX_LATER`] events are dated at or after `to` (see the module
/// doc). `rollup` and the count of later events are pipelined on one connection.
pub(crate) async fn rollup_or_raw<R>(
    client: &Client,
    to: OffsetDateTime,
    rollup: impl std::future::Future<Output = Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>>,
    raw: impl FnOnce() -> R,
) -> Result<Vec<tokio_postgres::Row>, QueryError>
where
    R: std::future::Future<Output = Result<Vec<tokio_postgres::Row>, QueryError>>,
{
    let (rows, few_later) = tokio::try_join!(rollup, few_later_events(client, to))?;
    if few_later {
        Ok(rows)
    } else {
        raw().await
    }
}

/// `SELECT dim, value, people` rows (to be summed per key) for the keys of `dims` (a
/// constant list such as `"(1, 2, 3)"`), optionally restricted by `value_filter` (a
/// constant condition on `value`).
pub(crate) fn people_sql<'a>(
    p: &mut Binds<'a>,
    dims: &str,
    since: &'a Since,
    value_filter: &str,
) -> String {
    let (from, minute) = (p.push(&since.from), p.push(&since.minute));
    let (hour, day, to) = (p.push(&since.hour), p.push(&since.day), p.push(&since.to));
    // The people whose `last_at` is in [a, b), found from the people of the raw events
    // there (module doc), each of their rows one lookup by key; `sign` 1 or -1.
    let people_in = |a: &str, b: &str, sign: &str| {
        format!(
            "SELECT dim, value, {sign} * count(*) FROM activity_person_last
             WHERE person IN (SELECT DISTINCT person FROM person_events
                              WHERE event_time >= {a} AND event_time < {b}
                                AND person IS NOT NULL)
               AND dim IN {dims} AND last_at >= {a} AND last_at < {b} {value_filter}"
        )
    };
    let partial = if since.complement() {
        let floor = p.push(&since.floor);
        format!(
            "SELECT dim, value, people FROM activity_last_minute
             WHERE dim IN {dims} AND bucket = {floor} {value_filter}
             UNION ALL
             {} AND {}
             GROUP BY dim, value",
            people_in(&floor, &from, "-1"),
            minute_kept(&floor)
        )
    } else {
        format!("{} GROUP BY dim, value", people_in(&from, &minute, "1"))
    };
    // `dims` is a parenthesised constant list: the same list as an array.
    let list = dims.trim_start_matches('(').trim_end_matches(')');
    format!(
        "SELECT dim, value, people FROM activity_last_daily
         WHERE dim IN {dims} AND bucket >= {day} {value_filter}
         UNION ALL
         SELECT dim, value, people FROM activity_last_hourly
         WHERE dim IN {dims} AND bucket >= {hour} AND bucket < {day} {value_filter}
         UNION ALL
         SELECT dim, value, people FROM activity_last_minute
         WHERE dim IN {dims} AND bucket >= {minute} AND bucket < {hour} {value_filter}
         UNION ALL
         {partial}
         UNION ALL
         SELECT dim, value, people
         FROM edge_activity_later_people(ARRAY[{list}]::SMALLINT[], {from}, {to})
         WHERE TRUE {value_filter}"
    )
}

/// `SELECT dim, value, events` rows (to be summed per key) for the keys of `dims`;
/// `raw_filter` (a constant condition on the raw events `e`) narrows the partial minute's
/// scan to the events that can have those keys.
pub(crate) fn events_sql<'a>(
    p: &mut Binds<'a>,
    dims: &str,
    since: &'a Since,
    raw_filter: &str,
) -> String {
    let (from, hour, day) = (p.push(&since.from), p.push(&since.hour), p.push(&since.day));
    let (minute, to) = (p.push(&since.minute), p.push(&since.to));
    let raw_in = |a: &str, b: &str, sign: &str| {
        format!(
            "SELECT k.dim, k.value, {sign} * count(*)
             FROM user_events e,
                  edge_activity_keys(e.device_type, e.country_code::TEXT, e.event_name, e.page_url) k
             WHERE e.event_time >= {a} AND e.event_time < {b} AND k.dim IN {dims} {raw_filter}"
        )
    };
    let partial = if since.complement() {
        let floor = p.push(&since.floor);
        format!(
            "SELECT dim, value, events FROM activity_events_minute
             WHERE dim IN {dims} AND bucket = {floor}
             UNION ALL
             {} AND {}
             GROUP BY k.dim, k.value",
            raw_in(&floor, &from, "-1"),
            minute_kept(&floor)
        )
    } else {
        format!("{} GROUP BY k.dim, k.value", raw_in(&from, &minute, "1"))
    };
    format!(
        "SELECT dim, value, events FROM activity_events_daily
         WHERE dim IN {dims} AND bucket >= {day}
         UNION ALL
         SELECT dim, value, events FROM activity_events_hourly
         WHERE dim IN {dims} AND bucket >= {hour} AND bucket < {day}
         UNION ALL
         SELECT dim, value, events FROM activity_events_minute
         WHERE dim IN {dims} AND bucket >= {minute} AND bucket < {hour}
         UNION ALL
         {partial}
         UNION ALL
         SELECT k.dim, k.value, -count(*)
         FROM user_events e,
              edge_activity_keys(e.device_type, e.country_code::TEXT, e.event_name, e.page_url) k
         WHERE e.event_time >= {to} AND k.dim IN {dims} {raw_filter}
         GROUP BY k.dim, k.value"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn since_bounds() {
        let to = datetime!(2024-05-09 0:00 UTC);
        let s = Since::new(datetime!(2024-05-01 10:17 UTC), to);
        assert_eq!(s.hour, datetime!(2024-05-01 11:00 UTC));
        assert_eq!(s.day, datetime!(2024-05-02 0:00 UTC));
        assert_eq!(s.minute, datetime!(2024-05-01 10:17 UTC));
        let late = Since::new(datetime!(2024-05-01 10:17:30 UTC), to);
        assert_eq!(late.minute, datetime!(2024-05-01 10:18 UTC));
        let aligned = Since::new(datetime!(2024-05-01 0:00 UTC), to);
        assert_eq!(
            (aligned.minute, aligned.hour, aligned.day),
            (aligned.from, aligned.from, aligned.from)
        );
    }
}
