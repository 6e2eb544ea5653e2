//! `bench`: the project's benchmark command. Every figure is measured in one run on this
//! machine, side by side with its baseline, and printed with the ratio.
//!
//! ```text
//! cargo run --release -p e2e --bin bench -- [ingest|e2e|drain|monitor|fanin|all] [--seconds N] [--events N] [--collectors 1,2,4,8]
//! ```
//!
//! - `ingest`: durable-ack throughput (64 keep-alive clients, 50-event batches) against the
//!   no-op endpoint `/v1/validate` (parse and validate, no buffer); single-event `/track`
//!   latency at a fixed 1,000 requests/s.
//! - `e2e`: events/s from HTTP load to rows in TimescaleDB for a burst as fast as 64
//!   clients go (all rows landed), then a sustained fixed rate (15,000 events/s) and the
//!   ingest lag (`created_at - received_at`) p50/p99 while sustaining it.
//! - `drain`: a pre-filled buffer of N events (default 1,000,000) drained into
//!   `user_events` by `collector drain` with 1 and 4 connections, against `psql \copy` of
//!   the same rows into the same schema; collector start-up time with the buffer full.
//! - `monitor`: the dashboard's refresh time (`monitor --bench`, the real binary) over the
//!   database the 4-connection drain filled, for the 1h, 24h and 7d ranges: every analysis
//!   (what a start or a range change costs) and the overview's own refresh (live numbers
//!   and collectors, what every tick costs), with the binary's peak memory. On the
//!   Community edition the continuous aggregates are refreshed first, as their policies
//!   would have. `all` runs it after `drain`.
//! - `fanin`: 1, 2, 4 and 8 collectors (`--collectors`) on loopback, each with its own
//!   buffer, forwarding into one fresh database, driven by the same 64 closed-loop clients
//!   split across them (50-event batches without event ids) for `--seconds` per fleet: in
//!   one table, acknowledged events/s in total, landed rows/s over the same window, buffer
//!   growth (events, bytes, bytes/event), the drain time after the load stops (every
//!   acknowledged event must land exactly once, or the step fails) and peak RSS; then the
//!   sizing figures: events/s per collector core and rows/s per database core (CPU time
//!   from `/proc`), buffer bytes per hour of outage at the measured rate, and whether the
//!   database was the limit. `all` runs it last.
//!
//! The database is the local cluster (`deploy/local-db start`) or `DATABASE_URL`.

use std::{
    io::Write,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use e2e::{
    db::TestDb,
    fleet, gen,
    load::{self, LoadReport},
    proc::{self, CollectorOpts},
};

struct Args {
    what: String,
    seconds: u64,
    events: usize,
    /// Keep the database the monitor step measured (its URL is printed).
    keep: bool,
    /// Fleet sizes of the fan-in step.
    collectors: Vec<usize>,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        what: "all".into(),
        seconds: 10,
        events: 1_000_000,
        keep: false,
        collectors: vec![1, 2, 4, 8],
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--seconds" => a.seconds = it.next().context("--seconds N")?.parse()?,
            "--events" => a.events = it.next().context("--events N")?.parse()?,
            "--keep" => a.keep = true,
            "--collectors" => {
                a.collectors = it
                    .next()
                    .context("--collectors 1,2,4,8")?
                    .split(',')
                    .map(|n| n.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .context("--collectors takes a list such as 1,2,4,8")?;
                anyhow::ensure!(
                    !a.collectors.is_empty()
                        && a.collectors.iter().all(|n| (1..=FANIN_CLIENTS).contains(n)),
                    "--collectors: each fleet size from 1 to {FANIN_CLIENTS}"
                );
            }
            "-h" | "--help" => {
                println!(
                    "usage: bench [ingest|e2e|drain|monitor|fanin|all] [--seconds N] [--events N] [--collectors 1,2,4,8] [--keep]\n\n\
                          ingest:  durable acks vs no-op endpoint, /track latency at 1,000 req/s\n\
                          e2e:     HTTP -> TimescaleDB: burst rate, then lag at a sustained rate\n\
                          drain:   drain a pre-filled buffer vs psql \\copy of the same rows\n\
                          monitor: dashboard refresh time over the drained events (with drain)\n\
                          fanin:   1, 2, 4, 8 collectors into one database: acked vs landed, buffer growth\n\
                          analyses: every analysis x range as `monitor query`, at --events/5 and --events (SQL-loaded)\n\
                          all:     every one of them (the default)\n\n\
                          --seconds N         length of each load (default 10; per fleet for fanin)\n\
                          --events N          events in the drained buffer (default 1,000,000)\n\
                          --collectors LIST   fleet sizes of fanin (default 1,2,4,8)\n\
                          --keep              keep the database the monitor step measured"
                );
                std::process::exit(0);
            }
            w @ ("ingest" | "e2e" | "drain" | "monitor" | "fanin" | "analyses" | "all") => {
                a.what = w.into()
            }
            other => anyhow::bail!("unknown argument {other:?} (see --help)"),
        }
    }
    Ok(a)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
                    / 1024
                    / 1024
            })
        })
        .unwrap_or(0);
    format!(
        "{} cores ({cpu}), {mem} GiB",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    )
}

