//! Real client libraries (`tests/sdk/node`, installed pinned by `deploy/install-sdks`) driven
//! against a collector: run a library's script, read what it reported, count the
//! collector's answers.
//!
//! Invariant: a script that fails to run fails the test with its output; nothing here
//! retries.

use std::process::Command;

use serde_json::Value;

use crate::{client, proc::CollectorProc, repo_root};

/// The time of a script's fixed-id message: the same in every run of this process.
pub fn fixed_time() -> &'static str {
    static T: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    T.get_or_init(|| crate::gen::rfc3339(time::OffsetDateTime::now_utc()))
}

/// Runs a library's script (`tests/sdk/node/<lib>.mjs`); the errors it reported.
pub fn run_library(lib: &str, c: &CollectorProc, key: &str, script: &str) -> Vec<String> {
    let dir = repo_root().join("tests/sdk/node");
    let out = Command::new("node")
        .arg(dir.join(format!("{lib}.mjs")))
        .arg(format!("http://{}", c.ingest))
        .arg(key)
        .arg(script)
        .arg(fixed_time())
        .current_dir(&dir)
        .output()
        .expect("node (run deploy/install-sdks first)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{lib}.mjs {script}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("output: {stdout}"));
    v["errors"]
        .as_array()
        .map(|a| a.iter().map(|e| e.to_string()).collect())
        .unwrap_or_default()
}

/// Requests the collector answered on its `batch` endpoint with `status` (its metrics).
pub fn requests(c: &CollectorProc, status: u16) -> f64 {
    let metrics = client::get(c.admin, "/metrics").expect("metrics").body;
    metrics
        .lines()
        .filter(|l| l.starts_with("collector_http_requests_total{"))
        .filter(|l| l.contains("endpoint=\"batch\"") && l.contains(&format!("status=\"{status}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
