//! What a client library is told at the collector's limits (issue #14, items 4 and 5), against
//! the real binary:
//! - an early answer is readable: Python's `http.client`, which writes its whole body before
//!   reading, posting 2–3 MB (with a Content-Length, gzip-encoded, or chunked without one)
//!   reads the `413` and its JSON body instead of a connection reset;
//! - Segment's bounds on the Segment routes: a message over 32 KiB is a 400 (or, in a
//!   batch, a listed error) naming its index, a batch of Segment messages over 500 KiB a 413;
//!   seed-shaped events there keep the collector's own limits; both bounds are configurable;
//! - every refusal carries `code` and `message`; 429 and 503 carry `Retry-After`.

use std::process::Command;

use e2e::{
    client::{post, post_json},
    proc::CollectorOpts,
    repo_root,
    sdk::python,
};
use serde_json::{json, Value};

/// Posts `bytes` to `path` with `tests/sdk/python/whole_body.py` (`plain`, `gzip` or
/// `chunked`); what it read back.
fn whole_body(addr: std::net::SocketAddr, path: &str, bytes: usize, mode: &str) -> Value {
    let out = Command::new(python())
        .arg(repo_root().join("tests/sdk/python/whole_body.py"))
        .arg(addr.to_string())
        .arg(path)
        .arg(bytes.to_string())
        .arg(mode)
        .output()
        .expect("the SDK venv's python (run deploy/install-sdks first)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("output: {stdout}"))
}

fn assert_code_and_message(body: &Value, code: &str) {
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[test]
fn a_client_that_writes_its_whole_body_before_reading_gets_the_413() {
    let c = CollectorOpts::new("whole-body").start().expect("start");
    for (mode, bytes) in [
        ("plain", 2_000_000),
        ("gzip", 2_000_000),
        ("chunked", 2_000_000),
        // Past what the kernel's socket buffers absorb: only draining saves the answer.
        ("chunked", 3_000_000),
        ("plain", 3_000_000),
    ] {
        for path in ["/batch", "/v1/batch"] {
            let got = whole_body(c.ingest, path, bytes, mode);
            assert_eq!(got["status"], 413, "{mode} {bytes} {path}: {got}");
            let body: Value = serde_json::from_str(got["body"].as_str().unwrap_or_default())
                .unwrap_or(Value::Null);
            assert_code_and_message(&body, "too_large");
            assert_eq!(got["headers"]["content-type"], "application/json");
        }
    }
    // The connection stays usable for the next client.
    let r = post_json(c.ingest, "/batch", &json!([{"event_name": "after"}])).expect("post");
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A Segment track message of about `bytes` bytes, the padding in `integrations` (which no
/// column or property holds, so only Segment's own bound can refuse it).
fn segment_message(bytes: usize) -> Value {
    json!({"type": "track", "event": "padded", "userId": "42",
           "integrations": {"pad": "x".repeat(bytes.saturating_sub(80))}})
}

#[test]
fn segment_routes_bound_messages_and_batches_and_refusals_say_why() {
    let c = CollectorOpts::new("segment-limits").start().expect("start");

    // A message over 32 KiB on /v1/track: 400 naming event 0.
    let r = post_json(c.ingest, "/v1/track", &segment_message(40_000)).expect("post");
    assert_eq!(r.status, 400, "{}", r.body);
    let body = r.json();
    assert_code_and_message(&body, "invalid");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("event 0: the message is") && m.contains("32768")),
        "{body}"
    );
    // Just under it: stored.
    let r = post_json(c.ingest, "/v1/track", &segment_message(32_000)).expect("post");
    assert_eq!(r.status, 200, "{}", r.body);

    // In a batch the oversized message is listed by index, the others stored.
    let batch =
        json!({"batch": [segment_message(100), segment_message(40_000), segment_message(100)]});
    let r = post_json(c.ingest, "/v1/batch", &batch).expect("post");
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(
        (&body["status"], &body["processed"], &body["rejected"]),
        (&json!("partial"), &json!(2), &json!(1)),
        "{body}"
    );
    assert_eq!(body["errors"][0]["index"], 1, "{body}");

    // A batch of Segment messages over 500 KiB: 413, though under max_body_bytes.
    let big: Vec<Value> = (0..100).map(|_| segment_message(6_000)).collect();
    let r = post_json(c.ingest, "/v1/batch", &json!({ "batch": big })).expect("post");
    assert_eq!(r.status, 413, "{}", r.body);
    assert_code_and_message(&r.json(), "too_large");
    assert!(r.body.contains("512000"), "{}", r.body);
    // Seed-shaped events on the same route keep the collector's own limits.
    let seed: Vec<Value> = (0..100)
        .map(|_| json!({"event_name": "padded", "properties": {"pad": "x".repeat(6_000)}}))
        .collect();
    let r = post_json(c.ingest, "/v1/batch", &json!(seed)).expect("post");
    assert_eq!(r.status, 200, "{}", r.body);

    // Both bounds are configuration.
    let small = CollectorOpts::new("segment-limits-small")
        .env("COLLECTOR_LIMITS__SEGMENT_MAX_MESSAGE_BYTES", "1000")
        .env("COLLECTOR_LIMITS__SEGMENT_MAX_BATCH_BYTES", "5000")
        .start()
        .expect("start");
    let r = post_json(small.ingest, "/v1/track", &segment_message(2_000)).expect("post");
    assert_eq!(r.status, 400, "{}", r.body);
    let batch: Vec<Value> = (0..8).map(|_| segment_message(900)).collect();
    let r = post_json(small.ingest, "/v1/batch", &json!(batch)).expect("post");
    assert_eq!(r.status, 413, "{}", r.body);
}

#[test]
fn rate_limits_and_a_full_buffer_carry_retry_after_code_and_message() {
    let c = CollectorOpts::new("segment-429")
        .env("COLLECTOR_LIMITS__RATE_LIMIT_PER_IP", "1")
        .start()
        .expect("start");
    let limited = (0..20)
        .map(|_| post_json(c.ingest, "/v1/track", &segment_message(100)).expect("post"))
        .find(|r| r.status == 429)
        .expect("a 429");
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_code_and_message(&limited.json(), "rate_limited");

    let c = CollectorOpts::new("segment-503")
        .args(["--buffer-max-bytes", "20000"])
        .start()
        .expect("start");
    let batch = json!({"batch": (0..20).map(|_| segment_message(500)).collect::<Vec<_>>()});
    let full = (0..200)
        .map(|_| post(c.ingest, "/v1/batch", batch.to_string().as_bytes(), &[]).expect("post"))
        .find(|r| r.status == 503)
        .expect("a 503 once the buffer is full");
    assert_eq!(full.header("retry-after"), Some("5"));
    assert_code_and_message(&full.json(), "unavailable");
}
