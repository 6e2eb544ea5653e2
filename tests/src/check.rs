//! Assertions and probes shared by the end-to-end tests: what a collector holds, the
//! exactly-once count of what reached the database, and JSON equality that tolerates the
//! float digits PostgreSQL prints. One copy here, used by every test file.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    time::Duration,
};

use serde_json::Value;

use crate::{
    client,
    db::{eventually, TestDb},
    proc::{self, CollectorProc},
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
    buffer_stat(c, "buffered_events")
}

/// One number of a running collector's admin `/v1/buffer` (`buffered_events`,
/// `forwarded_total`, …), -1 if unknown.
pub fn buffer_stat(c: &CollectorProc, field: &str) -> i64 {
    client::get(c.admin, "/v1/buffer")
        .map(|r| r.json()[field].as_i64().unwrap_or(-1))
        .unwrap_or(-1)
}

/// How many rows of `user_events` each `event_id` has.
pub async fn event_id_counts(db: &TestDb) -> HashMap<String, i64> {
    let c = db.client().await.expect("client");
    let rows = c
        .query(
            "SELECT event_id::text, count(*) FROM user_events GROUP BY 1",
            &[],
        )
        .await
        .expect("rows");
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// `collector buffer export [--remove] --data-dir <data_dir> --out <out>` on a stopped
/// collector's buffer; it must exit 0.
pub fn export_buffer(data_dir: &Path, out: &Path, remove: bool) {
    let data_dir = data_dir.display().to_string();
    let out = out.display().to_string();
    let mut args = vec!["buffer", "export"];
    if remove {
        args.push("--remove");
    }
    args.extend(["--data-dir", &data_dir, "--out", &out]);
    let (code, _, err) = proc::collector(&args, &[]).expect("export");
    assert_eq!(code, 0, "{err}");
}

/// A collector that cannot store (its disk is full) is still running and not ready.
pub fn assert_survives_full_disk(c: &mut CollectorProc) {
    assert!(c.is_running(), "the collector survives a full disk");
    let ready = client::get(c.ingest, "/ready").expect("ready");
    assert_eq!(
        ready.status, 503,
        "not ready while it cannot store: {}",
        ready.body
    );
}

/// Every acknowledged id exactly once, no row twice.
pub async fn assert_exactly_once(db: &TestDb, acked: &HashSet<String>) {
    let counts = event_id_counts(db).await;
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

/// Waits until `user_events` holds at least `n` rows while a drain is making progress:
/// gives up when the count has not grown for `stall`, or after 15 minutes in all. For
/// backlogs of hundreds of thousands of events, whose drain time follows the machine's speed
/// and the edition's per-batch maintenance, where a fixed deadline fails a slow but healthy
/// drain; returns the count.
pub async fn wait_rows_draining(db: &TestDb, n: i64, stall: Duration) -> i64 {
    let start = std::time::Instant::now();
    let (mut rows, mut grew) = (-1_i64, start);
    while start.elapsed() < Duration::from_secs(900) && grew.elapsed() <= stall {
        let now = db.count_events().await.map(|(rows, _)| rows).unwrap_or(-1);
        if now >= n {
            return now;
        }
        if now > rows {
            (rows, grew) = (now, std::time::Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    rows
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

/// JSON equality, except that floats equal to 14 significant digits are equal: serde_json
/// (without its `float_roundtrip` feature) parses some decimal texts to a neighbour of the
/// nearest double, and PostgreSQL prints JSONB numbers as plain decimals (1e177 as 178
/// digits) that serde_json reads back a few ULPs off. A test that needs the exact
/// comparison asks PostgreSQL.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x == y {
                return true;
            }
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-14 * x.abs().max(y.abs()),
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}
