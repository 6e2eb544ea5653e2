//! Day-N retention by first-seen cohort.
//!
//! Definitions (UTC days): a user's cohort is the day of their first-ever event
//! (`user_attributes.first_seen`, which survives the raw events' retention). The cohorts
//! listed are the days from the day holding `range.from` up to the day holding `range.to`
//! (first_seen in `[day(from), to)`). `retained[n]` = cohort users with at least one event
//! on day D+n, for n = 0..=30 and only for days that have begun before `to` (so the vector
//! is shorter for recent cohorts). `retained[0]` equals `users` unless raw events were
//! dropped.
//!
//! Read from `user_daily_activity` (one row per day and user, so counting rows counts
//! distinct users) joined at query time to `user_attributes`: TimescaleDB cannot keep this
//! join as a continuous aggregate (the seed's `retention_analysis` joins two aggregates).
//!
//! Invariant: a user counts at most once per (cohort, n), and only in their own cohort.

use std::time::Duration;

use time::{Date, OffsetDateTime};
use tokio_postgres::{types::ToSql, Client};

use super::{check_range, floor_to, QueryError};
use crate::model::{Cohort, Range, Retention};

/// Days after the cohort day that are reported: n = 0..=MAX_DAY.
pub const MAX_DAY: i64 = 30;
const DAY: Duration = Duration::from_secs(86_400);

pub async fn retention(client: &Client, range: Range) -> Result<Retention, QueryError> {
    check_range(range)?;
    let from = floor_to(range.from, DAY);
    let to = range.to;
    let max_day = MAX_DAY as i32;
    let sizes_params: [&(dyn ToSql + Sync); 2] = [&from, &to];
    let sizes = client.query(
        "SELECT (time_bucket(INTERVAL '1 day', first_seen) AT TIME ZONE 'UTC')::DATE AS day,
                count(*)::INT8
         FROM user_attributes
         WHERE first_seen >= $1 AND first_seen < $2
         GROUP BY 1
         ORDER BY 1",
        &sizes_params,
    );
    let retained_params: [&(dyn ToSql + Sync); 3] = [&from, &to, &max_day];
    let retained = client.query(
        "SELECT (c.day AT TIME ZONE 'UTC')::DATE,
                round(extract(epoch FROM a.bucket - c.day) / 86400)::INT4 AS n,
                count(*)::INT8
         FROM (
             SELECT user_id, time_bucket(INTERVAL '1 day', first_seen) AS day
             FROM user_attributes
             WHERE first_seen >= $1 AND first_seen < $2
         ) c
         JOIN user_daily_activity a ON a.user_id = c.user_id
         WHERE a.bucket >= $1 AND a.bucket < $2
           AND a.bucket >= c.day AND a.bucket <= c.day + $3::INT4 * INTERVAL '1 day'
         GROUP BY 1, 2",
        &retained_params,
    );
    let (sizes, retained) = tokio::try_join!(sizes, retained)?;

    let mut cohorts = Vec::with_capacity(sizes.len());
    for r in &sizes {
        let day: Date = r.try_get(0)?;
        cohorts.push(Cohort {
            day,
            users: r.try_get(1)?,
            retained: vec![0; days_reported(day, to)],
        });
    }
    for r in &retained {
        let day: Date = r.try_get(0)?;
        let n: i32 = r.try_get(1)?;
        let users: i64 = r.try_get(2)?;
        if let Some(c) = cohorts.iter_mut().find(|c| c.day == day) {
            if let Some(slot) = usize::try_from(n).ok().and_then(|n| c.retained.get_mut(n)) {
                *slot = users;
            }
        }
    }
    Ok(Retention { cohorts })
}

/// How many of days D+0..=D+30 have begun before `to`.
pub fn days_reported(day: Date, to: OffsetDateTime) -> usize {
    let start = day.midnight().assume_utc();
    if to <= start {
        return 0;
    }
    let begun = ((to - start).whole_nanoseconds() - 1) / (DAY.as_nanos() as i128) + 1;
    begun.clamp(0, (MAX_DAY + 1) as i128) as usize
}

impl super::Query for Retention {
    async fn run(
        client: &Client,
        params: crate::analysis::Params<'_>,
    ) -> Result<Retention, QueryError> {
        retention(client, params.range).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn days_that_have_begun() {
        let d = date!(2024 - 05 - 01);
        assert_eq!(days_reported(d, datetime!(2024-05-01 0:00 UTC)), 0);
        assert_eq!(days_reported(d, datetime!(2024-05-01 0:00:01 UTC)), 1);
        assert_eq!(days_reported(d, datetime!(2024-05-02 0:00 UTC)), 1);
        assert_eq!(days_reported(d, datetime!(2024-05-02 13:00 UTC)), 2);
        assert_eq!(days_reported(d, datetime!(2024-08-01 0:00 UTC)), 31);
    }
}
