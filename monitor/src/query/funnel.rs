//! Ordered funnels within sessions.
//!
//! Definition: a session (a session_id) is judged on all its events: the first time of
//! each step is the session's first event with that name, whenever it happened. It reaches
//! step 1 when it has a step-1 event, step k (k > 1) when its first step-k event comes
//! strictly after its first step-(k−1) event and it reached step k−1. It counts in the range
//! `[from, to)` when its first step-1 event is in the range. `step_conversion` =
//! sessions(k) / sessions(k−1) (1 for step 1), `overall_conversion` = sessions(k) /
//! sessions(1); a rate with a zero denominator is 0.
//!
//! When the steps are the seed's funnel (or a prefix of it), the counts come from the
//! counters of migration 0012 (`rollup_funnel_hourly`: sessions per hour of their first
//! page_view and level reached, maintained per batch from the rows really inserted) for the
//! whole hours of the range, from their minute grain (0017, `rollup_funnel_minute`) for the
//! whole minutes of its partial hours, and from `session_funnel` (each session's first
//! times, indexed by entry time) for the partial minutes at its edges: the cost follows the
//! number of buckets.
//! Any other step list is computed from raw events: the sessions with a step-1 event in the
//! range, then all their events (slower: it grows with the sessions in the range).
//!
//! Under a filter ([`crate::model::Filter`]), the funnel is the definition evaluated over
//! only the matching events: a session's step times are those of its matching events (a
//! filter on `event` leaves at most one step), always from raw events.
//!
//! Invariant: the result equals the definition evaluated over the raw events, whichever
//! path is taken.

use std::time::Duration;

use tokio_postgres::Client;

use super::{check_range, filter::FilterSql, ratio, split_grains, Binds, QueryError};
use crate::model::{Filter, Funnel, FunnelStep, Range};

/// The seed's funnel.
pub const DEFAULT_STEPS: [&str; 4] = ["page_view", "add_to_cart", "checkout_start", "purchase"];

/// The counters' grains, coarsest first (migrations 0012 and 0017).
const GRAINS: [(&str, Duration); 2] = [
    ("rollup_funnel_hourly", Duration::from_secs(3600)),
    ("rollup_funnel_minute", Duration::from_secs(60)),
];

/// The most steps a funnel may have.
pub const MAX_STEPS: usize = 16;

pub async fn funnel(client: &Client, range: Range, steps: &[String]) -> Result<Funnel, QueryError> {
    check_range(range)?;
    validate(steps)?;
    let counts = if is_default_prefix(steps) {
        from_rollup(client, range, steps.len()).await?
    } else {
        from_raw(client, range, steps).await?
    };
    Ok(build(steps, &counts))
}

/// The funnel over the events matching `filter` (from raw events).
pub async fn funnel_filtered(
    client: &Client,
    range: Range,
    steps: &[String],
    filter: &Filter,
) -> Result<Funnel, QueryError> {
    check_range(range)?;
    validate(steps)?;
    let counts = from_raw_where(client, range, steps, filter).await?;
    Ok(build(steps, &counts))
}

fn is_default_prefix(steps: &[String]) -> bool {
    steps.len() <= DEFAULT_STEPS.len() && steps.iter().zip(DEFAULT_STEPS).all(|(a, b)| a == b)
}

/// Sessions reaching each of the first `n` default steps: each piece of the range from the
/// coarsest counters that cover it whole (hours, then minutes), the partial minutes at its
/// edges from the sessions' first times.
async fn from_rollup(client: &Client, range: Range, n: usize) -> Result<Vec<i64>, QueryError> {
    let parts = split_grains(range, &GRAINS);
    let mut params = Binds::default();
    let mut selects = Vec::new();
    for (table, a, b) in &parts.tables {
        let (pa, pb) = (params.push(a), params.push(b));
        selects.push(format!(
            "SELECT level, sessions FROM {table} WHERE bucket >= {pa} AND bucket < {pb}"
        ));
    }
    for (a, b) in &parts.raw {
        let (pa, pb) = (params.push(a), params.push(b));
        selects.push(format!(
            "SELECT edge_funnel_level(page_view_time, add_to_cart_time, checkout_start_time,
                                      purchase_time), 1::INT8
             FROM session_funnel WHERE page_view_time >= {pa} AND page_view_time < {pb}"
        ));
    }
    let sql = format!(
        "SELECT level, sum(sessions)::INT8 FROM ({}) t (level, sessions) GROUP BY level",
        selects.join(" UNION ALL ")
    );
    let rows = client.query(&sql, params.as_slice()).await?;
    let mut counts = vec![0i64; n];
    for r in &rows {
        let level: i32 = r.try_get(0)?;
        let sessions: i64 = r.try_get(1)?;
        for (k, c) in counts.iter_mut().enumerate() {
            if level as usize > k {
                *c += sessions;
            }
        }
    }
    Ok(counts)
}

/// Any step list, from raw events.
async fn from_raw(client: &Client, range: Range, steps: &[String]) -> Result<Vec<i64>, QueryError> {
    from_raw_where(client, range, steps, &Filter::default()).await
}

