//! Top next-event transitions within sessions.
//!
//! Definition: a transition a → b is a pair of consecutive events of a session (all the
//! session's events, whatever the range, ordered by event_time then event_id) less than a
//! day apart (`edge_session_gap()`); it counts in the range when its second event b has
//! event_time in `[from, to)`. `avg_seconds` is the mean of b.event_time − a.event_time. The
//! `TOP` most frequent transitions are listed, by count descending, then from and to names.
//!
//! Read from the counters of migrations 0011 and 0019 (maintained per forwarded batch from
//! the rows really inserted, exact for late and out-of-order events): the whole days (UTC)
//! of the range from `rollup_transitions_daily`, the whole hours of its partial days from
//! `rollup_transitions_hourly`, the whole minutes of its partial hours from
//! `rollup_transitions_minute`, and only the partial minutes at the very edges from raw
//! events — each the shorter way ([`super::minute_complement`]): its own events, or its
//! minute's bucket minus the events of the rest of the minute, which at the range's end is
//! the future, usually empty (each event there with its predecessor, one index lookup in the chunks of that
//! minute and the gap before it: the lookup's bounds are also given as constants, or every
//! lookup probed every chunk of the hypertable, 94 buffer hits an event at 10M events over
//! 31 daily chunks instead of 5). The cost follows the number of buckets, not of events.
//!
//! Under a filter ([`paths_filtered`]) the transitions are those between consecutive
//! *matching* events of a session (the same definition over only the matching events),
//! read from raw events: one window over the matching events of the range and of the day
//! before it (an older one is too far to pair), each with its session's previous one; ties
//! are then cut by names in byte order.
//!
//! Invariant: the result equals the definition evaluated over the raw events, whichever
//! grain each piece of the range is read from.

use tokio_postgres::Client;

use std::time::Duration;

use super::{check_range, filter::FilterSql, split_grains, Binds, QueryError};
use crate::model::{Filter, Paths, Range, Transition};

/// How many transitions [`paths`] lists.
pub const TOP: i64 = 20;

pub async fn paths(client: &Client, range: Range) -> Result<Paths, QueryError> {
    top_paths(client, range, TOP).await
}

/// The rollups' grains, coarsest first.
const GRAINS: [(&str, Duration); 3] = [
    ("rollup_transitions_daily", Duration::from_secs(86_400)),
    ("rollup_transitions_hourly", Duration::from_secs(3600)),
    ("rollup_transitions_minute", Duration::from_secs(60)),
];

/// [`paths`] with a chosen number of transitions.
pub async fn top_paths(client: &Client, range: Range, limit: i64) -> Result<Paths, QueryError> {
    check_range(range)?;
    // Each piece of the range goes to the coarsest grain that covers it whole.
    let parts = split_grains(range, &GRAINS);
    let mut params = Binds::default();
    let mut selects = Vec::new();
    for (table, a, b) in &parts.tables {
        let (pa, pb) = (params.push(a), params.push(b));
        selects.push(format!(
            "SELECT from_name, to_name, transitions, gap_us FROM {table}
             WHERE bucket >= {pa} AND bucket < {pb}"
        ));
    }
    // Each raw edge the shorter way: its own events, or its minute's bucket minus the
    // events of the rest of that minute (kept: a pruned minute has no bucket to subtract
    // from; a minute without a bucket has no transitions in any of its pieces either).
    let mut minutes = Vec::new();
    let mut raw = Vec::new();
    for &(a, b) in &parts.raw {
        match super::minute_complement(a, b) {
            Some((m, m1)) => {
                minutes.push((m, m1));
                raw.extend(
                    [(m, a), (b, m1)]
                        .into_iter()
                        .filter(|(x, y)| x < y)
                        .map(|(x, y)| (x, y, Some(m))),
                );
            }
            None => raw.push((a, b, None)),
        }
    }
    for (m, m1) in &minutes {
        let (pa, pb) = (params.push(m), params.push(m1));
        selects.push(format!(
            "SELECT from_name, to_name, transitions, gap_us FROM rollup_transitions_minute
             WHERE bucket >= {pa} AND bucket < {pb}"
        ));
    }
    for (a, b, minute) in &raw {
        let (pa, pb) = (params.push(a), params.push(b));
        let (sign, kept) = match minute {
            Some(m) => (
                "-1",
                format!(
                    "AND EXISTS (SELECT 1 FROM rollup_transitions_minute g WHERE g.bucket = {})",
                    params.push(m)
                ),
            ),
            None => ("1", String::new()),
        };
        selects.push(format!(
            "SELECT p.event_name, e.event_name, {sign}::INT8,
                    {sign} * (extract(epoch FROM e.event_time - p.event_time) * 1000000)::INT8
             FROM user_events e
             CROSS JOIN LATERAL (
                 SELECT q.event_name, q.event_time
                 FROM user_events q
                 WHERE q.session_id = e.session_id
                   AND q.event_time > e.event_time - edge_session_gap()
                   AND (q.event_time, q.event_id) < (e.event_time, e.event_id)
                   -- Implied by the two above, but constant: the chunks outside are
                   -- excluded once, at start-up, instead of probed for every event.
                   AND q.event_time >= {pa}::TIMESTAMPTZ - edge_session_gap()
                   AND q.event_time < {pb}
                 ORDER BY q.event_time DESC, q.event_id DESC
                 LIMIT 1
             ) p
             WHERE e.event_time >= {pa} AND e.event_time < {pb} AND e.session_id IS NOT NULL
               {kept}"
        ));
    }
    let limit_param = params.push(&limit);
    let sql = format!(
        "SELECT from_name, to_name, sum(transitions)::INT8 AS n,
                (sum(gap_us)::FLOAT8 / 1e6 / sum(transitions))::FLOAT8
         FROM ({}) t (from_name, to_name, transitions, gap_us)
         GROUP BY from_name, to_name
         HAVING sum(transitions) > 0
         ORDER BY n DESC, from_name, to_name
         LIMIT {limit_param}",
        selects.join(" UNION ALL ")
    );
    from_rows(&client.query(&sql, params.as_slice()).await?)
}

