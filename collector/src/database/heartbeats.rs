//! The heartbeat table's one statement: stored heartbeats, as JSON rows, into
//! `collector_heartbeats`.
//!
//! Invariant: parameterised (one `jsonb` parameter); a heartbeat sent twice is absorbed by
//! the table's key (`ON CONFLICT DO NOTHING`).

use tokio_postgres::Client;

/// Inserts heartbeats (objects whose keys are the table's columns); returns rows inserted.
pub async fn insert(
    client: &Client,
    rows: &[serde_json::Value],
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO collector_heartbeats \
             SELECT * FROM jsonb_populate_recordset(NULL::collector_heartbeats, $1) \
             ON CONFLICT DO NOTHING",
            &[&serde_json::Value::Array(rows.to_vec())],
        )
        .await
}
