//! Helpers of the aggregates tests: posting events, running `monitor query`, comparing.

use super::*;

pub(crate) fn post_all(c: &CollectorProc, events: &[Event]) {
    for chunk in events.chunks(500) {
        let body = Value::Array(chunk.iter().map(Event::to_json).collect());
        let r = post_json(c.ingest, "/v1/batch", &body).expect("post batch");
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

/// Runs `monitor query <args…> --format json` as of `as_of`; parses stdout.
pub(crate) fn monitor_json<T: DeserializeOwned>(
    url: &str,
    as_of: OffsetDateTime,
    args: &[&str],
) -> T {
    let out = monitor(url, Some(as_of), &[args, &["--format", "json"]].concat());
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("monitor {args:?}: {e}\n{out}"))
}

pub(crate) fn monitor(url: &str, as_of: Option<OffsetDateTime>, args: &[&str]) -> String {
    let mut cmd = Command::new(bin("monitor").expect("monitor binary"));
    cmd.arg("query")
        .args(args)
        .arg("--database-url")
        .arg(url)
        .env_remove("DATABASE_URL")
        .env_remove("MONITOR_AS_OF");
    if let Some(t) = as_of {
        cmd.env("MONITOR_AS_OF", rfc3339(t));
    }
    let out = cmd.output().expect("run monitor");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "monitor query {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

pub(crate) fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * (1.0 + a.abs().max(b.abs()))
}

pub(crate) fn assert_funnel(got: &analytics::Funnel, want: &analytics::Funnel, what: &str) {
    assert_eq!(got.steps.len(), want.steps.len(), "{what}");
    for (g, w) in got.steps.iter().zip(&want.steps) {
        assert_eq!((&g.name, g.sessions), (&w.name, w.sessions), "{what}");
        assert!(
            close(g.step_conversion, w.step_conversion),
            "{what}: {g:?} vs {w:?}"
        );
        assert!(
            close(g.overall_conversion, w.overall_conversion),
            "{what}: {g:?} vs {w:?}"
        );
    }
}

pub(crate) fn assert_paths(got: &analytics::Paths, want: &[analytics::Transition], what: &str) {
    let g: Vec<_> = got
        .transitions
        .iter()
        .map(|t| (&t.from, &t.to, t.count))
        .collect();
    let w: Vec<_> = want.iter().map(|t| (&t.from, &t.to, t.count)).collect();
    assert_eq!(g, w, "{what}");
    for (g, w) in got.transitions.iter().zip(want) {
        assert!(
            close(g.avg_seconds, w.avg_seconds),
            "{what}: {g:?} vs {w:?}"
        );
    }
}

/// Equal sets of rows; on failure, prints the first differences only.
pub(crate) fn same_rows(got: &BTreeSet<String>, want: &BTreeSet<String>, what: &str) {
    if got == want {
        return;
    }
    let extra: Vec<_> = got.difference(want).take(5).collect();
    let missing: Vec<_> = want.difference(got).take(5).collect();
    panic!(
        "{what}: {} rows, {} expected\nunexpected: {extra:#?}\nmissing: {missing:#?}",
        got.len(),
        want.len()
    );
}

pub(crate) async fn edition(c: &Client) -> String {
    c.query_one("SELECT current_setting('timescaledb.license')", &[])
        .await
        .expect("license")
        .get(0)
}