fn row(name: &str, r: &LoadReport) {
    println!(
        "  {name:<34} {:>10.0} ev/s {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}",
        r.events_per_sec(),
        r.requests_per_sec(),
        r.p50.as_secs_f64() * 1e3,
        r.p99.as_secs_f64() * 1e3,
        r.errors
    );
}

fn rss_kib(pid: u32) -> u64 {
    proc::peak_rss_kib(pid).unwrap_or(0)
}

async fn ingest(a: &Args) -> anyhow::Result<()> {
    println!("\n== ingest (collector without a database: the buffer only grows; load generator on the same 2 cores)");
    let dir = proc::temp_dir("bench-ingest");
    let c = CollectorOpts::in_dir(dir.join("buffer")).start()?;
    let dur = Duration::from_secs(a.seconds);
    let batches = Arc::new(load::bodies(1, 2000, 50));
    // Warm up both paths.
    load::closed_loop(
        c.ingest,
        "/v1/validate",
        batches.clone(),
        50,
        64,
        Duration::from_secs(1),
    )
    .await?;
    let noop = load::closed_loop(c.ingest, "/v1/validate", batches.clone(), 50, 64, dur).await?;
    let durable = load::closed_loop(c.ingest, "/v1/batch", batches.clone(), 50, 64, dur).await?;
    println!(
        "  64 keep-alive clients, 50-event batches, {} s each:",
        a.seconds
    );
    row("no-op /v1/validate (no buffer)", &noop);
    row("durable /v1/batch (flushed acks)", &durable);
    println!(
        "  durable / no-op throughput ratio: {:.2}",
        durable.events_per_sec() / noop.events_per_sec()
    );
    let singles = Arc::new(load::bodies(2, 5000, 1));
    let track = load::open_loop(c.ingest, "/track", singles, 1000, 32, dur).await?;
    println!(
        "  single-event /track at a fixed 1,000 req/s ({} s, latency from scheduled time):",
        a.seconds
    );
    row("durable /track", &track);
    let stats = e2e::client::get(c.admin, "/v1/buffer")?.json();
    let events = stats["buffered_events"].as_f64().unwrap_or(0.0);
    println!(
        "  buffer: {:.0} events, {:.0} logical bytes/event, {:.0} disk bytes/event; collector peak RSS {} MiB",
        events,
        stats["buffered_bytes"].as_f64().unwrap_or(0.0) / events.max(1.0),
        stats["buffer_disk_bytes"].as_f64().unwrap_or(0.0) / events.max(1.0),
        rss_kib(c.pid()) / 1024
    );
    let metrics = e2e::client::get(c.admin, "/metrics")?.body;
    let flushes: f64 = metrics
        .lines()
        .find(|l| l.starts_with("collector_buffer_flush_seconds_count"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let reqs = (durable.requests + track.requests) as f64;
    println!("  group commit: {flushes:.0} flushes for {reqs:.0} durable requests ({:.1} requests per flush)", reqs / flushes.max(1.0));
    drop(c);

    // The same with `buffer.durability = "fsync"` (acks survive power loss), side by side.
    let c = CollectorOpts::in_dir(dir.join("buffer-fsync"))
        .env("COLLECTOR_BUFFER__DURABILITY", "fsync")
        .start()?;
    let fsync = load::closed_loop(c.ingest, "/v1/batch", batches, 50, 64, dur).await?;
    row("durable /v1/batch, fsync mode", &fsync);
    let singles = Arc::new(load::bodies(4, 5000, 1));
    let track_fsync = load::open_loop(c.ingest, "/track", singles, 1000, 32, dur).await?;
    row("/track at 1,000 req/s, fsync mode", &track_fsync);
    println!(
        "  fsync / flush throughput ratio: {:.2}",
        fsync.events_per_sec() / durable.events_per_sec()
    );
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Writes `n` seed-shaped events into a stopped collector's buffer (records of 50 events),
/// and the same rows as CSV for `psql \copy`.
fn prefill(buffer_dir: &std::path::Path, csv: &std::path::Path, n: usize) -> anyhow::Result<()> {
    use collector::{buffer::Buffer, event, record::Record};
    let buffer = Buffer::open(buffer_dir, &Default::default())?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(csv)?);
    let mut rng = gen::rng(42);
    let now = time::OffsetDateTime::now_utc();
    let limits = collector::config::Limits::default();
    let ctx = event::Context {
        now,
        user_agent: None,
        source: None,
    };
    let stream = gen::session_stream(&mut rng, n, now - time::Duration::days(6), now, 200);
    let mut stream = stream.into_iter();
    let mut done = 0;
    while done < n {
        let per = 50.min(n - done);
        let mut events = Vec::with_capacity(per);
        for v in stream.by_ref().take(per) {
            let e = event::validate(&v, 0, &limits, &ctx).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let q = |s: &Option<String>| {
                s.as_deref()
                    .map(|x| format!("\"{}\"", x.replace('"', "\"\"")))
                    .unwrap_or_default()
            };
            writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},bench",
                e.event_id,
                e.user_id.map(|u| u.to_string()).unwrap_or_default(),
                q(&e.session_id),
                q(&e.event_type),
                q(&Some(e.event_name.clone())),
                q(&e.page_url),
                q(&e.referrer),
                q(&e.device_type),
                q(&e.browser),
                q(&e.os),
                q(&e.country_code),
                q(&e.region),
                q(&e.city),
                gen::rfc3339(event::from_micros(e.event_time_us)),
                q(&e.properties),
                gen::rfc3339(now),
            )?;
            events.push(e);
        }
        buffer.append_blocking(&Record {
            collector_id: "bench".into(),
            received_at_us: event::micros(now),
            events,
        })?;
        done += per;
    }
    buffer.flush()?;
    out.flush()?;
    Ok(())
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()?;
    anyhow::ensure!(status.success(), "cp -a failed");
    Ok(())
}

