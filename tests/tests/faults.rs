//! Operating through faults (issue #18), each with the real binary and the real fault:
//!
//! - SIGTERM while the database is unreachable, silent (accepts and never answers), or
//!   frozen in the middle of a COPY: the collector exits 0 within its documented bound and
//!   every acknowledged event is still in the buffer, then lands exactly once; `collector
//!   drain` stops on Ctrl-C the same way.
//! - A real full filesystem (a tmpfs this test mounts) holding both the buffer and the log:
//!   every request gets 503 + Retry-After, never an empty reply; the process stays up and
//!   not ready; after space is back and a restart every acknowledged event lands once.
//! - A burst of large concurrent requests: peak memory stays under the in-flight bound plus
//!   the baseline, every answer is 200 or 503, every acknowledged event is in the buffer.

use std::{
    collections::HashSet,
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use e2e::{
    check::{assert_exactly_once, assert_survives_full_disk, buffered, ids, wait_rows_draining},
    client::{self, post_json},
    db::{eventually, TestDb},
    gen,
    proc::{bin, collector, peak_rss_kib, temp_dir, CollectorOpts, CollectorProc},
    relay::{url_addr, url_via, Relay},
};
use serde_json::{json, Value};

/// A database nobody listens on: every connection attempt is refused at once.
const REFUSED_URL: &str = "postgres://postgres@127.0.0.1:1/none";

/// What the README promises for SIGTERM: `shutdown_timeout_secs` (5 s by default) plus 2 s.
/// Docker's `stop` waits 10 s before its SIGKILL; the test holds the collector to that.
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// Sends `requests` batches of `per` events from `clients` threads; returns the acked ids.
fn load_concurrently(
    c: &CollectorProc,
    requests: usize,
    per: usize,
    clients: usize,
) -> Vec<String> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let addr = c.ingest;
    let threads: Vec<_> = (0..clients)
        .map(|t| {
            let acked = acked.clone();
            std::thread::spawn(move || {
                let mut rng = gen::rng(1000 + t as u64);
                for _ in (t..requests).step_by(clients) {
                    let events = gen::batch(&mut rng, per);
                    let r = post_json(addr, "/v1/batch", &json!(events)).expect("post");
                    assert_eq!(r.status, 200, "{}", r.body);
                    if let Ok(mut a) = acked.lock() {
                        a.extend(ids(&events));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("loader thread");
    }
    let out = acked.lock().map(|a| a.clone()).unwrap_or_default();
    out
}

/// Events in a stopped collector's buffer, from `collector buffer stats --json`.
fn buffer_events(data_dir: &Path) -> i64 {
    let dir = format!("--data-dir={}", data_dir.display());
    let (code, out, err) = collector(&["buffer", "stats", "--json", &dir], &[]).expect("stats");
    assert_eq!(code, 0, "buffer stats: {err}");
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    v["events"].as_i64().unwrap_or(-1)
}

/// SIGTERM; the collector must exit 0 within [`STOP_WITHIN`]. Returns how long it took.
fn stop_in_time(c: &mut CollectorProc, what: &str) -> Duration {
    let started = Instant::now();
    let status = c
        .terminate(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let took = started.elapsed();
    eprintln!("{what}: exited {status} {took:?} after SIGTERM");
    assert!(
        status.success(),
        "{what}: exit status {status}; log:\n{}",
        c.log_text()
    );
    assert!(
        took <= STOP_WITHIN,
        "{what}: took {took:?} to stop (bound {STOP_WITHIN:?})"
    );
    assert!(
        c.log_text().contains("buffer flushed; bye"),
        "{what}: clean exit"
    );
    took
}

/// After the stop: what the database has plus what the buffer kept is every acknowledged
/// event; a restart against the database directly then lands each exactly once.
async fn nothing_lost(db: &TestDb, c: &mut CollectorProc, acked: &[String]) {
    let kept = buffer_events(&c.opts.data_dir);
    let (landed, _) = db.count_events().await.expect("count");
    assert_eq!(
        kept + landed,
        acked.len() as i64,
        "buffer {kept} + database {landed} is every acknowledged event"
    );
    let mut o = c.opts.clone();
    o.database_url = Some(db.url.clone());
    o.args.retain(|a| a != "--paused");
    c.opts = o;
    c.restart().expect("restart against the database");
    let rows = wait_rows_draining(db, acked.len() as i64, Duration::from_secs(30)).await;
    assert_eq!(rows, acked.len() as i64);
    let acked: HashSet<String> = acked.iter().cloned().collect();
    assert_exactly_once(db, &acked).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_an_unreachable_database_exits_promptly_and_keeps_everything() {
    let db = TestDb::migrated("stop_refused").await.expect("db");
    let mut c = CollectorOpts::new("stop_refused")
        .fast_forwarding()
        .database(REFUSED_URL)
        .start()
        .expect("start");
    let acked = load_concurrently(&c, 250, 200, 8);
    assert_eq!(buffered(&c), acked.len() as i64);
    stop_in_time(&mut c, "unreachable database, 50,000 events buffered");
    nothing_lost(&db, &mut c, &acked).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_a_database_that_never_answers_exits_promptly() {
    let db = TestDb::migrated("stop_silent").await.expect("db");
    let relay = Relay::start(url_addr(&db.url).expect("db address")).expect("relay");
    relay.freeze();
    let via = url_via(&db.url, relay.addr);
    let mut c = CollectorOpts::new("stop_silent")
        .fast_forwarding()
        .database(&via)
        .start()
        .expect("start");
    let acked = load_concurrently(&c, 100, 200, 8);
    // Give the forwarder and the heartbeat sender time to be stuck in their handshakes.
    std::thread::sleep(Duration::from_secs(2));
    stop_in_time(&mut c, "database accepts and never answers");
    assert_eq!(buffer_events(&c.opts.data_dir), acked.len() as i64);

    // `collector drain` against the same silent database stops on Ctrl-C too.
    let mut drain = Command::new(bin("collector").expect("bin"))
        .args(["drain", "--quiet"])
        .arg(format!("--data-dir={}", c.opts.data_dir.display()))
        .arg(format!("--database-url={via}"))
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn drain");
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    // SAFETY: kill(2) on a child we spawned.
    unsafe {
        libc::kill(drain.id() as i32, libc::SIGINT);
    }
    let status = loop {
        if let Some(s) = drain.try_wait().expect("wait drain") {
            break s;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = drain.kill();
            panic!("collector drain did not stop within 60 s of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut e) = drain.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    eprintln!(
        "drain stopped {:?} after Ctrl-C: {status}; {err}",
        started.elapsed()
    );
    assert!(
        started.elapsed() <= STOP_WITHIN,
        "drain stop took {:?}",
        started.elapsed()
    );
    assert!(err.contains("interrupted"), "{err}");
    assert_eq!(buffer_events(&c.opts.data_dir), acked.len() as i64);
    nothing_lost(&db, &mut c, &acked).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_while_a_copy_hangs_midway_exits_promptly() {
    let db = TestDb::migrated("stop_midcopy").await.expect("db");
    let relay = Relay::start(url_addr(&db.url).expect("db address")).expect("relay");
    let via = url_via(&db.url, relay.addr);
    let mut c = CollectorOpts::new("stop_midcopy")
        .fast_forwarding()
        .database(&via)
        .paused()
        .start()
        .expect("start");
    let acked = load_concurrently(&c, 100, 200, 8);
    // Freeze once 256 KiB of the COPY went out: a batch is then mid-COPY.
    relay.freeze_after(256 << 10);
    let r = client::request("POST", c.admin, "/v1/forwarding/resume", &[]).expect("resume");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        eventually(Duration::from_secs(30), || async { relay.is_frozen() }).await,
        "the relay froze mid-COPY ({} bytes relayed)",
        relay.client_bytes()
    );
    std::thread::sleep(Duration::from_millis(500));
    stop_in_time(&mut c, "COPY frozen midway");
    nothing_lost(&db, &mut c, &acked).await;
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB, or `None` when this process may not mount (not root).
    fn mount(name: &str, mib: u64) -> Option<Tmpfs> {
        let dir = temp_dir(name).join("mnt");
        std::fs::create_dir_all(&dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }

    fn resize(&self, mib: u64) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={mib}m")])
            .arg(&self.dir)
            .status()
            .expect("remount");
        assert!(status.success(), "remount the tmpfs larger");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_full_disk_with_the_log_on_it_answers_503_and_loses_nothing() {
    let Some(fs) = Tmpfs::mount("fulldisk", 40) else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root); the RLIMIT_FSIZE test in forward.rs still runs");
        return;
    };
    let db = TestDb::migrated("fulldisk").await.expect("db");
    // Buffer and log (<data_dir>.log) on the same small filesystem, as /var/lib and /var/log
    // on one root filesystem; debug logging writes a line for every refused request.
    let mut o = CollectorOpts::in_dir(fs.dir.join("buffer"))
        .fast_forwarding()
        .database(REFUSED_URL)
        .env("RUST_LOG", "debug");
    let mut c = CollectorProc::start(o.clone()).expect("start");
    let mut rng = gen::rng(18);
    let mut acked = Vec::new();
    let mut refusals = 0;
    for i in 0..20_000 {
        let events = gen::batch(&mut rng, 50);
        let r = post_json(c.ingest, "/v1/batch", &json!(events)).unwrap_or_else(|e| {
            panic!(
                "request {i} got no answer ({e}) after {} acked",
                acked.len()
            )
        });
        if r.status == 200 {
            assert_eq!(refusals, 0, "acknowledged after a refusal: {}", r.body);
            acked.extend(ids(&events));
            continue;
        }
        refusals += 1;
        assert_eq!(r.status, 503, "a full disk answers 503: {}", r.body);
        assert!(r.header("retry-after").is_some(), "503 carries Retry-After");
        if refusals >= 50 {
            break;
        }
    }
    assert!(!acked.is_empty(), "some events were acknowledged first");
    assert_eq!(
        refusals,
        50,
        "the disk filled up ({} events acknowledged)",
        acked.len()
    );
    eprintln!(
        "full tmpfs: {} events acknowledged, then 50 × 503",
        acked.len()
    );
    assert_survives_full_disk(&mut c);
    assert_eq!(
        client::get(c.ingest, "/health").expect("health").status,
        200
    );
    let metrics = client::get(c.admin, "/metrics").expect("metrics").body;
    let dropped = metrics
        .lines()
        .find_map(|l| l.strip_prefix("collector_log_lines_dropped_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        dropped > 0.0,
        "the log was on the full disk: lines dropped and counted"
    );

    // Space is back: a bigger filesystem and a restart against the database.
    c.kill9().expect("kill -9");
    fs.resize(400);
    let _ = std::fs::remove_file(&c.log);
    o.env.retain(|(k, _)| k != "RUST_LOG");
    o.database_url = Some(db.url.clone());
    c.opts = o;
    c.restart().expect("restart with space");
    let rows = wait_rows_draining(&db, acked.len() as i64, Duration::from_secs(30)).await;
    assert!(rows >= acked.len() as i64, "{rows} rows of {}", acked.len());
    let acked: HashSet<String> = acked.into_iter().collect();
    assert_exactly_once(&db, &acked).await;
    let r = post_json(c.ingest, "/v1/batch", &json!(gen::batch(&mut rng, 10))).expect("post");
    assert_eq!(r.status, 200, "accepting again: {}", r.body);
}

/// One raw HTTP/1.1 request with `Connection: close`: the status, or what went wrong when
/// the connection ended without an answer.
fn raw_post(addr: std::net::SocketAddr, path: &str, body: &[u8]) -> Result<u16, String> {
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // Write the whole request before reading, as the simplest clients do.
    s.write_all(head.as_bytes())
        .map_err(|e| format!("write head: {e}"))?;
    let wrote = s.write_all(body);
    let mut answer = Vec::new();
    let read = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("no answer (write: {wrote:?}, read: {read:?})"))
}

#[test]
fn a_burst_of_large_concurrent_requests_stays_under_the_memory_bound() {
    const CLIENTS: usize = 1500;
    const BOUND_MIB: u64 = 64;
    let c = CollectorOpts::new("burst")
        .env(
            "COLLECTOR_LIMITS__MAX_INFLIGHT_BYTES",
            (BOUND_MIB << 20).to_string(),
        )
        .env("COLLECTOR_LIMITS__INFLIGHT_WAIT_MS", "5000")
        // The subject is memory, not slow bodies (the hostile corpus's slow-loris cases test
        // the 408): with 1,500 client threads on two cores, an admitted client thread can be
        // starved of CPU for the 10 s default while it sends its 0.9 MB, and that honest
        // 408 made this test flaky (CI, 2026-12-03: 53 × 200, 1,445 × 503, 2 × 408).
        .env("COLLECTOR_LIMITS__HEADER_TIMEOUT_SECS", "60")
        .start()
        .expect("start");
    std::thread::sleep(Duration::from_millis(300));
    let baseline = peak_rss_kib(c.pid()).unwrap_or(0);
    // 1,000 events of about 0.9 KB each: a 0.9 MB body, under max_body_bytes.
    let mut rng = gen::rng(5);
    let events: Vec<Value> = gen::batch(&mut rng, 1000)
        .into_iter()
        .map(|mut e| {
            e["properties"]["note"] = json!("x".repeat(540));
            if let Some(o) = e.as_object_mut() {
                o.remove("event_id");
            }
            e
        })
        .collect();
    let body = Arc::new(json!(events).to_string().into_bytes());
    assert!(
        body.len() > 800_000 && body.len() < 1 << 20,
        "{} bytes",
        body.len()
    );
    let barrier = Arc::new(std::sync::Barrier::new(CLIENTS));
    let addr = c.ingest;
    let started = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (body, barrier) = (body.clone(), barrier.clone());
            std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || {
                    barrier.wait();
                    raw_post(addr, "/v1/batch", &body)
                })
                .expect("client thread")
        })
        .collect();
    let answers: Vec<Result<u16, String>> = threads
        .into_iter()
        .map(|t| t.join().unwrap_or_else(|_| Err("client panicked".into())))
        .collect();
    let ok = answers.iter().filter(|a| **a == Ok(200)).count();
    let busy = answers.iter().filter(|a| **a == Ok(503)).count();
    let mut others: Vec<&Result<u16, String>> = answers
        .iter()
        .filter(|a| !matches!(a, Ok(200) | Ok(503)))
        .collect();
    others.dedup();
    let peak = peak_rss_kib(c.pid()).unwrap_or(0);
    eprintln!(
        "{CLIENTS} × {} bytes in {:?}: {ok} × 200, {busy} × 503, others {:?}; collector RSS {} MiB at start, peak {} MiB (bound {BOUND_MIB} MiB)",
        body.len(),
        started.elapsed(),
        others.iter().take(5).collect::<Vec<_>>(),
        baseline / 1024,
        peak / 1024
    );
    assert_eq!(ok + busy, CLIENTS, "every answer is 200 or 503");
    assert!(ok > 0, "some requests got through");
    assert_eq!(
        buffered(&c),
        (ok * 1000) as i64,
        "every acknowledged event is in the buffer"
    );
    // The bound plus what the process holds besides requests: its start-up footprint, sled's
    // page cache (buffer.cache_bytes, 64 MiB by default) and per-connection buffers.
    let allowance_mib = 64 + 64;
    assert!(
        peak / 1024 <= baseline / 1024 + BOUND_MIB + allowance_mib,
        "peak RSS {} MiB over the bound {BOUND_MIB} MiB + start {} MiB + allowance {allowance_mib} MiB",
        peak / 1024,
        baseline / 1024
    );
}
