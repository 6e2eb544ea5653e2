//! The refresh benchmark (`monitor --bench N`, hidden; used by the `bench` command and the
//! e2e latency test): the dashboard's fetch of every analysis, without a terminal.
//!
//! Invariant: it runs exactly the dashboard's fetch ([`super::fetch::fetch_snapshot`]) over the
//! registry's analyses, on one connection, and only prints.

use thiserror::Error;
use time::OffsetDateTime;

use super::fetch;
use crate::{
    analysis::Analysis,
    app::{Fetched, TimeRange},
};

/// Why the benchmark could not run.
#[derive(Debug, Error)]
pub enum BenchError {
    #[error("--bench needs --database-url")]
    NoDatabase,
    /// `--bench-range` is not one of the dashboard's ranges.
    #[error("--bench-range {0:?}: use 15m, 1h, 24h, 7d or 30d")]
    Range(String),
    /// The database could not be reached (the fetch worker's one-line reason).
    #[error("{0}")]
    Connect(String),
}

/// Runs `refreshes` refreshes for `range` back from now, as the dashboard does, on one
/// connection; returns each one's result (with per-query and total times).
pub async fn bench(
    url: &str,
    range: TimeRange,
    steps: &[String],
    refreshes: usize,
) -> Result<Vec<Fetched>, BenchError> {
    let client = fetch::connect(url).await.map_err(BenchError::Connect)?;
    let mut out = Vec::with_capacity(refreshes);
    for _ in 0..refreshes {
        let window = range.window(OffsetDateTime::now_utc());
        let sections: Vec<Analysis> = Analysis::queried().collect();
        let fetched =
            fetch::fetch_snapshot(&client, window, steps, &Default::default(), &sections).await;
        out.push(fetched);
    }
    Ok(out)
}

/// Peak resident memory of this process (VmHWM), in KiB, where /proc tells it.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `monitor --bench N [--bench-range R]` (hidden flags, used by the `bench` command): N
/// refreshes of every analysis for range R without a terminal, one JSON line each, then
/// the peak resident memory.
pub async fn bench_main(
    database_url: Option<String>,
    bench_range: &str,
    steps: &[String],
    refreshes: usize,
) -> Result<i32, BenchError> {
    let url = database_url.ok_or(BenchError::NoDatabase)?;
    let range = TimeRange::ALL
        .into_iter()
        .find(|r| r.label() == bench_range)
        .ok_or_else(|| BenchError::Range(bench_range.to_string()))?;
    let runs = bench(&url, range, steps, refreshes).await?;
    for (i, r) in runs.iter().enumerate() {
        let per_query: serde_json::Map<String, serde_json::Value> = r
            .timings
            .iter()
            .map(|(s, d)| {
                (
                    s.name().to_string(),
                    serde_json::json!(d.as_secs_f64() * 1e3),
                )
            })
            .collect();
        let errors: Vec<String> = r
            .errors
            .iter()
            .map(|(s, e)| format!("{}: {e}", s.name()))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "refresh": i + 1,
                "total_ms": r.total.as_secs_f64() * 1e3,
                "query_ms": per_query,
                "errors": errors,
            })
        );
    }
    println!("{}", serde_json::json!({ "peak_rss_kib": peak_rss_kib() }));
    Ok(0)
}
