//! The ingest promise, against the real `collector` binary on loopback: a 2xx means the
//! events are durably buffered; bad input gets a clear 4xx and never reaches the buffer.

use std::{collections::HashSet, io::Write, time::Duration};

use e2e::{
    check::{export_buffer, ids},
    client::{self, get, post, post_json},
    gen,
    proc::{CollectorOpts, CollectorProc},
};
use serde_json::{json, Value};

mod bad_input;

/// Event ids in the buffer of a stopped collector, via `collector buffer export`.
fn exported_ids(c: &CollectorProc) -> Vec<String> {
    let out = c.opts.data_dir.with_extension("ndjson");
    export_buffer(&c.opts.data_dir, &out, false);
    std::fs::read_to_string(&out)
        .expect("export file")
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("ndjson")["event_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn track_and_batch_answer_like_the_seed() {
    let c = CollectorOpts::new("answers")
        .start()
        .expect("start collector");
    let mut rng = gen::rng(1);
    let events = gen::batch(&mut rng, 3);
    let r = post_json(c.ingest, "/track", &events[0]).expect("track");
    assert_eq!((r.status, r.json()), (200, json!({"status": "success"})));
    let r = post_json(c.ingest, "/v1/track", &events[1]).expect("v1 track");
    assert_eq!(r.status, 200);
    let r = post_json(c.ingest, "/batch", &json!(events)).expect("batch");
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"status": "success", "processed": 3}))
    );
    let r = post_json(c.ingest, "/v1/batch", &json!({"batch": events})).expect("segment batch");
    assert_eq!(r.json()["processed"], 3);
    // sendBeacon sends text/plain.
    let r = post(
        c.ingest,
        "/v1/batch",
        json!(events).to_string().as_bytes(),
        &[("Content-Type", "text/plain;charset=UTF-8")],
    )
    .expect("text/plain");
    assert_eq!(r.status, 200, "{}", r.body);
    // gzip.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json!(events).to_string().as_bytes())
        .expect("gzip");
    let body = gz.finish().expect("gzip");
    let r = post(
        c.ingest,
        "/v1/batch",
        &body,
        &[("Content-Encoding", "gzip")],
    )
    .expect("gzip post");
    assert_eq!(r.status, 200, "{}", r.body);
    // /v1/validate answers without storing.
    let r = post_json(c.ingest, "/v1/validate", &json!(events)).expect("validate");
    assert_eq!(r.json()["processed"], 3);

    let r = get(c.ingest, "/health").expect("health");
    assert_eq!((r.status, r.json()), (200, json!({"status": "ok"})));
    let r = get(c.ingest, "/ready").expect("ready");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["buffer_accepting"], true);
    assert_eq!(
        r.json()["database_reachable"],
        false,
        "no database configured"
    );

    let stats = client::get(c.admin, "/v1/buffer").expect("admin");
    assert_eq!(stats.json()["buffered_events"], 2 + 3 * 4);
    let metrics = client::get(c.admin, "/metrics").expect("metrics").body;
    assert!(
        metrics.contains("collector_events_accepted_total 14"),
        "{metrics}"
    );
    assert!(
        metrics.contains("collector_buffer_flush_seconds_bucket"),
        "{metrics}"
    );
}

#[test]
fn cors_preflight_and_origins() {
    let c = CollectorOpts::new("cors")
        .env("COLLECTOR_CORS_ORIGINS", "[\"https://shop.example\"]")
        .start()
        .expect("start collector");
    let r = client::request(
        "OPTIONS",
        c.ingest,
        "/v1/batch",
        &[
            ("Origin", "https://shop.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
    )
    .expect("preflight");
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://shop.example")
    );
    assert!(r
        .header("access-control-allow-methods")
        .unwrap_or_default()
        .contains("POST"));
    let r = client::request(
        "OPTIONS",
        c.ingest,
        "/v1/batch",
        &[("Origin", "https://evil.example")],
    )
    .expect("preflight");
    assert_eq!(r.header("access-control-allow-origin"), None);
}

#[test]
fn bad_input_gets_a_clear_4xx_and_never_reaches_the_buffer() {
    let mut c = CollectorOpts::new("bad")
        .env("COLLECTOR_LIMITS__MAX_BODY_BYTES", "65536")
        .env("COLLECTOR_LIMITS__MAX_BATCH_EVENTS", "100")
        .start()
        .expect("start collector");
    let ok = json!({"event_name": "page_view", "user_id": 1});
    let cases = bad_input::cases(&ok);
    for (path, body, headers, status, needle) in &cases {
        let r = post(c.ingest, path, body, headers).expect("request");
        assert_eq!(
            r.status,
            *status,
            "{path} {:?}: {}",
            String::from_utf8_lossy(&body[..body.len().min(60)]),
            r.body
        );
        assert!(r.body.contains(needle), "{needle:?} not in {}", r.body);
        assert_eq!(r.json()["status"], "error", "{}", r.body);
    }
    // Too large as sent: 413, or the connection closed before the client finished sending.
    match post(c.ingest, "/batch", &vec![b' '; 70_000], &[]) {
        Ok(r) => assert_eq!(r.status, 413, "{}", r.body),
        Err(e) => eprintln!("oversize body: connection closed early ({e})"),
    }
    // The error names the event index and the field.
    let r = post_json(
        c.ingest,
        "/batch",
        &json!([ok, {"event_name": "x", "country_code": "1"}]),
    )
    .expect("partial");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "partial");
    assert_eq!(r.json()["processed"], 1);
    assert_eq!(r.json()["errors"][0]["index"], 1);
    assert_eq!(r.json()["errors"][0]["field"], "country_code");
    // A gzip bomb stops at the decoded-size cap.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b' '; 64 << 20]).expect("bomb");
    let bomb = gz.finish().expect("bomb");
    assert!(
        bomb.len() < 65536,
        "bomb is small when compressed: {}",
        bomb.len()
    );
    let r = post(c.ingest, "/batch", &bomb, &[("Content-Encoding", "gzip")]).expect("bomb");
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains("once decompressed"), "{}", r.body);

    assert_eq!(
        get(c.ingest, "/health").expect("health").status,
        200,
        "still up"
    );
    assert!(c.is_running());
    c.terminate(Duration::from_secs(30)).expect("stop");
    assert_eq!(
        exported_ids(&c).len(),
        1,
        "only the one valid event is buffered"
    );
}

