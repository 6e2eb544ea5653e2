//! Retention of raw events, as an operator command (`collector maintain`).
//!
//! On the apache edition nothing drops old data by itself (retention policies are TSL-only),
//! so this drops the chunks of `user_events` and `collector_heartbeats` older than the
//! retention (`edge_drop_expired_events`, migration 0006) and prunes `user_sessions`
//! (`edge_prune_sessions`, migration 0005), in one transaction. On the Community edition
//! the retention policies and the session-pruning job do it (migration 0007): this only
//! reports them and drops nothing.
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
            report.note = "the Community edition applies retention with background jobs \
                (listed); nothing was dropped. Change it with SELECT edge_set_retention(INTERVAL '…')"
                .to_string();
        }
    }
    Ok(report)
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
