//! A funnel step's drop-off: the sessions that reached step k and did not go on to step
//! k+1 (the funnel view's Enter, `monitor query funnel --drop-off STEP`).
//!
//! Definitions (the funnel's, see [`super::funnel`](mod@super::funnel)): a session is judged on all
//! its events and belongs to the range when its first step-1 event is in `[from, to)`; it reaches
//! step 1 with a step-1 event, and step k when its first step-k event comes strictly after its
//! first step-(k−1) event and it reached step k−1. It *drops off* at step k when it reached k and
//! not k+1; at the last step every session that reached it is listed (it completed the funnel).
//! Each session is listed with its last event (latest event_time, ties: the larger event_id) and
//! its person (README "Metric definitions", through the `person_events` view: the person of its
//! latest event that has one, same ties). Newest last event first (ties: session id, byte order),
//! at most [`DROP_OFF_SESSIONS`]; `total` counts them all.
//!
//! Under a filter ([`drop_off_filtered`]) it is the same definition over only the matching
//! events (step times, last event and person all from them), as the filtered funnel.
//!
//! Invariant: read-only, every value a bind parameter; read from raw events (the sessions
//! with a step-1 event in the range, then all their events), so it agrees with the funnel's
//! counts: `total` for step k is the funnel's sessions(k) − sessions(k+1).

use tokio_postgres::Client;

use super::{check_range, filter::FilterSql, funnel::validate, Binds, QueryError};
use crate::model::{DropOff, DropSession, Filter, Range, DROP_OFF_SESSIONS};

/// The sessions of `range` that reached `steps[step]` (0-based) and not the next step.
pub async fn drop_off(
    client: &Client,
    range: Range,
    steps: &[String],
    step: usize,
) -> Result<DropOff, QueryError> {
    drop_off_filtered(client, range, steps, step, &Filter::default()).await
}

/// [`drop_off`] over the events matching `filter` (empty: the same statement).
pub async fn drop_off_filtered(
    client: &Client,
    range: Range,
    steps: &[String],
    step: usize,
    filter: &Filter,
) -> Result<DropOff, QueryError> {
    check_range(range)?;
    validate(steps)?;
    if step >= steps.len() {
        return Err(QueryError::Steps(format!(
            "step {} does not exist: the funnel has {} steps",
            step + 1,
            steps.len()
        )));
    }
    let n = steps.len();
    // t1..tn: the first time of each step; reached(k): t1 and every later one in order.
    let firsts: Vec<String> = (1..=n)
        .map(|i| format!("min(event_time) FILTER (WHERE event_name = ($3::TEXT[])[{i}]) AS t{i}"))
        .collect();
    let k = step + 1;
    let mut reached: Vec<String> = vec!["t1 IS NOT NULL".into()];
    reached.extend((2..=k).map(|i| format!("t{i} > t{}", i - 1)));
    let not_next = if k < n {
        format!(" AND NOT COALESCE(t{} > t{k}, false)", k + 1)
    } else {
        String::new()
    };
    let steps_param: Vec<String> = steps.to_vec();
    let where_sql = FilterSql::new(filter);
    let mut binds = Binds::default();
    binds.push(&range.from);
    binds.push(&range.to);
    binds.push(&steps_param);
    binds.push(&DROP_OFF_SESSIONS);
    let (cond_e, cond_p) = (
        where_sql.and("e", &mut binds),
        where_sql.and("p", &mut binds),
    );
    let sql = format!(
        "WITH entered AS (
             SELECT DISTINCT e.session_id FROM user_events e
             WHERE e.event_time >= $1 AND e.event_time < $2 AND e.session_id IS NOT NULL
               AND e.event_name = ($3::TEXT[])[1]{cond_e}
         ),
         ev AS (
             SELECT p.session_id, p.event_name, p.event_time, p.event_id, p.person
             FROM person_events p JOIN entered USING (session_id)
             WHERE TRUE{cond_p}
         ),
         firsts AS (
             SELECT session_id, {firsts} FROM ev GROUP BY session_id
         ),
         dropped AS (
             SELECT session_id FROM firsts WHERE t1 >= $1 AND t1 < $2 AND {reached}{not_next}
         ),
         last AS (
             SELECT DISTINCT ON (ev.session_id) ev.session_id, ev.event_name, ev.event_time
             FROM ev JOIN dropped USING (session_id)
             ORDER BY ev.session_id, ev.event_time DESC, ev.event_id DESC
         ),
         who AS (
             SELECT DISTINCT ON (ev.session_id) ev.session_id, ev.person
             FROM ev JOIN dropped USING (session_id)
             WHERE ev.person IS NOT NULL
             ORDER BY ev.session_id, ev.event_time DESC, ev.event_id DESC
         )
         SELECT last.session_id, who.person, last.event_name, last.event_time,
                count(*) OVER ()
         FROM last LEFT JOIN who USING (session_id)
         ORDER BY last.event_time DESC, last.session_id COLLATE \"C\"
         LIMIT $4",
        firsts = firsts.join(", "),
        reached = reached.join(" AND "),
    );
    let rows = client.query(&sql, binds.as_slice()).await?;
    let mut total = 0;
    let mut sessions = Vec::with_capacity(rows.len());
    for r in &rows {
        total = r.try_get(4)?;
        sessions.push(DropSession {
            session_id: r.try_get(0)?,
            person: r.try_get(1)?,
            last_event: r.try_get(2)?,
            last_time: r.try_get(3)?,
        });
    }
    Ok(DropOff {
        steps: steps_param,
        step,
        total,
        sessions,
    })
}

/// A step given on the command line: its 1-based number or its name, as a 0-based index.
pub fn parse_step(steps: &[String], given: &str) -> Result<usize, QueryError> {
    let given = given.trim();
    if let Ok(n) = given.parse::<usize>() {
        if (1..=steps.len()).contains(&n) {
            return Ok(n - 1);
        }
    }
    steps.iter().position(|s| s == given).ok_or_else(|| {
        QueryError::Steps(format!(
            "no step {given:?}: give a number 1..={} or one of {}",
            steps.len(),
            steps.join(", ")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_by_number_or_name() {
        let steps: Vec<String> = ["page_view", "加入购物车", "purchase"]
            .map(String::from)
            .to_vec();
        assert_eq!(parse_step(&steps, "1").ok(), Some(0));
        assert_eq!(parse_step(&steps, "加入购物车").ok(), Some(1));
        assert_eq!(parse_step(&steps, " 3 ").ok(), Some(2));
        assert!(parse_step(&steps, "4").is_err());
        assert!(parse_step(&steps, "0").is_err());
        assert!(parse_step(&steps, "search").is_err());
    }
}
