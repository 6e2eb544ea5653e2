//! Fleet chaos test: three collectors with their own buffers feed one database under
//! continuous load, while collectors are killed with `kill -9` (staggered), the database is
//! stopped and started, and one collector runs into its buffer limit. At the end every
//! acknowledged event is in `user_events` exactly once and the heartbeat history shows the
//! outage.
//!
//! Short form (CI): one 30-second cycle. Long form: `CHAOS_CYCLES=20 cargo test -p e2e
//! --release --test chaos -- --nocapture` (about 10 minutes).

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use e2e::{
    check::{buffered, event_id_counts, ids},
    client::post_json,
    db::{eventually, PrivateCluster, TestDb},
    gen,
    proc::CollectorOpts,
};
use serde_json::json;

struct Loader {
    stop: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
    handle: std::thread::JoinHandle<Vec<String>>,
}

/// Posts 20-event batches to `addr` (re-read each time: collectors restart on new ports)
/// until stopped; returns the acknowledged ids.
fn loader(seed: u64, addr: Arc<std::sync::Mutex<std::net::SocketAddr>>) -> Loader {
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicU64::new(0));
    let (s, r) = (stop.clone(), refused.clone());
    let handle = std::thread::spawn(move || {
        let mut rng = gen::rng(seed);
        let mut acked = Vec::new();
        while !s.load(Ordering::Relaxed) {
            let target = *addr.lock().expect("addr");
            let events = gen::batch(&mut rng, 20);
            match post_json(target, "/v1/batch", &json!(events)) {
                Ok(resp) if resp.status == 200 => acked.extend(ids(&events)),
                _ => {
                    r.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        acked
    });
    Loader {
        stop,
        refused,
        handle,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fleet_survives_kills_outages_and_full_buffers() {
    let cycles: u32 = std::env::var("CHAOS_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let cluster = PrivateCluster::start("chaos").expect("private cluster");
    let db = TestDb::empty_on(&cluster.url, "chaos").await.expect("db");
    db.migrate().await.expect("migrate");

    let mut collectors = Vec::new();
    let mut addrs = Vec::new();
    let mut loaders = Vec::new();
    for i in 0..3 {
        let mut o = CollectorOpts::new(&format!("chaos{i}"))
            .database(&db.url)
            .env("COLLECTOR_COLLECTOR_ID", format!("chaos-{i}"))
            .env("COLLECTOR_REGION", format!("region-{i}"))
            .env("COLLECTOR_HEARTBEAT_INTERVAL_SECS", "1")
            .env("COLLECTOR_FORWARD__LINGER_MS", "200")
            .env("COLLECTOR_FORWARD__RETRY_MAX_MS", "1000")
            .env("COLLECTOR_FORWARD__BATCH_EVENTS", "500");
        if i == 2 {
            // About 700 events: reached during the database outage.
            o = o.env("COLLECTOR_BUFFER__MAX_BYTES", "200000");
        }
        let c = o.start().expect("start collector");
        let addr = Arc::new(std::sync::Mutex::new(c.ingest));
        loaders.push(loader(10 + i as u64, addr.clone()));
        addrs.push(addr);
        collectors.push(c);
    }

    let started = Instant::now();
    let mut kills = 0;
    let mut max_buffered = [0i64; 3];
    for cycle in 0..cycles {
        let at = |s: u64| started + Duration::from_secs(30 * cycle as u64 + s);
        let sleep_until = |t: Instant| tokio::time::sleep_until(t.into());
        sleep_until(at(3)).await;
        collectors[0].kill9().expect("kill c0");
        kills += 1;
        sleep_until(at(4)).await;
        collectors[0].restart().expect("restart c0");
        *addrs[0].lock().expect("addr") = collectors[0].ingest;

        sleep_until(at(6)).await;
        cluster.stop().expect("stop database");
        sleep_until(at(8)).await;
        collectors[1].kill9().expect("kill c1");
        kills += 1;
        sleep_until(at(9)).await;
        collectors[1].restart().expect("restart c1");
        *addrs[1].lock().expect("addr") = collectors[1].ingest;
        while Instant::now() < at(14) {
            for (i, c) in collectors.iter().enumerate() {
                max_buffered[i] = max_buffered[i].max(buffered(c));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        cluster.restart().expect("start database");

        sleep_until(at(20)).await;
        collectors[2].kill9().expect("kill c2");
        kills += 1;
        collectors[2].restart().expect("restart c2");
        *addrs[2].lock().expect("addr") = collectors[2].ingest;
        sleep_until(at(30)).await;
    }

    let mut acked: HashSet<String> = HashSet::new();
    let mut refused = 0;
    for l in loaders {
        l.stop.store(true, Ordering::Relaxed);
        refused += l.refused.load(Ordering::Relaxed);
        acked.extend(l.handle.join().expect("loader"));
    }
    for c in &collectors {
        assert!(
            eventually(Duration::from_secs(120), || async { buffered(c) == 0 }).await,
            "collector drained; log:\n{}",
            c.log_text()
        );
    }
    let counts = event_id_counts(&db).await;
    let duplicates = counts.values().filter(|n| **n > 1).count();
    let lost = acked.iter().filter(|id| !counts.contains_key(*id)).count();
    let total: i64 = counts.values().sum();
    println!(
        "chaos: {cycles} cycle(s), {kills} kill -9s, 1 database outage per cycle; {} events acknowledged, {} requests refused (503 at the limit or connection refused while down), {total} rows, {duplicates} duplicates, {lost} lost; peak buffers {max_buffered:?}",
        acked.len(),
        refused
    );
    assert_eq!(duplicates, 0, "no row twice");
    assert_eq!(lost, 0, "no acknowledged event lost");
    assert!(
        max_buffered.iter().all(|b| *b > 0),
        "every buffer grew during the outage: {max_buffered:?}"
    );
    assert!(
        refused > 0,
        "the small collector hit its limit (503) at least once"
    );

    // The heartbeat history shows each collector's view of the outage.
    let client = db.client().await.expect("client");
    let down: Vec<(String, i64)> = eventually_rows(&client).await;
    for i in 0..3 {
        let id = format!("chaos-{i}");
        let n = down
            .iter()
            .find(|(c, _)| *c == id)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        assert!(n >= 2, "{id}: heartbeats with database_state=down: {n}");
    }
}

async fn eventually_rows(client: &tokio_postgres::Client) -> Vec<(String, i64)> {
    let query = "SELECT collector_id, count(*) FILTER (WHERE database_state = 'down') FROM collector_heartbeats GROUP BY 1";
    let mut rows = Vec::new();
    for _ in 0..60 {
        rows = client
            .query(query, &[])
            .await
            .map(|r| r.iter().map(|x| (x.get(0), x.get(1))).collect())
            .unwrap_or_default();
        if rows.len() == 3 && rows.iter().all(|(_, n): &(String, i64)| *n >= 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    rows
}
