//! Real client libraries (`tests/sdk/node`, and `tests/sdk/python` in the venv
//! `.local/sdk-venv`, both installed pinned by `deploy/install-sdks`) driven against a
//! collector: run a library's script, read what it reported, count the collector's answers.
//!
//! Invariant: a script that fails to run fails the test with its output; nothing here
//! retries.

use std::process::Command;

use serde_json::Value;

use crate::{check::wait_rows, client, db::TestDb, proc::CollectorProc, repo_root};

/// The time of a script's fixed-id message: the same in every run of this process.
pub fn fixed_time() -> &'static str {
    static T: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    T.get_or_init(|| crate::gen::rfc3339(time::OffsetDateTime::now_utc()))
}

/// The Python of the SDK venv (`deploy/install-sdks`).
pub fn python() -> std::path::PathBuf {
    repo_root().join(".local/sdk-venv/bin/python")
}

/// Runs a library's script — `tests/sdk/node/<lib>.mjs`, or for `python/<lib>`
/// `tests/sdk/python/<lib>_driver.py` — with the collector's URL, the key, the script's name and
/// [`fixed_time`]; the errors the library reported.
pub fn run_library(lib: &str, c: &CollectorProc, key: &str, script: &str) -> Vec<String> {
    let (mut cmd, dir) = match lib.strip_prefix("python/") {
        Some(name) => {
            let dir = repo_root().join("tests/sdk/python");
            let mut cmd = Command::new(python());
            cmd.arg(dir.join(format!("{name}_driver.py")));
            (cmd, dir)
        }
        None => {
            let dir = repo_root().join("tests/sdk/node");
            let mut cmd = Command::new("node");
            cmd.arg(dir.join(format!("{lib}.mjs")));
            (cmd, dir)
        }
    };
    let out = cmd
        .arg(format!("http://{}", c.ingest))
        .arg(key)
        .arg(script)
        .arg(fixed_time())
        .current_dir(&dir)
        .output()
        .expect("node / the SDK venv's python (run deploy/install-sdks first)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{lib} {script}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("output: {stdout}"));
    v["errors"]
        .as_array()
        .map(|a| a.iter().map(|e| e.to_string()).collect())
        .unwrap_or_default()
}

/// Event requests (the `batch` and `track` endpoints) the collector answered with `status`
/// (its metrics).
pub fn requests(c: &CollectorProc, status: u16) -> f64 {
    let metrics = client::get(c.admin, "/metrics").expect("metrics").body;
    metrics
        .lines()
        .filter(|l| l.starts_with("collector_http_requests_total{"))
        .filter(|l| l.contains("endpoint=\"batch\"") || l.contains("endpoint=\"track\""))
        .filter(|l| l.contains(&format!("status=\"{status}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What every library must show after its first run of the `journey` script: run again,
/// the resent message (same id and time) lands once, so `user_events` ends with
/// `rows_after` rows and one `purchase`; a wrong key is reported by the library and answered
/// 401; the `invalid` script's permanent 400 is sent exactly once (not retried).
pub async fn assert_resend_wrong_key_and_400(
    lib: &str,
    db: &TestDb,
    c: &CollectorProc,
    key: &str,
    rows_after: i64,
) {
    let errors = run_library(lib, c, key, "journey");
    assert!(errors.is_empty(), "{lib}: {errors:?}");
    assert_eq!(
        wait_rows(db, rows_after, std::time::Duration::from_secs(30)).await,
        rows_after
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    let client = db.client().await.expect("client");
    let purchases: i64 = client
        .query_one(
            "SELECT count(*) FROM user_events WHERE event_name = 'purchase'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(purchases, 1, "{lib}: the resent message landed once");

    let errors = run_library(lib, c, "not-the-key", "journey");
    assert!(!errors.is_empty(), "{lib}: a wrong key is reported");
    assert!(requests(c, 401) >= 1.0, "{lib}: answered 401");

    let before = requests(c, 400);
    let errors = run_library(lib, c, key, "invalid");
    assert!(!errors.is_empty(), "{lib}: the refusal is reported");
    assert_eq!(
        requests(c, 400) - before,
        1.0,
        "{lib}: a 400 is not retried"
    );
}
