//! Assertions and probes shared by the end-to-end tests: what a collector holds, and the
//! exactly-once count of what reached the database. One copy here, used by every test file.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use serde_json::Value;

use crate::{
    client,
    db::{eventually, TestDb},
    proc::CollectorProc,
};

/// The `event_id`s of generated events.
pub fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Events a running collector holds in its buffer (its admin `/v1/buffer`), -1 if unknown.
pub fn buffered(c: &CollectorProc) -> i64 {
    client::get(c.admin, "/v1/buffer")
        .map(|r| r.json()["buffered_events"].as_i64().unwrap_or(-1))
        .unwrap_or(-1)
}

/// Every acknowledged id exactly once, no row twice.
pub async fn assert_exactly_once(db: &TestDb, acked: &HashSet<String>) {
    let c = db.client().await.expect("client");
    let rows = c
        .query(
            "SELECT event_id::text, count(*) FROM user_events GROUP BY 1",
            &[],
        )
        .await
        .expect("rows");
    let counts: HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let doubled = counts.values().filter(|n| **n > 1).count();
    let missing = acked.iter().filter(|id| !counts.contains_key(*id)).count();
    assert_eq!(doubled, 0, "rows landed twice");
    assert_eq!(
        missing,
        0,
        "{missing} acknowledged events are missing (of {})",
        acked.len()
    );
}

/// Waits (up to `timeout`) until `user_events` holds at least `n` rows; returns the count.
pub async fn wait_rows(db: &TestDb, n: i64, timeout: Duration) -> i64 {
    eventually(timeout, || {
        let db = &db;
        async move {
            db.count_events()
                .await
                .map(|(rows, _)| rows >= n)
                .unwrap_or(false)
        }
    })
    .await;
    db.count_events().await.map(|(rows, _)| rows).unwrap_or(-1)
}
