//! Events and people by device type, country and event name over a range.
//!
//! Definition: over events with event_time in `[from, to)`, for each value of the dimension
//! (NULL shown as `(none)`): `events` = events with that value, `users` = distinct people
//! among them (the README's person: a linked visitor counts as their user). Rows are sorted by events descending, then key; at most `LIMIT` per
//! dimension.
//!
//! Why raw events and not `user_behavior_multi_dimension` / `user_events_daily`: those hold
//! distinct users per bucket, and distinct users over a range cannot be derived from
//! per-bucket distinct counts (summing them counts a user once per bucket). One pass over
//! the range with GROUPING SETS gives all three dimensions exactly.
//!
//! Under a filter ([`breakdown_filtered`]) it is the same definition over only the
//! matching events (a filter on `device` leaves one device row, and so on).
//!
//! Invariant: `users` is a distinct count over the whole range, never a sum.

use tokio_postgres::Client;

use super::{check_range, filter::FilterSql, Binds, QueryError};
use crate::model::{Breakdown, BreakdownRow, Filter, Range};

/// Rows listed per dimension.
pub const LIMIT: usize = 100;
/// The key shown for NULL.
pub const NONE: &str = "(none)";

pub async fn breakdown(client: &Client, range: Range) -> Result<Breakdown, QueryError> {
    check_range(range)?;
    let rows = client
        .query(
            "SELECT CASE WHEN GROUPING(device_type) = 0 THEN 0
                         WHEN GROUPING(country_code) = 0 THEN 1
                         ELSE 2 END AS dim,
                    CASE WHEN GROUPING(device_type) = 0 THEN device_type
                         WHEN GROUPING(country_code) = 0 THEN country_code::TEXT
                         ELSE event_name END AS key,
                    count(*)::INT8 AS events,
                    count(DISTINCT person)::INT8 AS users
             FROM person_events
             WHERE event_time >= $1 AND event_time < $2
             GROUP BY GROUPING SETS ((device_type), (country_code), (event_name))",
            &[&range.from, &range.to],
        )
        .await?;
    let mut out = Breakdown::default();
    for r in &rows {
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

/// [`breakdown`] over the events matching `filter`.
pub async fn breakdown_filtered(
    client: &Client,
    range: Range,
    filter: &Filter,
) -> Result<Breakdown, QueryError> {
    check_range(range)?;
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
    let rows = client.query(&sql, binds.as_slice()).await?;
    let mut out = Breakdown::default();
    for r in &rows {
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
