//! Beyond one database machine (issue #16), with real faults and rows counted:
//!
//! - **Failover**: real asynchronous streaming replication (a standby made with
//!   `pg_basebackup -R` through a slot), three collectors under load with a two-host URL;
//!   the standby stops streaming while the primary goes on committing (the window an
//!   asynchronous standby's lag opens), the primary is stopped with `-m immediate`
//!   mid-batch, the standby promoted: the commits it never received are sent again from the
//!   collectors' standby hold — every acknowledged event exactly once on the new primary,
//!   ingest answering 2xx throughout, heartbeats continuing.
//! - **Partition**: the collector reaches the database through a relay listed first in a
//!   two-host URL (the second host: the database directly); the relay freezes under load
//!   (sockets open and silent, new connections never answered): every acknowledged event
//!   lands within a minute of the freeze through the second host, exactly once, and health
//!   showed the database as down meanwhile.

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use e2e::{
    check::{assert_exactly_once, ids, wait_rows},
    client::{self, post_json},
    db::{with_database, PrivateCluster, TestDb},
    gen,
    proc::{collector, CollectorOpts, CollectorProc},
    relay::{url_addr, url_via, Relay},
    replication::{crash, Standby},
};
use serde_json::json;

/// A collector that forwards quickly and sends a heartbeat every second, named `name`.
fn opts(name: &str, url: &str) -> CollectorOpts {
    CollectorOpts::new(name)
        .database(url)
        .fast_forwarding()
        .env("COLLECTOR_HEARTBEAT_INTERVAL_SECS", "1")
        .env("COLLECTOR_COLLECTOR_ID", name)
}

/// Posts batches of `per` events to `addr` until stopped, `pause` apart.
struct Loader {
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicU64>,
    acked: Arc<Mutex<Vec<String>>>,
    handle: std::thread::JoinHandle<()>,
}