#[test]
fn write_keys_and_rate_limits() {
    let c = CollectorOpts::new("keys")
        .env("COLLECTOR_WRITE_KEYS", "[\"k1\"]")
        .env("COLLECTOR_LIMITS__RATE_LIMIT_PER_IP", "5")
        .start()
        .expect("start collector");
    let ev = json!({"event_name": "x"}).to_string();
    assert_eq!(
        post(c.ingest, "/track", ev.as_bytes(), &[])
            .expect("r")
            .status,
        401
    );
    assert_eq!(
        post(
            c.ingest,
            "/track",
            ev.as_bytes(),
            &[("X-Write-Key", "nope")]
        )
        .expect("r")
        .status,
        401
    );
    assert_eq!(
        post(c.ingest, "/track?write_key=k1", ev.as_bytes(), &[])
            .expect("r")
            .status,
        200
    );
    let statuses: Vec<u16> = (0..20)
        .map(|_| {
            post(c.ingest, "/track", ev.as_bytes(), &[("X-Write-Key", "k1")])
                .expect("r")
                .status
        })
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    let limited = statuses.iter().position(|s| *s == 429).unwrap_or(0);
    let _ = limited;
}

#[test]
fn every_acknowledged_event_survives_kill_9() {
    let mut c = CollectorOpts::new("kill9")
        .start()
        .expect("start collector");
    let addr = c.ingest;
    // Eight concurrent clients post until told to stop; each records what was acknowledged.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut rng = gen::rng(100 + w);
                let mut acked = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let events = gen::batch(&mut rng, 20);
                    match post_json(addr, "/v1/batch", &json!(events)) {
                        Ok(r) if r.status == 200 => acked.extend(ids(&events)),
                        _ => {}
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    // kill -9 while requests are in flight, then stop the clients.
    c.kill9().expect("kill -9");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked: HashSet<String> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .collect();
    assert!(acked.len() > 100, "load was acknowledged: {}", acked.len());
    let stored: HashSet<String> = exported_ids(&c).into_iter().collect();
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost after kill -9 (of {})",
        lost.len(),
        acked.len()
    );
}

#[test]
fn buffer_limit_answers_503_with_retry_after_then_recovers() {
    // No database: the buffer only grows. A small limit is reached quickly.
    let mut c = CollectorOpts::new("full")
        .args(["--buffer-max-bytes", "200000"])
        .start()
        .expect("start collector");
    let mut rng = gen::rng(7);
    let mut acked = 0usize;
    let mut full = None;
    for _ in 0..500 {
        let events = gen::batch(&mut rng, 20);
        let r = post_json(c.ingest, "/v1/batch", &json!(events)).expect("post");
        match r.status {
            200 => acked += 20,
            503 => {
                full = Some(r);
                break;
            }
            s => panic!("unexpected {s}: {}", r.body),
        }
    }
    let full = full.expect("the buffer limit was reached");
    assert_eq!(full.header("retry-after"), Some("5"));
    assert!(full.body.contains("buffer full"), "{}", full.body);
    assert_eq!(get(c.ingest, "/ready").expect("ready").status, 503);
    // Recovery: the operator moves the buffer away (export --remove) and restarts.
    c.terminate(Duration::from_secs(30)).expect("stop");
    let out = c.opts.data_dir.with_extension("moved.ndjson");
    export_buffer(&c.opts.data_dir, &out, true);
    assert_eq!(
        std::fs::read_to_string(&out).expect("file").lines().count(),
        acked,
        "nothing acknowledged was dropped"
    );
    c.restart().expect("restart");
    let r = post_json(c.ingest, "/v1/batch", &json!(gen::batch(&mut rng, 20))).expect("post");
    assert_eq!(r.status, 200, "accepting again: {}", r.body);
}

#[test]
fn graceful_shutdown_finishes_in_flight_requests() {
    let mut c = CollectorOpts::new("graceful")
        .start()
        .expect("start collector");
    let addr = c.ingest;
    let workers: Vec<_> = (0..6)
        .map(|w| {
            std::thread::spawn(move || {
                let mut rng = gen::rng(500 + w);
                let (mut acked, mut refused, mut errors) = (Vec::new(), 0, 0);
                for _ in 0..200 {
                    let events = gen::batch(&mut rng, 10);
                    match post_json(addr, "/v1/batch", &json!(events)) {
                        Ok(r) if r.status == 200 => acked.extend(ids(&events)),
                        Ok(_) => refused += 1,
                        Err(_) => {
                            errors += 1;
                            break;
                        }
                    }
                }
                (acked, refused, errors)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let status = c.terminate(Duration::from_secs(30)).expect("graceful stop");
    assert!(status.success(), "exit status {status}");
    let mut acked = HashSet::new();
    for w in workers {
        let (a, _, _) = w.join().expect("worker");
        acked.extend(a);
    }
    let stored: HashSet<String> = exported_ids(&c).into_iter().collect();
    assert!(
        acked.is_subset(&stored),
        "every 2xx before and during shutdown is in the buffer"
    );
    let log = c.log_text();
    assert!(log.contains("buffer flushed; bye"), "{log}");
}
