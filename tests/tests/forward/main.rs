//! Forwarding against the real database, counting rows: exactly once through kill -9s and
//! database outages; refused rows quarantined; export → import → drain. Damaged buffers, a
//! full buffer and a full disk: `storage_faults.rs`. Deferred maintenance equal to in-batch
//! through kill -9s and replays: `deferred.rs`.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use e2e::{
    check::{assert_exactly_once, buffered, export_buffer, ids, wait_rows},
    client::{self, post_json},
    db::{eventually, PrivateCluster, TestDb},
    gen,
    proc::{collector, temp_dir, CollectorOpts, CollectorProc},
};
use rand::Rng;
use serde_json::{json, Value};

mod deferred;
mod storage_faults;

/// Posts `n` events in batches of `per`; returns the acknowledged ids.
fn load(c: &CollectorProc, seed: u64, n: usize, per: usize) -> Vec<String> {
    let mut rng = gen::rng(seed);
    let mut acked = Vec::new();
    while acked.len() < n {
        let events = gen::batch(&mut rng, per.min(n - acked.len()));
        let r = post_json(c.ingest, "/v1/batch", &json!(events)).expect("post");
        assert_eq!(r.status, 200, "{}", r.body);
        acked.extend(ids(&events));
    }
    acked
}

#[tokio::test(flavor = "multi_thread")]
async fn accepted_events_land_exactly_once_and_resends_do_not_double() {
    let db = TestDb::migrated("fwd").await.expect("db");
    let c = CollectorOpts::new("fwd")
        .fast_forwarding()
        .database(&db.url)
        .start()
        .expect("start");
    let mut rng = gen::rng(1);
    let batches: Vec<Vec<Value>> = (0..60).map(|_| gen::batch(&mut rng, 50)).collect();
    for b in &batches {
        assert_eq!(
            post_json(c.ingest, "/v1/batch", &json!(b))
                .expect("post")
                .status,
            200
        );
    }
    assert_eq!(wait_rows(&db, 3000, Duration::from_secs(60)).await, 3000);
    // A client re-sends the same events (same event_id and event_time).
    for b in &batches {
        assert_eq!(
            post_json(c.ingest, "/v1/batch", &json!(b))
                .expect("post")
                .status,
            200
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(eventually(Duration::from_secs(30), || async { buffered(&c) == 0 }).await);
    assert_eq!(db.count_events().await.expect("count"), (3000, 3000));
    // Lineage columns are filled.
    let row = db
        .client()
        .await
        .expect("client")
        .query_one("SELECT count(*) FILTER (WHERE received_at IS NULL OR collector_id IS NULL), max(created_at - received_at) < interval '1 minute' FROM user_events", &[])
        .await
        .expect("lineage");
    assert_eq!(row.get::<_, i64>(0), 0);
    assert!(row.get::<_, bool>(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_moments_during_forwarding_never_loses_or_doubles() {
    let db = TestDb::migrated("kill").await.expect("db");
    // Small batches and two connections: many commits, so kills land between commit and
    // buffer deletion too.
    let env = [
        ("COLLECTOR_FORWARD__BATCH_EVENTS", "300"),
        ("COLLECTOR_FORWARD__CONNECTIONS", "2"),
    ];
    let mut c = CollectorOpts::new("kill")
        .fast_forwarding()
        .envs(env)
        .database(&db.url)
        .paused()
        .start()
        .expect("start");
    let mut acked: HashSet<String> = load(&c, 2, 20_000, 100).into_iter().collect();
    c.terminate(Duration::from_secs(30)).expect("stop");
    c.opts.args.clear(); // not paused from now on

    let sent = Arc::new(Mutex::new(HashSet::new()));
    let mut rng = rand::thread_rng();
    let mut kills = 0;
    for round in 0..12 {
        c.restart().expect("restart");
        // Ingest continues during forwarding: these acknowledgements count too.
        let addr = c.ingest;
        let stop = Arc::new(AtomicBool::new(false));
        let loader = {
            let (stop, sent) = (stop.clone(), sent.clone());
            std::thread::spawn(move || {
                let mut r = gen::rng(1000 + round);
                let mut ok = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let events = gen::batch(&mut r, 20);
                    if let Ok(mut s) = sent.lock() {
                        s.extend(ids(&events));
                    }
                    if matches!(post_json(addr, "/v1/batch", &json!(events)), Ok(r) if r.status == 200)
                    {
                        ok.extend(ids(&events));
                    }
                }
                ok
            })
        };
        tokio::time::sleep(Duration::from_millis(rng.gen_range(150..900))).await;
        c.kill9().expect("kill -9");
        kills += 1;
        stop.store(true, Ordering::Relaxed);
        acked.extend(loader.join().expect("loader"));
    }
    assert!(kills >= 10);
    c.restart().expect("final restart");
    assert!(
        eventually(Duration::from_secs(120), || async { buffered(&c) == 0 }).await,
        "buffer drained; log:\n{}",
        c.log_text()
    );
    assert_exactly_once(&db, &acked).await;
    let (rows, distinct) = db.count_events().await.expect("count");
    assert_eq!(rows, distinct);
    let sent = sent.lock().expect("sent");
    assert!(rows as usize <= 20_000 + sent.len());
    eprintln!(
        "kill -9 x{kills}: {} acknowledged, {rows} rows, 0 duplicates",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn database_outage_during_sustained_ingest_loses_nothing() {
    let cluster = PrivateCluster::start("outage").expect("private cluster");
    let db = TestDb::empty_on(&cluster.url, "outage").await.expect("db");
    db.migrate().await.expect("migrate");
    let env = [("COLLECTOR_HEARTBEAT_INTERVAL_SECS", "1")];
    let c = CollectorOpts::new("outage")
        .fast_forwarding()
        .envs(env)
        .database(&db.url)
        .start()
        .expect("start");
    let addr = c.ingest;
    let stop = Arc::new(AtomicBool::new(false));
    let loader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut r = gen::rng(9);
            let (mut ok, mut refused) = (Vec::new(), 0);
            while !stop.load(Ordering::Relaxed) {
                let events = gen::batch(&mut r, 25);
                match post_json(addr, "/v1/batch", &json!(events)) {
                    Ok(r) if r.status == 200 => ok.extend(ids(&events)),
                    _ => refused += 1,
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (ok, refused)
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.stop().expect("stop database");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown_from = buffered(&c);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let grown_to = buffered(&c);
    assert!(
        grown_to > grown_from && grown_from >= 0,
        "the buffer grows during the outage: {grown_from} -> {grown_to}"
    );
    let ready = client::get(addr, "/ready").expect("ready");
    assert_eq!(ready.status, 200, "still ready without a database");
    assert_eq!(ready.json()["database_reachable"], false);
    cluster.restart().expect("restart database");
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let (acked, refused) = loader.join().expect("loader");
    assert_eq!(refused, 0, "ingest kept answering 2xx through the outage");
    assert!(
        eventually(Duration::from_secs(60), || async { buffered(&c) == 0 }).await,
        "drained"
    );
    let acked: HashSet<String> = acked.into_iter().collect();
    assert_exactly_once(&db, &acked).await;
    assert_eq!(
        db.count_events().await.expect("count").0 as usize,
        acked.len()
    );
    // Heartbeats produced during the outage landed afterwards: the history shows it.
    let hb = db.client().await.expect("client");
    assert!(
        eventually(Duration::from_secs(20), || async {
            hb.query_one(
                "SELECT count(*) FROM collector_heartbeats WHERE database_state = 'down'",
                &[],
            )
            .await
            .map(|r| r.get::<_, i64>(0) >= 3)
            .unwrap_or(false)
        })
        .await,
        "heartbeats from the outage landed"
    );
    let gap: f64 = hb
        .query_one(
            "SELECT COALESCE(max(extract(epoch FROM at - prev)), 0)::float8 FROM (SELECT at, lag(at) OVER (ORDER BY at) AS prev FROM collector_heartbeats) s",
            &[],
        )
        .await
        .expect("gap")
        .get(0);
    assert!(
        gap < 3.0,
        "no hole in the heartbeat history (largest gap {gap} s)"
    );
    drop(c);
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_rows_are_quarantined_and_the_rest_lands() {
    let db = TestDb::migrated("quar").await.expect("db");
    let admin = db.client().await.expect("client");
    admin
        .batch_execute(
            "ALTER TABLE user_events ADD CONSTRAINT no_poison CHECK (event_name <> 'poison')",
        )
        .await
        .expect("constraint");
    let mut c = CollectorOpts::new("quar")
        .fast_forwarding()
        .database(&db.url)
        .start()
        .expect("start");
    let mut rng = gen::rng(3);
    let mut events = gen::batch(&mut rng, 200);
    for i in [5, 77, 150] {
        events[i]["event_name"] = json!("poison");
    }
    let r = post_json(c.ingest, "/v1/batch", &json!(events)).expect("post");
    assert_eq!(r.status, 200);
    assert_eq!(wait_rows(&db, 197, Duration::from_secs(30)).await, 197);
    assert!(
        eventually(Duration::from_secs(20), || async { buffered(&c) == 0 }).await,
        "forwarder not wedged"
    );
    let metrics = client::get(c.admin, "/metrics").expect("metrics").body;
    assert!(
        metrics.contains("collector_events_quarantined_total 3"),
        "{metrics}"
    );
    c.terminate(Duration::from_secs(30)).expect("stop");
    let dir = c.opts.data_dir.display().to_string();
    let (code, out, err) =
        collector(&["buffer", "quarantine", "list", "--data-dir", &dir], &[]).expect("list");
    assert_eq!(code, 0, "{err}");
    let listed: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(listed.len(), 3);
    assert!(
        listed.iter().all(|q| q["quarantine_error"]
            .as_str()
            .unwrap_or("")
            .contains("no_poison")),
        "{out}"
    );
    // Fix the cause, replay the quarantine: everything lands.
    admin
        .batch_execute("ALTER TABLE user_events DROP CONSTRAINT no_poison")
        .await
        .expect("drop constraint");
    let (code, _, err) =
        collector(&["buffer", "quarantine", "retry", "--data-dir", &dir], &[]).expect("retry");
    assert_eq!(code, 0, "{err}");
    c.restart().expect("restart");
    assert_eq!(wait_rows(&db, 200, Duration::from_secs(30)).await, 200);
    assert_exactly_once(&db, &ids(&events).into_iter().collect()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn export_import_drain_gives_the_same_rows() {
    let db = TestDb::migrated("move").await.expect("db");
    // Collector A has no database: its buffer holds the events.
    let mut a = CollectorOpts::new("move-a")
        .fast_forwarding()
        .env("COLLECTOR_COLLECTOR_ID", "edge-a")
        .start()
        .expect("start a");
    let acked: HashSet<String> = load(&a, 4, 2500, 50).into_iter().collect();
    a.terminate(Duration::from_secs(30)).expect("stop a");
    let file = a.opts.data_dir.with_extension("ndjson.gz");
    export_buffer(&a.opts.data_dir, &file, true);
    // Host B: import (twice: idempotent downstream), then drain into the database.
    let b_dir = temp_dir("move-b").join("buffer");
    let b = b_dir.display().to_string();
    for _ in 0..2 {
        let (code, _, err) = collector(
            &[
                "buffer",
                "import",
                "--data-dir",
                &b,
                &file.display().to_string(),
            ],
            &[],
        )
        .expect("import");
        assert_eq!(code, 0, "{err}");
    }
    let (code, _, err) =
        collector(&["buffer", "stats", "--json", "--data-dir", &b], &[]).expect("stats");
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = collector(
        &[
            "drain",
            "--quiet",
            "--data-dir",
            &b,
            "--database-url",
            &db.url,
        ],
        &[],
    )
    .expect("drain");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("0 left in the buffer"), "{err}");
    assert_eq!(db.count_events().await.expect("count"), (2500, 2500));
    assert_exactly_once(&db, &acked).await;
    let row = db
        .client()
        .await
        .expect("client")
        .query_one(
            "SELECT count(DISTINCT collector_id), min(collector_id) FROM user_events",
            &[],
        )
        .await
        .expect("lineage");
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, String>(1)),
        (1, "edge-a".to_string()),
        "lineage survives the move"
    );
    // The source buffer is empty after export --remove.
    let (_, out, _) = collector(
        &[
            "buffer",
            "stats",
            "--json",
            "--data-dir",
            &a.opts.data_dir.display().to_string(),
        ],
        &[],
    )
    .expect("stats");
    assert_eq!(
        serde_json::from_str::<Value>(out.trim()).expect("json")["events"],
        0
    );
}
