//! Day-N retention by first-seen cohort, counted in people.
//!
//! Definitions (UTC days; a person as in the README: the user id when known, else the
//! anonymous id, a linked visitor being their user): a person's cohort is the day of their
//! first-ever event — the earliest `actor_first_seen.first_seen` of the person's actors (the
//! user id and every anonymous id linked to it), which survives the raw events' retention.
//! The cohorts listed are the days from the day holding `range.from` up to the day holding
//! `range.to` (first seen in `[day(from), to)`). `retained[n]` = cohort people with an event
//! (any of their actors in `actor_daily`) on day D+n, for n = 0..=30 and only for days that
//! have begun before `to` (so the vector is shorter for recent cohorts). `retained[0]`
//! equals `users` unless raw events were dropped.
//!
//! Read from `actor_first_seen` and `actor_daily` (set-like tables maintained per batch,
//! exact for late events on both editions), mapped to people through `identity_links` at
//! query time, so a link that arrives later moves the visitor's past days to their user.
//!
//! Invariant: a person counts at most once per (cohort, n), and only in their own cohort.

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
    let params: [&(dyn ToSql + Sync); 3] = [&from, &to, &max_day];
    // Rows with n NULL are cohort sizes; the others retained counts.
    let rows = client
        .query(
            "WITH candidates AS (
                 -- Every person whose first event can lie in the range has an actor first
                 -- seen in it.
                 SELECT DISTINCT COALESCE(l.app_user_id, f.actor) AS person
                 FROM actor_first_seen f
                 LEFT JOIN identity_links l ON l.anonymous_id = f.actor
                 WHERE f.first_seen >= $1 AND f.first_seen < $2
             ),
             cohort AS (
                 SELECT c.person, time_bucket(INTERVAL '1 day', p.first_seen) AS day
                 FROM candidates c
                 CROSS JOIN LATERAL (
                     SELECT min(first_seen) AS first_seen
                     FROM (
                         SELECT first_seen FROM actor_first_seen WHERE actor = c.person
                         UNION ALL
                         SELECT f.first_seen
                         FROM identity_links l
                         JOIN actor_first_seen f ON f.actor = l.anonymous_id
                         WHERE l.app_user_id = c.person
                     ) x
                 ) p
                 WHERE p.first_seen >= $1 AND p.first_seen < $2
             ),
             active AS (
                 SELECT DISTINCT COALESCE(l.app_user_id, a.actor) AS person, a.day
                 FROM actor_daily a
                 LEFT JOIN identity_links l ON l.anonymous_id = a.actor
                 WHERE a.day >= $1 AND a.day < $2
             )
             SELECT (day AT TIME ZONE 'UTC')::DATE, NULL::INT4, count(*)::INT8
             FROM cohort
             GROUP BY day
             UNION ALL
             SELECT (c.day AT TIME ZONE 'UTC')::DATE,
                    round(extract(epoch FROM a.day - c.day) / 86400)::INT4,
                    count(*)::INT8
             FROM cohort c
             JOIN active a ON a.person = c.person
             WHERE a.day >= c.day AND a.day <= c.day + $3::INT4 * INTERVAL '1 day'
             GROUP BY 1, 2",
            &params,
        )
        .await?;
    let (sizes, retained): (Vec<_>, Vec<_>) = rows
        .iter()
        .partition(|r| r.try_get::<_, Option<i32>>(1).ok().flatten().is_none());

    let mut cohorts = Vec::with_capacity(sizes.len());
    for r in sizes {
        let day: Date = r.try_get(0)?;
        cohorts.push(Cohort {
            day,
            users: r.try_get(2)?,
            retained: vec![0; days_reported(day, to)],
        });
    }
    cohorts.sort_by_key(|c| c.day);
    for r in retained {
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
