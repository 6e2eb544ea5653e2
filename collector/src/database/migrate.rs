//! Schema migrations, embedded in the binary at build time from `migrations/*.sql`.
//!
//! Invariants:
//! - migrations apply in file-name order, each inside one transaction, and each is recorded in
//!   `schema_migrations` in that same transaction, so a migration is either fully applied and
//!   recorded or not at all;
//! - any number of collectors may migrate at once: a session advisory lock serialises them and
//!   each migration is applied exactly once;
//! - a migration may have edition-specific variants: `NNNN_name.apache.sql` and
//!   `NNNN_name.timescale.sql` replace `NNNN_name.sql` on that edition. Aggregates whose SELECT
//!   must be written once use the SQL helper `edge_create_aggregate` (migration 0002) instead.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use super::{edition, DbError, Edition};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

/// An arbitrary constant: the advisory lock key all migrators agree on ("edgemig" in ASCII).
pub const LOCK_KEY: i64 = 0x0065_6467_656d_6967;

/// One logical migration with the variant chosen for an edition.
#[derive(Debug, Clone)]
pub struct Migration {
    /// The version prefix, e.g. `0001`.
    pub version: String,
    /// The file that will run on this edition.
    pub file: &'static str,
    pub sql: &'static str,
}

/// What one `migrate` run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub edition: Edition,
    pub extension_version: String,
    pub applied: Vec<String>,
    pub already_applied: usize,
}

/// The embedded migrations resolved for `edition`, in order.
pub fn plan(edition: Edition) -> Result<Vec<Migration>, DbError> {
    // version -> (generic, apache, timescale)
    let mut by_version: BTreeMap<&str, [Option<(&'static str, &'static str)>; 3]> = BTreeMap::new();
    for &(file, sql) in embedded::FILES {
        let version = file.split('_').next().unwrap_or(file);
        let slot = if file.ends_with(".apache.sql") {
            1
        } else if file.ends_with(".timescale.sql") {
            2
        } else {
            0
        };
        by_version.entry(version).or_default()[slot] = Some((file, sql));
    }
    let wanted = match edition {
        Edition::Apache => 1,
        Edition::Timescale => 2,
    };
    by_version
        .into_iter()
        .map(|(version, variants)| {
            let (file, sql) = variants[wanted]
                .or(variants[0])
                .ok_or_else(|| DbError::MissingVariant(version.to_string()))?;
            Ok(Migration {
                version: version.to_string(),
                file,
                sql,
            })
        })
        .collect()
}

/// Ensures the TimescaleDB extension exists, then applies every pending migration.
pub async fn run(client: &mut Client) -> Result<Report, DbError> {
    run_to(client, None).await
}

/// [`run`], stopping after version `last` (e.g. `0009`) when given: a staged upgrade, and
/// how the tests build a database as an older release left it.
pub async fn run_to(client: &mut Client, last: Option<&str>) -> Result<Report, DbError> {
    let read_only: String = client
        .query_one("SHOW transaction_read_only", &[])
        .await?
        .get(0);
    if read_only == "on" {
        return Err(DbError::ReadOnly);
    }
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let result = run_locked(client, last).await;
    // The lock is session-scoped; release it even when a migration failed.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    result
}

async fn run_locked(client: &mut Client, last: Option<&str>) -> Result<Report, DbError> {
    let extension_version = ensure_extension(client).await?;
    let edition = edition(client).await?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version    TEXT PRIMARY KEY,
                file       TEXT NOT NULL,
                edition    TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let done: Vec<String> = client
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut report = Report {
        edition,
        extension_version,
        applied: Vec::new(),
        already_applied: 0,
    };
    for m in plan(edition)? {
        if last.is_some_and(|l| m.version.as_str() > l) {
            break;
        }
        if done.contains(&m.version) {
            report.already_applied += 1;
            continue;
        }
        apply(client, &m, edition).await?;
        tracing::info!(file = m.file, "applied migration");
        report.applied.push(m.file.to_string());
    }
    Ok(report)
}

async fn apply(client: &mut Client, m: &Migration, edition: Edition) -> Result<(), DbError> {
    let tx = client.transaction().await?;
    for (index, stmt) in super::split::statements(m.sql).into_iter().enumerate() {
        if let Err(source) = tx.batch_execute(stmt).await {
            return Err(DbError::Migration {
                file: m.file.to_string(),
                index: index + 1,
                snippet: snippet(stmt),
                source,
            });
        }
    }
    tx.execute(
        "INSERT INTO schema_migrations (version, file, edition) VALUES ($1, $2, $3)",
        &[&m.version, &m.file, &edition.tag()],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The first line of a statement that is not a comment, shortened for an error message.
fn snippet(stmt: &str) -> String {
    let line = stmt
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("--"))
        .unwrap_or("");
    let mut s: String = line.chars().take(80).collect();
    if line.chars().count() > 80 {
        s.push('…');
    }
    s
}

async fn ensure_extension(client: &Client) -> Result<String, DbError> {
    if let Some(row) = client
        .query_opt(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'",
            &[],
        )
        .await?
    {
        return Ok(row.get(0));
    }
    let available = client
        .query_opt(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'",
            &[],
        )
        .await?;
    if available.is_none() {
        return Err(DbError::ExtensionMissing);
    }
    client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        .await
        .map_err(DbError::ExtensionCreate)?;
    let row = client
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_resolves_on_both_editions() {
        for ed in [Edition::Apache, Edition::Timescale] {
            let plan = plan(ed).expect("plan");
            assert!(!plan.is_empty());
            let mut versions: Vec<_> = plan.iter().map(|m| m.version.clone()).collect();
            versions.dedup();
            assert_eq!(versions.len(), plan.len(), "one file per version");
            for m in &plan {
                let other = match ed {
                    Edition::Apache => ".timescale.sql",
                    Edition::Timescale => ".apache.sql",
                };
                assert!(!m.file.ends_with(other), "{} chosen on {ed}", m.file);
            }
        }
    }
}