/// Drains; returns the database the 4-connection drain filled when `keep` (for `monitor`).
async fn drain(a: &Args, keep: bool) -> anyhow::Result<Option<TestDb>> {
    let n = a.events;
    let mut kept = None;
    println!("\n== drain: {n} buffered events into user_events (unique key + 3 indexes + time index; aggregate upserts included) vs psql \\copy");
    let dir = proc::temp_dir("bench-drain");
    let (master, csv) = (dir.join("master"), dir.join("rows.csv"));
    let t = Instant::now();
    prefill(&master, &csv, n)?;
    println!(
        "  prefilled the buffer in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Start-up time with the buffer full.
    let start_copy = dir.join("startup");
    copy_dir(&master, &start_copy)?;
    let t = Instant::now();
    let mut c = CollectorOpts::in_dir(start_copy).start()?;
    let startup = t.elapsed();
    let rss = rss_kib(c.pid());
    c.terminate(Duration::from_secs(60))?;
    println!(
        "  collector start-up with {n} events buffered: {:.2} s (RSS {} MiB)",
        startup.as_secs_f64(),
        rss / 1024
    );

    // psql \copy of the same rows into a fresh database with the same schema.
    let db = TestDb::migrated("bench_copy").await?;
    let t = Instant::now();
    let cols = "event_id, user_id, session_id, event_type, event_name, page_url, referrer, device_type, browser, os, country_code, region, city, event_time, properties, received_at, collector_id";
    let out = std::process::Command::new("psql")
        .arg(&db.url)
        .arg("-v")
        .arg("ON_ERROR_STOP=1")
        .arg("-c")
        .arg(format!(
            "\\copy user_events ({cols}) FROM '{}' WITH (FORMAT csv)",
            csv.display()
        ))
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "psql \\copy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copy_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(db.count_events().await?.0 as usize == n, "\\copy row count");
    db.drop_db().await?;
    let copy_rate = n as f64 / copy_secs;
    println!("  psql \\copy (CSV, one stream):      {copy_secs:>7.1} s  {copy_rate:>9.0} rows/s");

    for (connections, summaries) in [(1usize, true), (4, true), (1, false)] {
        let db = TestDb::migrated("bench_drain").await?;
        if !summaries {
            // Measures the COPY path alone: the per-batch summary upserts made a no-op.
            db.client()
                .await?
                .batch_execute("CREATE OR REPLACE FUNCTION edge_after_batch() RETURNS VOID LANGUAGE plpgsql AS $$ BEGIN RETURN; END $$")
                .await?;
        }
        let data = dir.join(format!("drain{connections}"));
        copy_dir(&master, &data)?;
        let t = Instant::now();
        let (code, _, err) = proc::collector(
            &[
                "drain",
                "--quiet",
                "--data-dir",
                &data.display().to_string(),
                "--database-url",
                &db.url,
            ],
            &[("COLLECTOR_FORWARD__CONNECTIONS", &connections.to_string())],
        )?;
        let secs = t.elapsed().as_secs_f64();
        anyhow::ensure!(code == 0, "drain failed: {err}");
        anyhow::ensure!(
            db.count_events().await? == (n as i64, n as i64),
            "drain row count"
        );
        let rate = n as f64 / secs;
        println!(
            "  collector drain, {connections} connection(s){}: {secs:>7.1} s  {rate:>9.0} rows/s  ratio to \\copy {:.2}",
            if summaries { ", with summaries   " } else { ", events only      " },
            rate / copy_rate
        );
        let _ = std::fs::remove_dir_all(&data);
        if keep && connections == 4 {
            kept = Some(db);
        } else {
            db.drop_db().await?;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(kept)
}

/// The dashboard's refresh time over `db`, through the real binary (`monitor --bench`).
async fn monitor_refresh(db: &TestDb, n: usize) -> anyhow::Result<()> {
    let client = db.client().await?;
    let edition: String = client
        .query_one("SHOW timescaledb.license", &[])
        .await?
        .get(0);
    println!("\n== monitor: refresh time over the {n} drained events ({edition} edition), 5 refreshes per range, one connection");
    // Statistics, as autovacuum would have gathered them by then.
    client.batch_execute("ANALYZE").await?;
    if edition == "timescale" {
        let t = Instant::now();
        e2e::db::refresh_continuous_aggregates(&client).await?;
        println!(
            "  refreshed the continuous aggregates in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    for range in ["1h", "24h", "7d"] {
        let out = std::process::Command::new(proc::bin("monitor")?)
            .args([
                "--bench",
                "5",
                "--bench-range",
                range,
                "--database-url",
                &db.url,
            ])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "monitor --bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (mut full, mut overview, mut rss) = (Vec::new(), Vec::new(), 0u64);
        let mut per: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let v: serde_json::Value = serde_json::from_str(line)?;
            if let Some(kib) = v["peak_rss_kib"].as_u64() {
                rss = kib;
                continue;
            }
            if let Some(errors) = v["errors"].as_array().filter(|e| !e.is_empty()) {
                anyhow::bail!("monitor --bench: {errors:?}");
            }
            full.push(v["total_ms"].as_f64().unwrap_or(f64::NAN));
            let q = &v["query_ms"];
            let ms = |k: &str| q[k].as_f64().unwrap_or(0.0);
            overview.push(ms("live") + ms("collectors"));
            if let Some(m) = q.as_object() {
                for (k, x) in m {
                    per.entry(k.clone())
                        .or_default()
                        .push(x.as_f64().unwrap_or(0.0));
                }
            }
        }
        let (slowest, slowest_ms) = per
            .into_iter()
            .map(|(k, v)| (k, median(v)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or_default();
        println!(
            "  range {range:>3}: every analysis {:>6.0} ms (median), overview tick (live + collectors) {:>5.0} ms; slowest analysis {slowest} {slowest_ms:.0} ms; monitor peak RSS {:.1} MiB",
            median(full),
            median(overview),
            rss as f64 / 1024.0
        );
    }
    Ok(())
}

/// Requests per second (of 50 events) of the sustained end-to-end phase: well under what
/// collector and database manage together on the 2-core reference machine (the burst phase
/// measures that), so the lag is the pipeline's, not a backlog's.
const SUSTAINED_REQUESTS_PER_SEC: u64 = 300;

/// End to end: HTTP load → collector → TimescaleDB on one machine; a burst as fast as the
/// clients go, then a sustained fixed rate with its lag.
async fn end_to_end(a: &Args) -> anyhow::Result<()> {
    println!("\n== end to end: a burst (64 clients, 50-event batches, {} s), then a sustained fixed rate; collector, database and load generator on the same 2 cores", a.seconds);
    let db = TestDb::migrated("bench_e2e").await?;
    let dir = proc::temp_dir("bench-e2e");
    let c = CollectorOpts::in_dir(dir.join("buffer"))
        .database(&db.url)
        .env("COLLECTOR_FORWARD__LINGER_MS", "200")
        .start()?;
    // Without event ids: every accepted event is a new row (resent ids would deduplicate).
    let batches = Arc::new(load::bodies_without_ids(3, 2000, 50));
    let t = Instant::now();
    let r = load::closed_loop(
        c.ingest,
        "/v1/batch",
        batches.clone(),
        50,
        64,
        Duration::from_secs(a.seconds),
    )
    .await?;
    let acked = r.events as i64;
    row("acknowledged", &r);
    let client = db.client().await?;
    loop {
        let n: i64 = client
            .query_one("SELECT count(*) FROM user_events", &[])
            .await?
            .get(0);
        if n >= acked || t.elapsed() > Duration::from_secs(a.seconds * 20 + 60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let total = t.elapsed();
    let row = client
        .query_one(
            "SELECT count(*),
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM created_at - received_at)),
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM created_at - received_at))
             FROM user_events",
            &[],
        )
        .await?;
    let (rows, p50, p99): (i64, f64, f64) = (row.get(0), row.get(1), row.get(2));
    println!(
        "  burst: {rows} rows of {acked} acknowledged in {:.1} s = {:.0} events/s into TimescaleDB; drained {:.1} s after the load stopped",
        total.as_secs_f64(),
        rows as f64 / total.as_secs_f64(),
        (total.as_secs_f64() - r.elapsed.as_secs_f64()).max(0.0)
    );
    println!("  burst ingest lag (created_at - received_at, includes the backlog): p50 {:.0} ms, p99 {:.0} ms", p50 * 1e3, p99 * 1e3);

    // Sustained: a fixed rate the pipeline keeps up with, and the lag while it does.
    let (rate, per) = (SUSTAINED_REQUESTS_PER_SEC, 50u64);
    let since = time::OffsetDateTime::now_utc();
    let s = load::open_loop(
        c.ingest,
        "/v1/batch",
        batches,
        rate,
        32,
        Duration::from_secs(a.seconds),
    )
    .await?;
    let sent = s.requests as i64 * per as i64;
    let t = Instant::now();
    let mut landed = 0;
    while t.elapsed() < Duration::from_secs(a.seconds * 10 + 60) {
        landed = client
            .query_one(
                "SELECT count(*) FROM user_events WHERE received_at >= $1",
                &[&since],
            )
            .await?
            .get(0);
        if landed >= sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = client
        .query_one(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM created_at - received_at)),
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM created_at - received_at))
             FROM user_events WHERE received_at >= $1",
            &[&since],
        )
        .await?;
    let (p50, p99): (f64, f64) = (row.get(0), row.get(1));
    println!(
        "  sustained {} events/s ({rate} requests/s of {per}) for {} s: {landed} rows of {sent} sent ({} errors), the last {:.1} s after the load stopped; lag p50 {:.0} ms, p99 {:.0} ms; request p99 {:.1} ms",
        rate * per,
        a.seconds,
        s.errors,
        t.elapsed().as_secs_f64(),
        p50 * 1e3,
        p99 * 1e3,
        s.p99.as_secs_f64() * 1e3
    );
    println!("  collector peak RSS {} MiB", rss_kib(c.pid()) / 1024);
    anyhow::ensure!(
        rows == acked && landed == sent,
        "acknowledged events did not all reach the database ({rows} of {acked}, {landed} of {sent}); the collector's buffer is kept in {}",
        dir.display()
    );
    db.drop_db().await?;
    Ok(())
}

