//! Forwarding when the buffer itself is in trouble: damaged buffer files are reported and
//! never crash the collector; a full buffer answers 503 and recovers once forwarding
//! resumes; a real full filesystem refuses requests and loses nothing acknowledged.
//!
//! Invariant: every acknowledged event is counted in the database, exactly once.

use std::{collections::HashSet, time::Duration};

use e2e::{
    check::{assert_exactly_once, assert_survives_full_disk, buffered, ids, wait_rows_draining},
    client::{self, post_json},
    db::{eventually, TestDb},
    gen,
    proc::{collector, CollectorOpts, CollectorProc},
};
use serde_json::json;

use super::load;

#[tokio::test(flavor = "multi_thread")]
async fn damaged_buffers_are_reported_and_never_crash_the_collector() {
    let mut c = CollectorOpts::new("damage")
        .fast_forwarding()
        .start()
        .expect("start");
    load(&c, 5, 200, 50);
    c.terminate(Duration::from_secs(30)).expect("stop");
    let dir = c.opts.data_dir.clone();
    {
        let buffer = collector::buffer::Buffer::open(&dir, &Default::default()).expect("open");
        buffer.insert_raw(b"\x01garbage").expect("raw");
        buffer.insert_raw(b"\x09not a record at all").expect("raw");
    }
    let d = dir.display().to_string();
    let (code, out, err) = collector(&["buffer", "verify", "--data-dir", &d], &[]).expect("verify");
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.contains("2 damaged") && out.contains("4 records (200 events) decode"),
        "{out}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // The collector starts, sets the damaged records aside, and still serves.
    c.restart().expect("restart with damaged records");
    assert_eq!(buffered(&c), 200);
    assert_eq!(
        client::get(c.ingest, "/health").expect("health").status,
        200
    );
    c.terminate(Duration::from_secs(30)).expect("stop");
    let (code, out, _) = collector(&["buffer", "verify", "--data-dir", &d], &[]).expect("verify");
    assert_eq!(code, 2);
    assert!(out.contains("set aside"), "{out}");
    // A store whose files are garbage: set aside whole, the collector starts empty.
    for entry in std::fs::read_dir(&dir).expect("dir").flatten() {
        if entry.path().is_file() {
            std::fs::write(entry.path(), vec![0xA5u8; 4096]).expect("garble");
        }
    }
    c.restart().expect("restart with a garbled store");
    assert_eq!(
        client::get(c.ingest, "/health").expect("health").status,
        200
    );
    assert_eq!(
        post_json(c.ingest, "/track", &json!({"event_name": "after"}))
            .expect("post")
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn full_buffer_recovers_when_forwarding_resumes() {
    let db = TestDb::migrated("full").await.expect("db");
    let c = CollectorOpts::new("full")
        .fast_forwarding()
        .database(&db.url)
        .paused()
        .args(["--buffer-max-bytes", "300000"])
        .start()
        .expect("start");
    let mut rng = gen::rng(8);
    let mut acked = HashSet::new();
    let mut got_503 = false;
    for _ in 0..1000 {
        let events = gen::batch(&mut rng, 20);
        let r = post_json(c.ingest, "/v1/batch", &json!(events)).expect("post");
        if r.status == 503 {
            assert!(r.header("retry-after").is_some());
            got_503 = true;
            break;
        }
        assert_eq!(r.status, 200);
        acked.extend(ids(&events));
    }
    assert!(got_503, "the limit was reached");
    let r = client::request("POST", c.admin, "/v1/forwarding/resume", &[]).expect("resume");
    assert_eq!(r.status, 200);
    assert!(eventually(Duration::from_secs(30), || async { buffered(&c) == 0 }).await);
    let r = post_json(c.ingest, "/v1/batch", &json!(gen::batch(&mut rng, 20))).expect("post");
    assert_eq!(r.status, 200, "accepting again");
    assert_exactly_once(&db, &acked).await;
}

/// A full disk: once the buffer's files cannot grow, requests get a 5xx and are never
/// acknowledged, the collector stays up, and every event acknowledged before is still in
/// the buffer after a `kill -9` and lands exactly once when space is back. The full disk is
/// RLIMIT_FSIZE on the real binary (writes past the limit fail with EFBIG, as ENOSPC does),
/// which needs no root.
#[tokio::test(flavor = "multi_thread")]
async fn full_disk_refuses_requests_and_loses_nothing_acknowledged() {
    let db = TestDb::migrated("diskfull").await.expect("db");
    let mut o = CollectorOpts::new("diskfull")
        .fast_forwarding()
        .database(&db.url)
        .paused()
        .max_file_bytes(6 << 20);
    let mut c = CollectorProc::start(o.clone()).expect("start under the file size limit");
    let mut rng = gen::rng(21);
    let mut acked = HashSet::new();
    let mut refused = Vec::new();
    for _ in 0..3000 {
        let events = gen::batch(&mut rng, 50);
        let r = post_json(c.ingest, "/v1/batch", &json!(events)).expect("post");
        if r.status == 200 {
            assert!(
                refused.is_empty(),
                "acknowledged after a refusal: {}",
                r.body
            );
            acked.extend(ids(&events));
        } else {
            refused.push((r.status, r.body));
            if refused.len() >= 5 {
                break;
            }
        }
    }
    assert!(!acked.is_empty(), "some events were acknowledged first");
    assert!(
        !refused.is_empty(),
        "the file size limit was never reached ({} events acknowledged)",
        acked.len()
    );
    for (status, body) in &refused {
        assert!(
            (500..600).contains(status),
            "a full disk answers 5xx, got {status}: {body}"
        );
    }
    assert_survives_full_disk(&mut c);
    let health = client::get(c.admin, "/v1/buffer").expect("admin still answers");
    assert_eq!(health.status, 200);
    eprintln!(
        "{} events acknowledged, then {} refusals: {:?}",
        acked.len(),
        refused.len(),
        refused.first()
    );

    // Space is back: a new process on the same buffer, forwarding.
    c.kill9().expect("kill -9");
    o.max_file_bytes = None;
    o.args.clear();
    c.opts = o;
    c.restart().expect("restart with space");
    let rows = wait_rows_draining(&db, acked.len() as i64, Duration::from_secs(30)).await;
    assert!(rows >= acked.len() as i64, "{rows} rows of {}", acked.len());
    assert_exactly_once(&db, &acked).await;
    let r = post_json(c.ingest, "/v1/batch", &json!(gen::batch(&mut rng, 10))).expect("post");
    assert_eq!(r.status, 200, "accepting again: {}", r.body);
}