/// [`paths`] over the events matching `filter`, from raw events.
pub async fn paths_filtered(
    client: &Client,
    range: Range,
    filter: &Filter,
) -> Result<Paths, QueryError> {
    check_range(range)?;
    let where_sql = FilterSql::new(filter);
    let mut params = Binds::default();
    let (pa, pb, limit) = (
        params.push(&range.from),
        params.push(&range.to),
        params.push(&TOP),
    );
    let cond = where_sql.and("e", &mut params);
    let sql = format!(
        "SELECT from_name, to_name, sum(transitions)::INT8 AS n,
                (sum(gap_us)::FLOAT8 / 1e6 / sum(transitions))::FLOAT8
         FROM (
             -- Each matching event with the session's previous matching event: only those
             -- of the range and of the gap before it can pair with one in the range.
             SELECT lag(e.event_name) OVER w, e.event_name, 1::INT8,
                    (extract(epoch FROM e.event_time - lag(e.event_time) OVER w) * 1000000)::INT8,
                    e.event_time, e.event_time - lag(e.event_time) OVER w
             FROM user_events e
             WHERE e.event_time >= {pa}::TIMESTAMPTZ - edge_session_gap() AND e.event_time < {pb}
               AND e.session_id IS NOT NULL{cond}
             WINDOW w AS (PARTITION BY e.session_id ORDER BY e.event_time, e.event_id)
         ) t (from_name, to_name, transitions, gap_us, at, gap)
         WHERE at >= {pa} AND gap < edge_session_gap()
         GROUP BY from_name, to_name
         ORDER BY n DESC, from_name COLLATE \"C\", to_name COLLATE \"C\"
         LIMIT {limit}"
    );
    from_rows(&client.query(&sql, params.as_slice()).await?)
}

/// Rows `(from, to, count, avg_seconds)` into [`Paths`].
fn from_rows(rows: &[tokio_postgres::Row]) -> Result<Paths, QueryError> {
    let transitions = rows
        .iter()
        .map(|r| {
            Ok(Transition {
                from: r.try_get(0)?,
                to: r.try_get(1)?,
                count: r.try_get(2)?,
                avg_seconds: r.try_get(3)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok(Paths { transitions })
}

impl super::Query for Paths {
    async fn run(
        client: &Client,
        params: crate::analysis::Params<'_>,
    ) -> Result<Paths, QueryError> {
        if params.filter.is_empty() {
            paths(client, params.range).await
        } else {
            paths_filtered(client, params.range, params.filter).await
        }
    }
}