/// Keep-alive clients of the fan-in load in total, split across the collectors.
const FANIN_CLIENTS: usize = 64;
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
    let bound = Duration::from_secs(a.seconds * 20 + 60);
    let mut rows = rows1;
    while rows < acked && stopped.elapsed() < bound {
        tokio::time::sleep(Duration::from_millis(100)).await;
        rows = count_rows(&client).await?;
    }
    let drain_secs = stopped.elapsed().as_secs_f64();
    let keep = format!(
        "the database {} and the buffers ({}) are kept",
        db.name,
        fleet.dirs()
    );
    anyhow::ensure!(
        rows >= acked,
        "fan-in with {n} collectors: only {rows} of {acked} acknowledged events landed within {} s of the load stopping; {keep}",
        bound.as_secs()
    );
    // Nothing left behind to land later: every buffer empties.
    let t = Instant::now();
    let mut left = fleet.buffer()?;
    while left.events > 0 && t.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = fleet.buffer()?;
    }
    anyhow::ensure!(
        left.events == 0,
        "fan-in with {n} collectors: all acknowledged rows landed but the buffers still hold {} events 30 s later; {keep}",
        left.events
    );
    let (rows, distinct) = db.count_events().await?;
    // A request that failed (errors) may still have been stored, never more than that.
    let unacked_max = (errors * FANIN_PER as u64) as i64;
    anyhow::ensure!(
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
async fn fanin(a: &Args) -> anyhow::Result<()> {
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    println!(
        "bench on {}; {}",
        machine(),
        time::OffsetDateTime::now_utc().date()
    );
    if a.what == "ingest" || a.what == "all" {
        ingest(&a).await?;
    }
    if a.what == "e2e" || a.what == "all" {
        end_to_end(&a).await?;
    }
    if matches!(a.what.as_str(), "drain" | "monitor" | "all") {
        let monitor = a.what != "drain";
        if let Some(db) = drain(&a, monitor).await? {
            monitor_refresh(&db, a.events).await?;
            if a.keep {
                // TestDb drops nothing by itself: only drop_db() does.
                println!("  kept the database: {}", db.url);
            } else {
                db.drop_db().await?;
            }
        }
    }
    if a.what == "fanin" || a.what == "all" {
        fanin(&a).await?;
    }
    if a.what == "analyses" {
        e2e::analyses_bench::run(a.events as u64 / 5, a.events as u64).await?;
    }
    Ok(())
}
