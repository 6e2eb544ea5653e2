//! Events and people by device type, country and event name over a range.
//!
//! Definition: over events with event_time in `[from, to)`, for each value of the dimension
//! (NULL shown as `(none)`): `events` = events with that value, `users` = distinct people
//! among them (the README's person: a linked visitor counts as their user). Rows are
//! sorted by events descending, then key; at most `LIMIT` per dimension.
//!
//! Read from migration 0013's rollups ([`super::activity`]). When no event has event_time
//! at or after `to` (the monitor's "last 1h / 24h / 7d / 30d"), a person is active with a
//! value in the range exactly when their last event with that value is ≥ `from`, so
//! `users` is the sum of the `last_at` histogram's buckets after the range's first whole
//! hour (each person is in one bucket: a distinct count, never a sum of per-bucket distinct
//! counts) plus the people whose last event is in the partial hour at `from`; `events` is
//! the counters' buckets after `from` plus the raw events of that partial hour. Events
//! dated at or after `to` (a client clock ahead) are subtracted, and their people counted
//! back only if they have an event with the value in the range — exact either way. The
//! cost follows the number of buckets and values, not of events. With more than
//! [`activity::MAX_LATER`] events at or after `to` (`to` well in the past): one pass over
//! the range's raw events with GROUPING SETS.
//!
//! Under a filter ([`breakdown_filtered`]) it is the same definition over only the
//! matching events (a filter on `device` leaves one device row, and so on), read from raw
//! events.
//!
//! Invariant: `users` is a distinct count over the whole range, never a sum of per-bucket
//! distinct counts, whichever path answers.

use tokio_postgres::Client;

use super::{
    activity::{self, Since},
    check_range,
    filter::FilterSql,
    Binds, QueryError,
};
use crate::model::{Breakdown, BreakdownRow, Filter, Range};

/// Rows listed per dimension.
pub const LIMIT: usize = 100;
/// The key shown for NULL.
pub const NONE: &str = "(none)";

pub async fn breakdown(client: &Client, range: Range) -> Result<Breakdown, QueryError> {
    check_range(range)?;
    let since = Since::new(range.from, range.to);
    let mut binds = Binds::default();
    let dims = format!(
        "({}, {}, {})",
        activity::DEVICE,
        activity::COUNTRY,
        activity::EVENT
    );
    let events = activity::events_sql(&mut binds, &dims, &since, "");
    let people = activity::people_sql(&mut binds, &dims, &since, "");
    let sql = format!(
        "SELECT (dim - {first})::INT4, value, sum(events)::INT8, sum(people)::INT8
         FROM (SELECT dim, value, events, 0::INT8 AS people FROM ({events}) e
               UNION ALL
               SELECT dim, value, 0::INT8, people FROM ({people}) p) t
         GROUP BY dim, value
         HAVING sum(events) > 0",
        first = activity::DEVICE
    );
    let all = Filter::default();
    let rows = activity::rollup_or_raw(
        client,
        range.to,
        client.query(&sql, binds.as_slice()),
        || raw(client, range, &all),
    )
    .await?;
    from_rows(&rows)
}

/// [`breakdown`] over the events matching `filter`.
pub async fn breakdown_filtered(
    client: &Client,
    range: Range,
    filter: &Filter,
) -> Result<Breakdown, QueryError> {
    check_range(range)?;
    from_rows(&raw(client, range, filter).await?)
}

/// The three dimensions over the range's raw events matching `filter` (empty: all), one
/// pass (dim 0 device, 1 country, 2 event name; NULL keys as NULL).
async fn raw(
    client: &Client,
    range: Range,
    filter: &Filter,
) -> Result<Vec<tokio_postgres::Row>, QueryError> {
    let where_sql = FilterSql::new(filter);
    let mut binds = Binds::default();
    let (pa, pb) = (binds.push(&range.from), binds.push(&range.to));
    let cond = where_sql.and("e", &mut binds);
    let sql = format!(
        "SELECT CASE WHEN GROUPING(e.device_type) = 0 THEN 0
                     WHEN GROUPING(e.country_code) = 0 THEN 1
                     ELSE 2 END AS dim,
                CASE WHEN GROUPING(e.device_type) = 0 THEN e.device_type
                     WHEN GROUPING(e.country_code) = 0 THEN e.country_code::TEXT
                     ELSE e.event_name END AS key,
                count(*)::INT8 AS events,
                count(DISTINCT e.person)::INT8 AS users
         FROM person_events e
         WHERE e.event_time >= {pa} AND e.event_time < {pb}{cond}
         GROUP BY GROUPING SETS ((e.device_type), (e.country_code), (e.event_name))"
    );
    Ok(client.query(&sql, binds.as_slice()).await?)
}

/// Rows `(dim, key, events, users)` into the three lists, sorted and cut to [`LIMIT`].
fn from_rows(rows: &[tokio_postgres::Row]) -> Result<Breakdown, QueryError> {
    let mut out = Breakdown::default();
    for r in rows {
        let dim: i32 = r.try_get(0)?;
        let row = BreakdownRow {
            key: r
                .try_get::<_, Option<String>>(1)?
                .unwrap_or_else(|| NONE.to_string()),
            events: r.try_get(2)?,
            users: r.try_get(3)?,
        };
        match dim {
            0 => out.by_device.push(row),
            1 => out.by_country.push(row),
            _ => out.by_event.push(row),
        }
    }
    for list in [&mut out.by_device, &mut out.by_country, &mut out.by_event] {
        list.sort_by(|a, b| b.events.cmp(&a.events).then_with(|| a.key.cmp(&b.key)));
        list.truncate(LIMIT);
    }
    Ok(out)
}

impl super::Query for Breakdown {
    async fn run(
        client: &Client,
        params: crate::analysis::Params<'_>,
    ) -> Result<Breakdown, QueryError> {
        if params.filter.is_empty() {
            breakdown(client, params.range).await
        } else {
            breakdown_filtered(client, params.range, params.filter).await
        }
    }
}
