//! `bench fanin`: 1, 2, 4, 8 collectors into one database (the README's sizing figures).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use e2e::{
    db::TestDb,
    fleet,
    load::{self, LoadReport},
};

use super::Args;

/// `anyhow::ensure!` that first keeps the database (a failure's message names it, for a
/// look at what landed), instead of letting [`TestDb`]'s drop remove it.
macro_rules! ensure_or_keep {
    ($db:ident, $cond:expr, $($msg:tt)+) => {
        if !$cond {
            let _ = $db.keep();
            anyhow::bail!($($msg)+);
        }
    };
}

/// Keep-alive clients of the fan-in load in total, split across the collectors.
pub(crate) const FANIN_CLIENTS: usize = 64;
/// Events per request of the fan-in load.
const FANIN_PER: usize = 50;

/// What one fleet size measured.
struct FanIn {
    n: usize,
    /// The measurement window's load (all collectors together; p99 is the worst one's).
    window: LoadReport,
    /// Wall time between the samples at the window's start and end.
    window_secs: f64,
    /// Rows that landed between those samples.
    landed: i64,
    /// Buffers at the window's start and end, and the largest sampled in between.
    buf_start: fleet::BufferTotals,
    buf_end: fleet::BufferTotals,
    buf_peak: fleet::BufferTotals,
    drain_secs: f64,
    rss_max_kib: u64,
    /// CPU seconds in the window: collectors (summed), the database's backends, the whole
    /// cluster, this process (load generator and probes).
    cpu_collectors: f64,
    cpu_backends: f64,
    cpu_cluster: f64,
    cpu_loadgen: f64,
}

impl FanIn {
    fn acked_per_sec(&self) -> f64 {
        self.window.events_per_sec()
    }
    fn landed_per_sec(&self) -> f64 {
        self.landed as f64 / self.window_secs
    }
    fn growth_events(&self) -> i64 {
        self.buf_end.events as i64 - self.buf_start.events as i64
    }
    fn growth_bytes(&self) -> i64 {
        self.buf_end.bytes as i64 - self.buf_start.bytes as i64
    }
    /// The database is the limit: more acknowledged than landed and the buffers grew (by
    /// more than 2% of what the window acknowledged, above the linger's own batch).
    fn database_limited(&self) -> bool {
        self.acked_per_sec() > 1.05 * self.landed_per_sec()
            && self.growth_events() as f64 > 0.02 * self.window.events as f64
    }
}

