//! Ordered funnels within sessions.
//!
//! Definition: only events with event_time in `[from, to)` and a session_id count. A
//! session enters the funnel when it has a step-1 event; it reaches step k (k > 1) when the
//! first occurrence of step k in the session comes strictly after the first occurrence of
//! step k-1, and it reached step k-1. `step_conversion` = sessions(k) / sessions(k-1) (1 for
//! step 1), `overall_conversion` = sessions(k) / sessions(1); a rate with a zero denominator
//! is 0.
//!
//! Only the first time of each step per session matters, and the first time over a range is
//! the min over any partition of it. So when every step is one of the four the
//! `user_session_funnel` aggregate tracks, the whole hours of the range come from it and the
//! partial hours at the edges from raw events, merged per session with min(); any other
//! step list is read from raw events (bounded by the range).
//!
//! Invariant: the result equals the definition evaluated over the raw events of the range,
//! whichever path is taken.

use std::time::Duration;

use tokio_postgres::Client;

use super::{check_range, ratio, split, Binds, QueryError};
use crate::model::{Funnel, FunnelStep, Range};

/// The seed's funnel.
pub const DEFAULT_STEPS: [&str; 4] = ["page_view", "add_to_cart", "checkout_start", "purchase"];

/// Steps the `user_session_funnel` aggregate has a first-time column for.
const AGGREGATE_COLUMNS: [(&str, &str); 4] = [
    ("page_view", "page_view_time"),
    ("add_to_cart", "add_to_cart_time"),
    ("checkout_start", "checkout_start_time"),
    ("purchase", "purchase_time"),
];

/// The aggregate's bucket width.
const BUCKET: Duration = Duration::from_secs(3600);

/// The most steps a funnel may have.
pub const MAX_STEPS: usize = 16;

pub async fn funnel(client: &Client, range: Range, steps: &[String]) -> Result<Funnel, QueryError> {
    check_range(range)?;
    validate(steps)?;
    let steps: Vec<String> = steps.to_vec();
    let columns: Option<Vec<&str>> = steps.iter().map(|s| aggregate_column(s)).collect();
    let parts = split(range, BUCKET);

    let mut params = Binds::default();
    let mut steps_param: Option<String> = None;
    let mut selects = Vec::new();
    let raw_pieces: Vec<_> = match (&columns, &parts.aggregate) {
        (Some(columns), Some((a, b))) => {
            let (pa, pb) = (params.push(a), params.push(b));
            let cols: Vec<String> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c} AS t{}", i + 1))
                .collect();
            selects.push(format!(
                "SELECT session_id, {} FROM user_session_funnel WHERE bucket >= {pa} AND bucket < {pb}",
                cols.join(", ")
            ));
            parts.raw.clone()
        }
        _ => vec![(range.from, range.to)],
    };
    for (from, to) in &raw_pieces {
        let steps_param = steps_param
            .get_or_insert_with(|| params.push(&steps))
            .clone();
        let (pf, pt) = (params.push(from), params.push(to));
        let cols: Vec<String> = (1..=steps.len())
            .map(|i| format!("min(event_time) FILTER (WHERE event_name = ({steps_param}::TEXT[])[{i}]) AS t{i}"))
            .collect();
        selects.push(format!(
            "SELECT session_id, {} FROM user_events
             WHERE event_time >= {pf} AND event_time < {pt}
               AND session_id IS NOT NULL AND event_name = ANY({steps_param}::TEXT[])
             GROUP BY session_id",
            cols.join(", ")
        ));
    }
    let merged: Vec<String> = (1..=steps.len())
        .map(|i| format!("min(t{i}) AS t{i}"))
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
        "WITH parts AS ({}),
         sessions AS (
             SELECT session_id, {} FROM parts GROUP BY session_id HAVING min(t1) IS NOT NULL
         )
         SELECT {} FROM sessions",
        selects.join(" UNION ALL "),
        merged.join(", "),
        counts.join(", ")
    );
    let row = client.query_one(&sql, params.as_slice()).await?;
    let mut counts = Vec::with_capacity(steps.len());
    for i in 0..steps.len() {
        counts.push(row.try_get::<_, i64>(i)?);
    }
    Ok(build(&steps, &counts))
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

fn aggregate_column(step: &str) -> Option<&'static str> {
    AGGREGATE_COLUMNS
        .iter()
        .find(|(name, _)| *name == step)
        .map(|(_, col)| *col)
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
        funnel(client, params.range, params.steps).await
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
    fn known_steps_map_to_columns() {
        assert_eq!(aggregate_column("purchase"), Some("purchase_time"));
        assert_eq!(aggregate_column("search"), None);
    }
}