/// Any step list over the events matching `filter`, from raw events.
async fn from_raw_where(
    client: &Client,
    range: Range,
    steps: &[String],
    filter: &Filter,
) -> Result<Vec<i64>, QueryError> {
    let steps_v: Vec<String> = steps.to_vec();
    let where_sql = FilterSql::new(filter);
    let mut binds = Binds::default();
    binds.push(&range.from);
    binds.push(&range.to);
    binds.push(&steps_v);
    let cond = where_sql.and("e", &mut binds);
    let cols: Vec<String> = (1..=steps.len())
        .map(|i| {
            format!("min(e.event_time) FILTER (WHERE e.event_name = ($3::TEXT[])[{i}]) AS t{i}")
        })
        .collect();
    let counts: Vec<String> = (1..=steps.len())
        .map(|k| {
            let chain: Vec<String> = (2..=k).map(|i| format!("t{i} > t{}", i - 1)).collect();
            if chain.is_empty() {
                "count(*)::INT8".to_string()
            } else {
                format!("(count(*) FILTER (WHERE {}))::INT8", chain.join(" AND "))
            }
        })
        .collect();
    let sql = format!(
        "WITH entered AS (
             SELECT DISTINCT e.session_id FROM user_events e
             WHERE e.event_time >= $1 AND e.event_time < $2
               AND e.session_id IS NOT NULL AND e.event_name = ($3::TEXT[])[1]{cond}
         ),
         sessions AS (
             SELECT e.session_id, {}
             FROM entered s JOIN user_events e ON e.session_id = s.session_id
             WHERE e.event_name = ANY($3::TEXT[]){cond}
             GROUP BY e.session_id
         )
         SELECT {} FROM sessions WHERE t1 >= $1 AND t1 < $2",
        cols.join(", "),
        counts.join(", ")
    );
    let row = client.query_one(&sql, binds.as_slice()).await?;
    let mut out = Vec::with_capacity(steps.len());
    for i in 0..steps.len() {
        out.push(row.try_get::<_, i64>(i)?);
    }
    Ok(out)
}

/// Steps must be 1..=MAX_STEPS distinct, non-empty names.
pub fn validate(steps: &[String]) -> Result<(), QueryError> {
    if steps.is_empty() {
        return Err(QueryError::Steps("at least one step is needed".into()));
    }
    if steps.len() > MAX_STEPS {
        return Err(QueryError::Steps(format!(
            "{} steps, at most {MAX_STEPS} allowed",
            steps.len()
        )));
    }
    for (i, s) in steps.iter().enumerate() {
        if s.trim().is_empty() {
            return Err(QueryError::Steps(format!("step {} is empty", i + 1)));
        }
        if steps[..i].contains(s) {
            return Err(QueryError::Steps(format!(
                "{s:?} appears twice (a step's first occurrence cannot follow itself)"
            )));
        }
    }
    Ok(())
}

/// The funnel's rates from per-step session counts.
pub fn build(steps: &[String], counts: &[i64]) -> Funnel {
    let first = counts.first().copied().unwrap_or(0);
    let steps = steps
        .iter()
        .zip(counts)
        .enumerate()
        .map(|(i, (name, &sessions))| {
            let (step_conversion, overall_conversion) = if i == 0 {
                let r = if sessions > 0 { 1.0 } else { 0.0 };
                (r, r)
            } else {
                (ratio(sessions, counts[i - 1]), ratio(sessions, first))
            };
            FunnelStep {
                name: name.clone(),
                sessions,
                step_conversion,
                overall_conversion,
            }
        })
        .collect();
    Funnel { steps }
}

impl super::Query for Funnel {
    async fn run(
        client: &Client,
        params: crate::analysis::Params<'_>,
    ) -> Result<Funnel, QueryError> {
        if params.filter.is_empty() {
            funnel(client, params.range, params.steps).await
        } else {
            funnel_filtered(client, params.range, params.steps, params.filter).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn rates() {
        let f = build(&s(&["a", "b", "c"]), &[10, 4, 0]);
        assert_eq!(f.steps[0].step_conversion, 1.0);
        assert_eq!(f.steps[1].step_conversion, 0.4);
        assert_eq!(f.steps[1].overall_conversion, 0.4);
        assert_eq!(f.steps[2].step_conversion, 0.0);
        let empty = build(&s(&["a", "b"]), &[0, 0]);
        assert_eq!(empty.steps[0].step_conversion, 0.0);
        assert_eq!(empty.steps[1].overall_conversion, 0.0);
    }

    #[test]
    fn step_validation() {
        assert!(validate(&s(&["page_view", "purchase"])).is_ok());
        assert!(validate(&[]).is_err());
        assert!(validate(&s(&["a", "a"])).is_err());
        assert!(validate(&s(&["a", " "])).is_err());
    }

    #[test]
    fn prefixes_of_the_seed_funnel_use_the_counters() {
        assert!(is_default_prefix(&s(&["page_view", "add_to_cart"])));
        assert!(is_default_prefix(&s(&DEFAULT_STEPS)));
        assert!(!is_default_prefix(&s(&["add_to_cart", "purchase"])));
        assert!(!is_default_prefix(&s(&["page_view", "search"])));
    }
}
