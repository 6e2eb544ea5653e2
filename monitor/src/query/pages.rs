//! Top pages: the most viewed page URLs over the range, with distinct people.
//!
//! Definition: `page_view` events with event_time in `[from, to)` and a page_url, grouped by
//! page_url; `views` counts the events, `users` the distinct people among them (the
//! README's person: a linked visitor counts as their user).
//! The [`TOP`] pages are listed by views descending, then by URL (byte order, whatever the
//! database's collation, so ties are cut the same everywhere).
//!
//! Read from migration 0013's rollups ([`super::activity`], key [`activity::PAGE`]):
//! views from the per-page counters after the range's first whole hour plus the raw page
//! views of its partial first hour; for the top pages only, people from the `last_at`
//! histogram (with nothing dated at or after `to`, a person viewed the page in the range
//! exactly when their last view of it is ≥ `from`; each person is in one bucket) plus the
//! people whose last view is in that partial hour. Views and people at or after `to` are
//! corrected exactly; with more than [`activity::MAX_LATER`] such events (`to` well in the
//! past) everything is read from the raw events of the range.
//!
//! Under a filter ([`pages_filtered`]) it is the same definition over only the matching
//! events (`event=` anything but `page_view` leaves no page), read from raw events.
//!
//! Invariant: distinct people are counted per page, never summed across buckets, whichever
//! path answers.

use tokio_postgres::Client;

use super::{
    activity::{self, Since},
    check_range,
    filter::FilterSql,
    Binds, QueryError,
};
use crate::model::{Filter, PageRow, Pages, Range};

/// How many pages are listed.
pub const TOP: i64 = 20;

pub async fn pages(client: &Client, range: Range) -> Result<Pages, QueryError> {
    check_range(range)?;
    let since = Since::new(range.from, range.to);
    let mut binds = Binds::default();
    let dims = format!("({})", activity::PAGE);
    let views = activity::events_sql(
        &mut binds,
        &dims,
        &since,
        "AND e.event_name = 'page_view' AND e.page_url IS NOT NULL",
    );
    let people = activity::people_sql(
        &mut binds,
        &dims,
        &since,
        "AND value = ANY (ARRAY(SELECT value FROM top))",
    );
    let top = binds.push(&TOP);
    let sql = format!(
        "WITH top AS (
             SELECT value, sum(events) AS views FROM ({views}) v
             GROUP BY value
             HAVING sum(events) > 0
             ORDER BY views DESC, value COLLATE \"C\"
             LIMIT {top}
         ),
         people AS (SELECT value, sum(people) AS people FROM ({people}) p GROUP BY value)
         SELECT top.value, top.views::INT8, COALESCE(people.people, 0)::INT8
         FROM top LEFT JOIN people USING (value)
         ORDER BY top.views DESC, top.value COLLATE \"C\""
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

/// [`pages`] over the events matching `filter`.
pub async fn pages_filtered(
    client: &Client,
    range: Range,
    filter: &Filter,
) -> Result<Pages, QueryError> {
    check_range(range)?;
    from_rows(&raw(client, range, filter).await?)
}

/// The top pages over the range's raw events matching `filter` (empty: all).
async fn raw(
    client: &Client,
    range: Range,
    filter: &Filter,
) -> Result<Vec<tokio_postgres::Row>, QueryError> {
    let where_sql = FilterSql::new(filter);
    let mut binds = Binds::default();
    let (pa, pb, top) = (
        binds.push(&range.from),
        binds.push(&range.to),
        binds.push(&TOP),
    );
    let cond = where_sql.and("e", &mut binds);
    let sql = format!(
        "SELECT e.page_url, count(*)::INT8, count(DISTINCT e.person)::INT8
         FROM person_events e
         WHERE e.event_time >= {pa} AND e.event_time < {pb}
           AND e.event_name = 'page_view' AND e.page_url IS NOT NULL{cond}
         GROUP BY e.page_url
         ORDER BY 2 DESC, e.page_url COLLATE \"C\"
         LIMIT {top}"
    );
    Ok(client.query(&sql, binds.as_slice()).await?)
}

/// Rows `(url, views, users)` into [`Pages`].
fn from_rows(rows: &[tokio_postgres::Row]) -> Result<Pages, QueryError> {
    let pages = rows
        .iter()
        .map(|r| {
            Ok(PageRow {
                url: r.try_get(0)?,
                views: r.try_get(1)?,
                users: r.try_get(2)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok(Pages { pages })
}

impl super::Query for Pages {
    async fn run(
        client: &Client,
        params: crate::analysis::Params<'_>,
    ) -> Result<Pages, QueryError> {
        if params.filter.is_empty() {
            pages(client, params.range).await
        } else {
            pages_filtered(client, params.range, params.filter).await
        }
    }
}
