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
//! Read from the counters of migration 0014 (`rollup_retention`: people per (cohort, n),
//! n = -1 the cohort's size), maintained per batch in the forwarder's transaction from
//! `actor_first_seen`, `actor_daily` and `identity_links`, exact under replays, late events
//! and links that arrive later or are replaced by earlier ones (a linked visitor's past
//! days move to their user). The cost follows the number of cohort days (at most 31 × 32
//! cells), not of events. The one partial bucket is the day holding `to` when `to` is not
//! a midnight: its counters also hold the people first seen after `to` that day, who are
//! subtracted (found through `actor_first_seen`'s time index, usually none).
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

use time::{Date, OffsetDateTime, UtcOffset};
use tokio_postgres::{types::ToSql, Client};

use super::{check_range, filter::FilterSql, floor_to, Binds, QueryError};
use crate::model::{Cohort, Filter, Range, Retention};

/// Days after the cohort day that are reported: n = 0..=MAX_DAY.
pub const MAX_DAY: i64 = 30;
const DAY: Duration = Duration::from_secs(86_400);

pub async fn retention(client: &Client, range: Range) -> Result<Retention, QueryError> {
    check_range(range)?;
    let first = floor_to(range.from, DAY).to_offset(UtcOffset::UTC).date();
    let to = range.to;
    let to_day = floor_to(to, DAY);
    // The last cohort: the day holding `to`, or the day before when `to` is a midnight.
    let (last, late_end) = if to_day == to {
        let day = to_day.to_offset(UtcOffset::UTC).date();
        (day.previous_day().unwrap_or(day), to)
    } else {
        (to_day.to_offset(UtcOffset::UTC).date(), to_day + DAY)
    };
    let params: [&(dyn ToSql + Sync); 4] = [&first, &last, &to, &late_end];
    // Rows with n = -1 are cohort sizes; the others retained counts.
    let rows = client
        .query(
            "SELECT cohort, n::INT4, sum(people)::INT8
             FROM (
                 SELECT cohort, n, people
                 FROM rollup_retention
                 WHERE cohort >= $1 AND cohort <= $2 AND (n < 0 OR cohort + n::INT4 <= $2)
                 UNION ALL
                 -- People of the last cohort first seen at or after `to`: not in the range.
                 SELECT $2, x.n, -count(*)
                 FROM retention_person p
                 CROSS JOIN (VALUES (-1::SMALLINT), (0::SMALLINT)) x(n)
                 WHERE p.first_seen >= $3 AND p.first_seen < $4
                   AND (x.n < 0 OR p.days & 1 = 1)
                   -- (An array: primary-key probes for the few people, never a scan.)
                   AND p.person = ANY (ARRAY(
                       SELECT COALESCE(l.app_user_id, f.actor)
                       FROM actor_first_seen f
                       LEFT JOIN identity_links l ON l.anonymous_id = f.actor
                       WHERE f.first_seen >= $3 AND f.first_seen < $4
                   ))
                 GROUP BY x.n
             ) c
             GROUP BY 1, 2",
            &params,
        )
        .await?;
    let mut cohorts: Vec<Cohort> = Vec::new();
    let mut retained: Vec<(Date, usize, i64)> = Vec::new();
    for r in &rows {
        let day: Date = r.try_get(0)?;
        let n: i32 = r.try_get(1)?;
        let people: i64 = r.try_get(2)?;
        match usize::try_from(n) {
            Err(_) if people > 0 => cohorts.push(Cohort {
                day,
                users: people,
                retained: vec![0; days_reported(day, to)],
            }),
            Err(_) => {}
            Ok(n) => retained.push((day, n, people)),
        }
    }
    cohorts.sort_by_key(|c| c.day);
    for (day, n, people) in retained {
        let k = cohorts.binary_search_by_key(&day, |c| c.day).ok();
        if let Some(slot) = k
            .and_then(|k| cohorts.get_mut(k))
            .and_then(|c| c.retained.get_mut(n))
        {
            *slot = people;
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
