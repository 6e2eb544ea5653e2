//! Retention of raw events, as an operator command (`collector maintain`).
//!
//! On the apache edition nothing drops old data by itself (retention policies are TSL-only),
//! so this drops the chunks of `user_events` and `collector_heartbeats` older than the
//! retention (`edge_drop_expired_events`, migration 0006) and prunes `user_sessions`
//! (`edge_prune_sessions`, migration 0005), in one transaction. On the Community edition
//! the retention policies and the session-pruning job do it (migration 0007): this
//! reports them and drops nothing, and it refreshes every continuous aggregate over
//! `[now − retention + 1 day, now − edge_refresh_window()]`: the policies refresh only the last 8 days, so late
//! events older than that (a long outage's backlog, an import; accepted up to
//! `max_event_age_secs`) would otherwise never be materialized. TimescaleDB recomputes only
//! the invalidated regions of that range, so a run without late data costs little. The
//! range starts a day inside the raw retention: a refresh where raw chunks were dropped
//! would empty the aggregates' buckets there (FACTS.md). Run it daily on both editions.
//!
//! Invariant: raw events are never dropped inside the aggregates' refresh window; the
//! database refuses a retention shorter than `edge_min_retention()` (SQLSTATE 22023).

use std::time::Duration;

use serde::Serialize;
use tokio_postgres::Client;

use super::{edition, DbError, Edition};

/// What one maintenance run did (or, on the Community edition, which jobs do it).
#[derive(Debug, Clone, Serialize)]
pub struct MaintenanceReport {
    pub edition: Edition,
    /// The retention asked for, in seconds.
    pub retention_seconds: u64,
    /// Chunks dropped (`_timescaledb_internal._hyper_…`), oldest first.
    pub dropped_chunks: Vec<String>,
    /// Sessions deleted from `user_sessions`.
    pub sessions_pruned: i64,
    /// The background jobs that apply retention on the Community edition.
    pub policies: Vec<String>,
    /// Continuous aggregates refreshed for late data older than the refresh window
    /// (Community edition).
    pub refreshed: Vec<String>,
    /// One sentence for the operator.
    pub note: String,
}

/// Applies `retention` on the apache edition; reports the policies on the Community one.
pub async fn run(client: &Client, retention: Duration) -> Result<MaintenanceReport, DbError> {
    let edition = edition(client).await?;
    let secs = retention.as_secs_f64();
    let mut report = MaintenanceReport {
        edition,
        retention_seconds: retention.as_secs(),
        dropped_chunks: Vec::new(),
        sessions_pruned: 0,
        policies: Vec::new(),
        refreshed: Vec::new(),
        note: String::new(),
    };
    match edition {
        Edition::Apache => {
            client.batch_execute("BEGIN").await?;
            let result = apply(client, secs, &mut report).await;
            let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
            let ended = client.batch_execute(end).await;
            result?;
            ended?;
            report.note = format!(
                "dropped {} chunk(s) and {} session(s) older than {}",
                report.dropped_chunks.len(),
                report.sessions_pruned,
                human(retention)
            );
        }
        Edition::Timescale => {
            // The same bound as on apache, so a retention means the same on both editions.
            client
                .execute(
                    "SELECT edge_check_retention(make_interval(secs => $1))",
                    &[&secs],
                )
                .await?;
            let rows = client
                .query(
                    "SELECT format('job %s: %s on %s (%s)', job_id, proc_name,
                                   COALESCE(hypertable_name::TEXT, '-'), config::TEXT)
                     FROM timescaledb_information.jobs
                     WHERE proc_name IN ('policy_retention', 'edge_prune_sessions_job')
                     ORDER BY job_id",
                    &[],
                )
                .await?;
            report.policies = rows
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            report.refreshed = refresh_late(client, secs).await?;
            report.note = format!(
                "the Community edition applies retention with background jobs (listed); nothing \
                 was dropped (change it with SELECT edge_set_retention(INTERVAL '…')); {} \
                 continuous aggregate(s) refreshed for late events older than the refresh window",
                report.refreshed.len()
            );
        }
    }
    Ok(report)
}

/// Refreshes each continuous aggregate of the schema from a day inside the raw retention
/// up to the start of the policies' window. `CALL refresh_continuous_aggregate` must run outside a transaction block: each is
/// its own statement, its arguments bind parameters (the name read from the catalog).
async fn refresh_late(client: &Client, retention_secs: f64) -> Result<Vec<String>, DbError> {
    let views: Vec<String> = client
        .query(
            "SELECT format('%I.%I', view_schema, view_name)
             FROM timescaledb_information.continuous_aggregates
             WHERE view_schema = 'public'
             ORDER BY view_name",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    for view in &views {
        client
            .execute(
                "CALL refresh_continuous_aggregate($1::TEXT::REGCLASS,
                     now() - make_interval(secs => $2) + INTERVAL '1 day',
                     now() - edge_refresh_window())",
                &[view, &retention_secs],
            )
            .await?;
    }
    Ok(views)
}

async fn apply(client: &Client, secs: f64, report: &mut MaintenanceReport) -> Result<(), DbError> {
    let rows = client
        .query(
            "SELECT edge_drop_expired_events(make_interval(secs => $1))",
            &[&secs],
        )
        .await?;
    report.dropped_chunks = rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    report.sessions_pruned = client
        .query_one(
            "SELECT edge_prune_sessions(make_interval(secs => $1))",
            &[&secs],
        )
        .await?
        .try_get(0)?;
    Ok(())
}

fn human(d: Duration) -> String {
    format!("{:.1} days", d.as_secs_f64() / 86_400.0)
}