/// Every collector of `ingests` under a closed loop of its share of `clients`, at once.
async fn fleet_load(
    ingests: &[std::net::SocketAddr],
    bodies: &Arc<Vec<bytes::Bytes>>,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<LoadReport> {
    let n = ingests.len();
    let tasks: Vec<_> = ingests
        .iter()
        .enumerate()
        .map(|(i, &addr)| {
            let share = clients / n + usize::from(i < clients % n);
            tokio::spawn(load::closed_loop(
                addr,
                "/v1/batch",
                bodies.clone(),
                FANIN_PER,
                share,
                duration,
            ))
        })
        .collect();
    let mut total: Option<LoadReport> = None;
    for t in tasks {
        let r = t.await??;
        total = Some(match total {
            None => r,
            Some(t) => LoadReport {
                requests: t.requests + r.requests,
                events: t.events + r.events,
                errors: t.errors + r.errors,
                elapsed: t.elapsed.max(r.elapsed),
                p50: t.p50.max(r.p50),
                p99: t.p99.max(r.p99),
                max: t.max.max(r.max),
            },
        });
    }
    total.context("no collectors")
}

async fn count_rows(client: &tokio_postgres::Client) -> anyhow::Result<i64> {
    Ok(client
        .query_one("SELECT count(*) FROM user_events", &[])
        .await?
        .get(0))
}

/// One fleet of `n` collectors into one fresh database.
async fn fanin_one(a: &Args, n: usize, bodies: &Arc<Vec<bytes::Bytes>>) -> anyhow::Result<FanIn> {
    let db = TestDb::migrated("bench_fanin").await?;
    let fleet = fleet::Fleet::start("bench-fanin", n, &db.url, |o| {
        o.env("COLLECTOR_FORWARD__LINGER_MS", "200")
    })?;
    let client = db.client().await?;
    let ingests = fleet.ingests();
    // Warm-up (connections, the forwarders' first COPYs); its events count for the
    // no-loss check, not for the figures.
    let warm = fleet_load(&ingests, bodies, FANIN_CLIENTS, Duration::from_secs(1)).await?;

    let rows0 = count_rows(&client).await?;
    let (buf_start, cpu_c0, pg0, own0) = (
        fleet.buffer()?,
        fleet.cpu_seconds(),
        fleet::PgCpu::sample(&client, &db.name).await?,
        fleet::own_cpu_seconds(),
    );
    let t0 = Instant::now();
    // The largest summed buffer while the load runs, sampled every 250 ms.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (admins, stop) = (fleet.admins(), stop.clone());
        std::thread::spawn(move || {
            let mut peak = fleet::BufferTotals::default();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(t) = fleet::buffer_totals(&admins) {
                    if t.events > peak.events {
                        peak = t;
                    }
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            peak
        })
    };
    let window = fleet_load(
        &ingests,
        bodies,
        FANIN_CLIENTS,
        Duration::from_secs(a.seconds),
    )
    .await?;
    let rows1 = count_rows(&client).await?;
    let (buf_end, cpu_c1, pg1, own1) = (
        fleet.buffer()?,
        fleet.cpu_seconds(),
        fleet::PgCpu::sample(&client, &db.name).await?,
        fleet::own_cpu_seconds(),
    );
    let window_secs = t0.elapsed().as_secs_f64();
    let stopped = Instant::now();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut buf_peak = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("buffer sampler panicked"))?;
    if buf_end.events > buf_peak.events {
        buf_peak = buf_end;
    }
    let (cpu_cluster, cpu_backends) = pg1.since(&pg0);

    // Drain: every acknowledged event must land, exactly once, within the bound.
    let acked = (warm.events + window.events) as i64;
    let errors = warm.errors + window.errors;
    // Bounded two ways: no new row for a minute is a stall; and the whole drain may take
    // as long as 1,000 rows a second would (a backlog of 1.5M events drains at ~5,500 rows
    // a second on 2 shared cores; a fixed bound failed a healthy run still landing rows).
    let stall = Duration::from_secs(60);
    let bound = Duration::from_secs(a.seconds * 20 + 60)
        .max(Duration::from_secs_f64(acked as f64 / 1000.0));
    let mut rows = rows1;
    let mut progressed = Instant::now();
    while rows < acked && stopped.elapsed() < bound && progressed.elapsed() < stall {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = count_rows(&client).await?;
        if now > rows {
            progressed = Instant::now();
        }
        rows = now;
    }
    let drain_secs = stopped.elapsed().as_secs_f64();
    let keep = format!(
        "the database {} and the buffers ({}) are kept",
        db.name,
        fleet.dirs()
    );
    ensure_or_keep!(
        db,
        rows >= acked,
        "fan-in with {n} collectors: only {rows} of {acked} acknowledged events landed {:.0} s after the load stopped (bound {} s, or no new row for {} s); {keep}",
        stopped.elapsed().as_secs_f64(),
        bound.as_secs(),
        stall.as_secs()
    );
    // Nothing left behind to land later: every buffer empties.
    let t = Instant::now();
    let mut left = fleet.buffer()?;
    while left.events > 0 && t.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = fleet.buffer()?;
    }
    ensure_or_keep!(
        db,
        left.events == 0,
        "fan-in with {n} collectors: all acknowledged rows landed but the buffers still hold {} events 30 s later; {keep}",
        left.events
    );
    let (rows, distinct) = db.count_events().await?;
    // A request that failed (errors) may still have been stored, never more than that.
    let unacked_max = (errors * FANIN_PER as u64) as i64;
    ensure_or_keep!(
        db,
        distinct == rows && rows >= acked && rows <= acked + unacked_max,
        "fan-in with {n} collectors: {rows} rows ({distinct} distinct event ids) for {acked} acknowledged events ({errors} failed requests); {keep}"
    );
    let rss_max_kib = fleet.peak_rss_kib().into_iter().max().unwrap_or(0);
    let cpu_collectors = cpu_c1.iter().zip(&cpu_c0).map(|(b, a)| b - a).sum();
    let dir = fleet.dir.clone();
    drop(fleet);
    let _ = std::fs::remove_dir_all(dir);
    drop(client);
    db.drop_db().await?;
    Ok(FanIn {
        n,
        window,
        window_secs,
        landed: rows1 - rows0,
        buf_start,
        buf_end,
        buf_peak,
        drain_secs,
        rss_max_kib,
        cpu_collectors,
        cpu_backends,
        cpu_cluster,
        cpu_loadgen: own1 - own0,
    })
}