impl Loader {
    fn start(addr: SocketAddr, seed: u64, per: usize, pause: Duration) -> Loader {
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicU64::new(0));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (s, f, a) = (stop.clone(), failed.clone(), acked.clone());
        let handle = std::thread::spawn(move || {
            let mut rng = gen::rng(seed);
            while !s.load(Ordering::Relaxed) {
                let events = gen::batch(&mut rng, per);
                match post_json(addr, "/v1/batch", &json!(events)) {
                    Ok(r) if r.status == 200 => {
                        if let Ok(mut a) = a.lock() {
                            a.extend(ids(&events));
                        }
                    }
                    _ => {
                        f.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(pause);
            }
        });
        Loader {
            stop,
            failed,
            acked,
            handle,
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().map(|a| a.len()).unwrap_or(0)
    }

    /// Stops it; (acknowledged ids, requests that did not get a 200).
    fn finish(self) -> (Vec<String>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
        let acked = self.acked.lock().map(|a| a.clone()).unwrap_or_default();
        (acked, self.failed.load(Ordering::Relaxed))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_to_a_promoted_standby_loses_nothing_and_ingest_never_stops() {
    let primary = PrivateCluster::start("failover").expect("primary cluster");
    let db = TestDb::empty_on(&primary.url, "failover")
        .await
        .expect("db");
    db.migrate().await.expect("migrate");
    let standby = Standby::of(&primary, "failover").expect("standby");
    // A hot standby refuses writes: `collector migrate` says so plainly.
    let on_standby = format!("--database-url={}", with_database(&standby.url, &db.name));
    let (code, _, err) = collector(&["migrate", &on_standby], &[]).expect("migrate");
    assert_ne!(code, 0, "migrate on a standby fails");
    assert!(
        err.contains("read-only") && err.contains("primary"),
        "{err}"
    );
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/{}?target_session_attrs=read-write",
        primary.port, standby.port, db.name
    );
    let collectors: Vec<CollectorProc> = (0..3)
        .map(|i| opts(&format!("failover-{i}"), &url).start().expect("start"))
        .collect();
    let loaders: Vec<Loader> = collectors
        .iter()
        .enumerate()
        .map(|(i, c)| Loader::start(c.ingest, 160 + i as u64, 100, Duration::from_millis(20)))
        .collect();
    // Some events land on the primary before it goes.
    let landed = wait_rows(&db, 3_000, Duration::from_secs(60)).await;
    assert!(landed >= 3_000, "forwarding to the primary ({landed} rows)");
    // The standby falls behind: what the primary commits from now on, it will not have.
    standby.detach().expect("stop the standby's streaming");
    let (detached_rows, _) = db.count_events().await.expect("count");
    let more = detached_rows + 2_000;
    let landed = wait_rows(&db, more, Duration::from_secs(60)).await;
    assert!(
        landed >= more,
        "forwarding to the primary meanwhile ({landed} rows)"
    );
    let held: u64 = collectors
        .iter()
        .map(|c| client::get(c.admin, "/v1/buffer").expect("buffer").json())
        .map(|b| b["held_for_standbys"].as_u64().unwrap_or(0))
        .sum();
    eprintln!("{landed} rows on the primary, {detached_rows} when the standby stopped streaming; {held} records held");
    assert!(
        held > 0,
        "committed records are held while the standby lags"
    );

    crash(&primary).expect("stop the primary -m immediate");
    let crashed_at = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    standby.promote().expect("promote the standby");
    eprintln!("promoted {:?} after the crash", crashed_at.elapsed());
    let promoted_at = time::OffsetDateTime::now_utc();
    // Load goes on against the new primary, then stops.
    let before = loaders.iter().map(Loader::acked).sum::<usize>();
    std::thread::sleep(Duration::from_secs(5));
    let mut acked = HashSet::new();
    let mut failed = 0;
    for l in loaders {
        let (a, f) = l.finish();
        acked.extend(a);
        failed += f;
    }
    eprintln!(
        "{} events acknowledged ({before} before the promotion's load), {failed} requests without a 200",
        acked.len()
    );
    assert_eq!(failed, 0, "ingest answered 2xx throughout the failover");

    let new_primary = TestDb::existing(&standby.url, &db.name);
    let rows = wait_rows(&new_primary, acked.len() as i64, Duration::from_secs(120)).await;
    assert_eq!(
        rows,
        acked.len() as i64,
        "every acknowledged event on the new primary"
    );
    assert_exactly_once(&new_primary, &acked).await;
    let c = new_primary.client().await.expect("client");
    for i in 0..3 {
        let id = format!("failover-{i}");
        let row = c
            .query_one(
                "SELECT count(*) FROM collector_heartbeats WHERE collector_id = $1 AND at > $2",
                &[&id, &promoted_at],
            )
            .await
            .expect("heartbeats");
        let n: i64 = row.get(0);
        assert!(n > 0, "{id}: heartbeats continue after the promotion");
    }
    for c in &collectors {
        let b = client::get(c.admin, "/v1/buffer").expect("buffer").json();
        assert_eq!(b["database_state"], "up", "{b}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_path_to_the_database_fails_over_to_the_next_host_within_a_minute() {
    let db = TestDb::migrated("partition").await.expect("db");
    let direct = url_addr(&db.url).expect("db address");
    let relay = Relay::start(direct).expect("relay");
    // The relay first, the database directly second: as a partitioned route and a good one.
    let url = url_via(&db.url, relay.addr).replacen(
        &relay.addr.to_string(),
        &format!("{},{direct}", relay.addr),
        1,
    );
    // Default deadlines (connect 5 s per host, each step 30 s): what the README promises.
    let c = opts("partition", &url).start().expect("start");
    let loader = Loader::start(c.ingest, 161, 200, Duration::from_millis(10));
    let landed = wait_rows(&db, 10_000, Duration::from_secs(60)).await;
    assert!(
        landed >= 10_000,
        "forwarding through the relay ({landed} rows)"
    );
    // Health is watched from the freeze on: "down" lasts from the step's deadline until
    // the next host connects.
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (admin, watching) = (c.admin, watching.clone());
        std::thread::spawn(move || {
            let mut states = HashSet::new();
            while watching.load(Ordering::Relaxed) {
                if let Ok(r) = client::get(admin, "/v1/buffer") {
                    if let Some(s) = r.json()["database_state"].as_str() {
                        states.insert(s.to_string());
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            states
        })
    };
    relay.freeze();
    let frozen_at = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let (acked, failed) = loader.finish();
    assert_eq!(
        failed, 0,
        "ingest answered 2xx while the database path was frozen"
    );
    let acked: HashSet<String> = acked.into_iter().collect();
    let (before, _) = db.count_events().await.expect("count");
    eprintln!(
        "{} acknowledged, {before} landed when the load stopped",
        acked.len()
    );
    let deadline = Duration::from_secs(60).saturating_sub(frozen_at.elapsed());
    let rows = wait_rows(&db, acked.len() as i64, deadline).await;
    let took = frozen_at.elapsed();
    watching.store(false, Ordering::Relaxed);
    let states = watcher.join().unwrap_or_default();
    eprintln!("all {rows} rows landed {took:?} after the freeze; states seen: {states:?}");
    assert_eq!(
        rows,
        acked.len() as i64,
        "every acknowledged event landed within a minute of the freeze"
    );
    assert_exactly_once(&db, &acked).await;
    assert!(
        states.contains("down"),
        "health showed the database down while the path was frozen: {states:?}"
    );
}
