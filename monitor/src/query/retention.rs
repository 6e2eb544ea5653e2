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
//! Under a filter ([`retention_filtered`]) it is the same definition over only the matching
//! events: a person's cohort is the day of their first *matching* event (so `event=purchase`
//! gives cohorts of first purchases), and `retained[n]` counts cohort people with a matching
//! event on day D+n. It is read from raw events (`person_events`, people as above), so a
//! first matching event older than the raw events' retention is not known: the person then
//! falls in the cohort of their oldest matching event still kept.
//!
//! Invariant: a person counts at most once per (cohort, n), and only in their own cohort.

use std::time::Duration;

use time::{Date, OffsetDateTime};
use tokio_postgres::{types::ToSql, Client};

use super::{check_range, filter::FilterSql, floor_to, Binds, QueryError};
use crate::model::{Cohort, Filter, Range, Retention};

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
            "WITH early AS (
                 -- People with an id first seen before the range: not in any cohort of it.
                 -- Only linked people can have an id outside the range and one inside.
                 SELECT DISTINCT l.app_user_id AS person
                 FROM identity_links l
                 JOIN actor_first_seen f ON f.actor IN (l.anonymous_id, l.app_user_id)
                 WHERE f.first_seen < $1
             ),
             cohort AS (
                 -- Every person first seen in the range has an id first seen in it; their
                 -- first time is the earliest of those ids (ids first seen later cannot
                 -- be earlier).
                 SELECT c.person, time_bucket(INTERVAL '1 day', c.first) AS day
                 FROM (
                     SELECT COALESCE(l.app_user_id, f.actor) AS person, min(f.first_seen) AS first
                     FROM actor_first_seen f
                     LEFT JOIN identity_links l ON l.anonymous_id = f.actor
                     WHERE f.first_seen >= $1 AND f.first_seen < $2
                     GROUP BY 1
                 ) c
                 LEFT JOIN early e ON e.person = c.person
                 WHERE e.person IS NULL
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

/// [`retention`] over the events matching `filter`, from raw events.
pub async fn retention_filtered(
    client: &Client,
    range: Range,
    filter: &Filter,
) -> Result<Retention, QueryError> {
    check_range(range)?;
    let from = floor_to(range.from, DAY);
    let to = range.to;
    let max_day = MAX_DAY as i32;
    let where_sql = FilterSql::new(filter);
    let mut binds = Binds::default();
    let (p1, p2, p3) = (binds.push(&from), binds.push(&to), binds.push(&max_day));
    let cond = where_sql.and("e", &mut binds);
    let sql = format!(
        "WITH ev AS (
             SELECT e.person, e.event_time FROM person_events e
             WHERE e.person IS NOT NULL{cond}
         ),
         cohort AS (
             SELECT person, time_bucket(INTERVAL '1 day', min(event_time)) AS day
             FROM ev
             GROUP BY person
             HAVING min(event_time) >= {p1} AND min(event_time) < {p2}
         ),
         active AS (
             SELECT DISTINCT person, time_bucket(INTERVAL '1 day', event_time) AS day
             FROM ev
             WHERE event_time >= {p1} AND event_time < {p2}
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
         WHERE a.day >= c.day AND a.day <= c.day + {p3}::INT4 * INTERVAL '1 day'
         GROUP BY 1, 2"
    );
    let rows = client.query(&sql, binds.as_slice()).await?;
    let mut cohorts: Vec<Cohort> = Vec::new();
    let mut retained = Vec::new();
    for r in &rows {
        let day: Date = r.try_get(0)?;
        let users: i64 = r.try_get(2)?;
        match r.try_get::<_, Option<i32>>(1)? {
            None => cohorts.push(Cohort {
                day,
                users,
                retained: vec![0; days_reported(day, to)],
            }),
            Some(n) => retained.push((day, n, users)),
        }
    }
    cohorts.sort_by_key(|c| c.day);
    for (day, n, users) in retained {
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
        if params.filter.is_empty() {
            retention(client, params.range).await
        } else {
            retention_filtered(client, params.range, params.filter).await
        }
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