/// Fan-in: 1, 2, 4, 8 collectors into one database, the figures of the README's sizing.
pub(crate) async fn fanin(a: &Args) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "\n== fan-in: {:?} collectors on loopback, each with its own buffer, into one fresh database per fleet; {FANIN_CLIENTS} keep-alive clients split across them, {FANIN_PER}-event batches without event ids, {} s each after a 1 s warm-up",
        a.collectors, a.seconds
    );
    println!("  collectors, database and load generator share the same {cores} cores: per-core figures are CPU time measured in /proc, the throughputs are what {cores} shared cores gave");
    let bodies = Arc::new(load::bodies_without_ids(5, 2000, FANIN_PER));
    let mut runs = Vec::new();
    for &n in &a.collectors {
        runs.push(fanin_one(a, n, &bodies).await?);
    }
    let base = &runs[0];
    let mib = |b: i64| b as f64 / (1024.0 * 1024.0);
    println!(
        "  {:>4} {:>7} {:>11} {:>7} {:>12} {:>7} {:>7} {:>11} {:>9} {:>7} {:>8} {:>8} {:>8} {:>6}",
        "coll",
        "clients",
        "acked ev/s",
        "x base",
        "landed row/s",
        "x base",
        "landed",
        "buf +events",
        "buf +MiB",
        "B/event",
        "drain s",
        "RSS MiB",
        "p99 ms",
        "errors"
    );
    println!(
        "  {:>4} {:>7} {:>11} {:>7} {:>12} {:>7} {:>7} {:>11} {:>9} {:>7} {:>8} {:>8} {:>8} {:>6}",
        "",
        "/coll",
        "(total)",
        "",
        "(total)",
        "",
        "/acked",
        "(sum)",
        "(sum)",
        "",
        "",
        "(max)",
        "(worst)",
        ""
    );
    for r in &runs {
        println!(
            "  {:>4} {:>7} {:>11.0} {:>7.2} {:>12.0} {:>7.2} {:>7.2} {:>11} {:>9.1} {:>7} {:>8.1} {:>8.0} {:>8.1} {:>6}",
            r.n,
            FANIN_CLIENTS / r.n,
            r.acked_per_sec(),
            r.acked_per_sec() / base.acked_per_sec(),
            r.landed_per_sec(),
            r.landed_per_sec() / base.landed_per_sec(),
            r.landed_per_sec() / r.acked_per_sec(),
            r.growth_events(),
            mib(r.growth_bytes()),
            r.buf_peak
                .bytes_per_event()
                .map(|b| format!("{b:.0}"))
                .unwrap_or_else(|| "n/a".into()),
            r.drain_secs,
            r.rss_max_kib as f64 / 1024.0,
            r.window.p99.as_secs_f64() * 1e3,
            r.window.errors
        );
    }
    println!("  (x base: ratio to the first fleet size; landed/acked over the same window; drain: from the load stopping until every acknowledged event was a row, checked exactly once)");

    println!("  sizing figures (CPU seconds in the window from /proc/<pid>/stat utime+stime):");
    println!(
        "  {:>4} {:>9} {:>10} {:>9} {:>10} {:>9} {:>10} {:>8} {:>6} {:>10} {:>10} {:>9}  limit",
        "coll",
        "coll CPU",
        "ev/s per",
        "db CPU",
        "rows/s per",
        "cluster",
        "rows/s per",
        "loadgen",
        "busy",
        "outage",
        "outage",
        "disk"
    );
    println!(
        "  {:>4} {:>9} {:>10} {:>9} {:>10} {:>9} {:>10} {:>8} {:>6} {:>10} {:>10} {:>9}",
        "",
        "s (sum)",
        "coll core",
        "s (bknd)",
        "db core",
        "CPU s",
        "clust core",
        "CPU s",
        "cores",
        "GiB/h all",
        "MiB/h coll",
        "B/event"
    );
    for r in &runs {
        let bpe = r.buf_peak.bytes_per_event().unwrap_or(f64::NAN);
        let per_hour = bpe * r.acked_per_sec() * 3600.0;
        let busy = (r.cpu_collectors + r.cpu_cluster + r.cpu_loadgen) / r.window_secs;
        println!(
            "  {:>4} {:>9.1} {:>10.0} {:>9.1} {:>10.0} {:>9.1} {:>10.0} {:>8.1} {:>6.2} {:>10.2} {:>10.0} {:>9.0}  {}",
            r.n,
            r.cpu_collectors,
            r.window.events as f64 / r.cpu_collectors,
            r.cpu_backends,
            r.landed as f64 / r.cpu_backends,
            r.cpu_cluster,
            r.landed as f64 / r.cpu_cluster,
            r.cpu_loadgen,
            busy,
            per_hour / (1024.0 * 1024.0 * 1024.0),
            per_hour / r.n as f64 / (1024.0 * 1024.0),
            if r.buf_peak.events > 0 {
                r.buf_peak.disk_bytes as f64 / r.buf_peak.events as f64
            } else {
                f64::NAN
            },
            if r.database_limited() {
                "database (acked > landed, buffers grow)"
            } else {
                "not the database (landed keeps up)"
            }
        );
    }
    println!("  ev/s per coll core: acknowledged events / the collectors' CPU seconds; rows/s per db core: landed rows / CPU seconds of this database's backends (pg_stat_activity.datname: the COPY sessions, TimescaleDB's scheduler), or of the whole cluster (postmaster with its reaped children plus every live child: also WAL writer, checkpointer, autovacuum, and any other database's work on the shared cluster)");
    println!("  busy cores: collectors + cluster + load generator CPU seconds per second of window (of {cores}); outage: logical buffer bytes/event (buffered_bytes/buffered_events at the largest buffer sampled) x acknowledged events/s x 3600, for the fleet and per collector; disk B/event: buffer_disk_bytes at that sample");
    match runs.iter().find(|r| r.database_limited()) {
        Some(r) => println!(
            "  the database is the limit from {} collector{} on: {:.0} events/s acknowledged, {:.0} rows/s landed, buffers +{} events in {:.1} s; more collectors add buffer, not rows: a bigger database (rows/s per db core above) is what raises landed rows/s. The cluster used {:.2} of the {cores} cores meanwhile: if that is well under one core per forwarding connection, database CPU is not what limits landed rows (commit latency, WAL and disk, or forwarders starved of CPU by ingest on shared cores), and more database cores alone would not help",
            r.n,
            if r.n == 1 { "" } else { "s" },
            r.acked_per_sec(),
            r.landed_per_sec(),
            r.growth_events(),
            r.window_secs,
            r.cpu_cluster / r.window_secs
        ),
        None => println!(
            "  the database kept up at every fleet size (landed within 5% of acknowledged, buffers flat): acknowledged events/s is bounded by the collectors (and here by the {cores} shared cores), so more collectors (ev/s per coll core above) is what raises it"
        ),
    }
    Ok(())
}
