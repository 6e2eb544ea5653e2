//! Migration 0013's activity rollups (and the minute grains of 0017 and 0018) against a from-scratch recomputation: the tables as
//! the forwarder's batches left them are copied aside, `edge_rebuild_activity()` recomputes
//! them from `user_events` and `identity_links` inside a transaction that is rolled back,
//! and every table must hold the same rows (histogram and counter rows at zero are ignored:
//! a bucket everyone left stays at 0).
//!
//! Invariant: the database is left as it was (the rebuild is rolled back).

use tokio_postgres::Client;

/// Each table and the columns compared (rows of zero counts dropped).
const TABLES: [(&str, &str); 8] = [
    (
        "activity_person_last",
        "SELECT dim, value, person, last_at FROM activity_person_last",
    ),
    (
        "activity_last_hourly",
        "SELECT * FROM activity_last_hourly WHERE people <> 0",
    ),
    (
        "activity_last_daily",
        "SELECT * FROM activity_last_daily WHERE people <> 0",
    ),
    (
        "activity_last_minute",
        "SELECT * FROM activity_last_minute WHERE people <> 0",
    ),
    (
        "activity_events_hourly",
        "SELECT * FROM activity_events_hourly WHERE events <> 0",
    ),
    (
        "activity_events_daily",
        "SELECT * FROM activity_events_daily WHERE events <> 0",
    ),
    (
        "activity_events_minute",
        "SELECT * FROM activity_events_minute WHERE events <> 0",
    ),
    ("activity_links", "SELECT * FROM activity_links"),
];

/// Compares every activity table with its recomputation; returns the differences, if
/// any, as a readable message (table, rows only in the maintained copy, rows only in the
/// recomputation).
pub async fn differences_from_rebuild(c: &Client) -> anyhow::Result<Option<String>> {
    c.batch_execute("BEGIN").await?;
    let result = compare(c).await;
    c.batch_execute("ROLLBACK").await?;
    result
}

async fn compare(c: &Client) -> anyhow::Result<Option<String>> {
    for (i, (_, select)) in TABLES.iter().enumerate() {
        c.batch_execute(&format!(
            "CREATE TEMP TABLE activity_kept_{i} ON COMMIT DROP AS {select}"
        ))
        .await?;
    }
    c.batch_execute("SELECT edge_rebuild_activity()").await?;
    let mut report = String::new();
    for (i, (table, select)) in TABLES.iter().enumerate() {
        let kept = format!("SELECT * FROM activity_kept_{i}");
        let only =
            |a: String, b: String| format!("SELECT x::TEXT FROM ({a} EXCEPT ALL {b}) x LIMIT 5");
        let only_kept: Vec<String> = c
            .query(&only(kept.clone(), select.to_string()), &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let only_rebuilt: Vec<String> = c
            .query(&only(select.to_string(), kept), &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !only_kept.is_empty() || !only_rebuilt.is_empty() {
            report.push_str(&format!(
                "{table}: maintained only {only_kept:?}; recomputed only {only_rebuilt:?}\n"
            ));
        }
    }
    Ok((!report.is_empty()).then_some(report))
}

/// Rows in each activity table (to show a comparison is not over empty tables).
pub async fn row_count(c: &Client) -> anyhow::Result<i64> {
    Ok(
        c.query_one("SELECT count(*) FROM activity_person_last", &[])
            .await?
            .try_get(0)?,
    )
}
