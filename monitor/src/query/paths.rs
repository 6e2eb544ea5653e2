//! Top next-event transitions within sessions.
//!
//! Definition: the events of each session (session_id not null) with event_time in
//! `[from, to)`, ordered by event_time (ties by event_id); every pair of consecutive events
//! (a, b) is one transition a → b, and `avg_seconds` is the mean of b.event_time −
//! a.event_time over those pairs. The `TOP` most frequent transitions are listed, by count
//! descending, then by from and to names.
//!
//! Computed at query time over the raw events of the range (the seed's
//! `page_transition_analysis` needs LEAD, which no continuous aggregate accepts); the cost
//! grows with the range, so the dashboard keeps it to its selected window.
//!
//! Invariant: only consecutive events of one session form a transition.

use tokio_postgres::Client;

use super::{check_range, QueryError};
use crate::model::{Paths, Range, Transition};

/// How many transitions [`paths`] lists.
pub const TOP: i64 = 20;

pub async fn paths(client: &Client, range: Range) -> Result<Paths, QueryError> {
    top_paths(client, range, TOP).await
}

/// [`paths`] with a chosen number of transitions.
pub async fn top_paths(client: &Client, range: Range, limit: i64) -> Result<Paths, QueryError> {
    check_range(range)?;
    let rows = client
        .query(
            "SELECT event_name, next_name, count(*)::INT8 AS n,
                    avg(extract(epoch FROM next_time - event_time))::FLOAT8
             FROM (
                 SELECT event_name, event_time,
                        lead(event_name) OVER w AS next_name,
                        lead(event_time) OVER w AS next_time
                 FROM user_events
                 WHERE event_time >= $1 AND event_time < $2 AND session_id IS NOT NULL
                 WINDOW w AS (PARTITION BY session_id ORDER BY event_time, event_id)
             ) t
             WHERE next_name IS NOT NULL
             GROUP BY event_name, next_name
             ORDER BY n DESC, event_name, next_name
             LIMIT $3",
            &[&range.from, &range.to, &limit],
        )
        .await?;
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
        paths(client, params.range).await
    }
}
