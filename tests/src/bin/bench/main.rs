//! `bench`: the project's benchmark command. Every figure is measured in one run on this
//! machine, side by side with its baseline, and printed with the ratio and its target
//! (`figure | measured | baseline | ratio | target MET/NOT MET`).
//!
//! ```text
//! cargo run --release -p e2e --bin bench -- [ingest|startup|e2e|drain|monitor|fanin|all] [--seconds N] [--events N] [--collectors 1,2,4,8]
//! ```
//!
//! - `ingest`: durable-ack throughput (64 keep-alive clients, 50-event batches) against the
//!   no-op endpoint `/v1/validate` (parse and validate, no buffer), flush and fsync mode,
//!   in alternating 2 s slices (see `ingest.rs`); single-event `/track` latency at a fixed
//!   1,000 requests/s; the collector's peak RSS.
//! - `startup`: collector start-up time with `--events` events buffered.
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

mod drain;
mod fanin;
mod ingest;
mod mem;
mod pipeline;

use anyhow::Context;
use e2e::{load::LoadReport, proc};
use std::time::Duration;

struct Args {
    what: String,
    seconds: u64,
    events: usize,
    /// Keep the database the monitor step measured (its URL is printed).
    keep: bool,
    /// Fleet sizes of the fan-in step.
    collectors: Vec<usize>,
    /// Drain: only the runs with every per-batch summary (1 and 4 connections).
    quick: bool,
    /// Analyses: the servers to time (one per edition); empty = the shared test server.
    servers: Vec<String>,
    /// Drain: the stretch of event time the prefilled buffer's events cover.
    span: Duration,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        what: "all".into(),
        seconds: 10,
        events: 1_000_000,
        keep: false,
        collectors: vec![1, 2, 4, 8],
        quick: false,
        servers: Vec::new(),
        span: Duration::from_secs(6 * 86_400),
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--seconds" => a.seconds = it.next().context("--seconds N")?.parse()?,
            "--events" => a.events = it.next().context("--events N")?.parse()?,
            "--keep" => a.keep = true,
            "--quick" => a.quick = true,
            "--span" => {
                let v = it.next().context("--span DURATION")?;
                a.span = humantime::parse_duration(&v)
                    .with_context(|| format!("--span {v}: a duration such as 6d or 1h"))?;
                anyhow::ensure!(a.span.as_secs() >= 60, "--span: at least 1m");
            }
            "--servers" => {
                a.servers = it
                    .next()
                    .context("--servers URL,URL")?
                    .split(',')
                    .map(str::to_string)
                    .collect();
            }
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
                        && a.collectors
                            .iter()
                            .all(|n| (1..=fanin::FANIN_CLIENTS).contains(n)),
                    "--collectors: each fleet size from 1 to {}",
                    fanin::FANIN_CLIENTS
                );
            }
            "-h" | "--help" => {
                println!(
                    "usage: bench [ingest|startup|e2e|drain|monitor|fanin|analyses|all] [--seconds N] [--events N] [--collectors 1,2,4,8] [--keep] [--quick] [--span D] [--servers URL,URL]\n\n\
                          ingest:  durable acks vs no-op endpoint (flush and fsync mode), /track latency at 1,000 req/s\n\
                          startup: collector start-up time with --events events buffered\n\
                          e2e:     HTTP -> TimescaleDB: burst rate, then lag at a sustained rate\n\
                          drain:   drain a pre-filled buffer vs psql \\copy of the same rows\n\
                          monitor: dashboard refresh time over the drained events (with drain)\n\
                          fanin:   1, 2, 4, 8 collectors into one database: acked vs landed, buffer growth\n\
                          analyses: every analysis x range as `monitor query`, at --events/5 and --events (SQL-loaded)\n\
                          all:     every one of them (the default)\n\n\
                          --seconds N         length of each load (default 10; per fleet for fanin)\n\
                          --events N          events in the drained buffer (default 1,000,000)\n\
                          --collectors LIST   fleet sizes of fanin (default 1,2,4,8)\n\
                          --keep              keep the database the monitor step (analyses: the larger load) measured\n\
                          --quick             drain: only the runs with every summary (1 and 4 connections)\n\
                          --span D            drain: event time the buffered events cover (default 6d; 1h: an hour's outage)\n\
                          --servers URL,URL   analyses: time each server (e.g. an Apache and a Community cluster) in one run, one table edition x analysis x range"
                );
                std::process::exit(0);
            }
            w @ ("ingest" | "startup" | "e2e" | "drain" | "monitor" | "fanin" | "analyses"
            | "all") => a.what = w.into(),
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

/// One figure with its baseline, ratio and target side by side, and whether it is met.
fn verdict(
    name: &str,
    measured: &str,
    baseline: &str,
    ratio: Option<f64>,
    target: &str,
    met: bool,
) {
    let ratio = ratio
        .map(|r| format!("{r:.2}"))
        .unwrap_or_else(|| "-".into());
    let baseline = if baseline.is_empty() { "-" } else { baseline };
    println!(
        "  {name} | {measured} | {baseline} | {ratio} | {target} {}",
        if met { "MET" } else { "NOT MET" }
    );
}

fn rss_kib(pid: u32) -> u64 {
    proc::peak_rss_kib(pid).unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    // The binaries are built (if out of date) before any benchmark's clock starts: the
    // first start in a process runs `cargo build --bins` (`proc::bin`), and timed inside a
    // benchmark it was once reported as a 20–37 s collector start-up.
    proc::bin("collector")?;
    println!(
        "bench on {}; {}",
        machine(),
        time::OffsetDateTime::now_utc().date()
    );
    if a.what == "ingest" || a.what == "all" {
        ingest::ingest(&a).await?;
    }
    if a.what == "startup" || a.what == "all" {
        ingest::startup(&a).await?;
    }
    if a.what == "e2e" || a.what == "all" {
        pipeline::end_to_end(&a).await?;
    }
    if matches!(a.what.as_str(), "drain" | "monitor" | "all") {
        let monitor = a.what != "drain";
        if let Some(db) = drain::drain(&a, monitor).await? {
            drain::monitor_refresh(&db, a.events).await?;
            if a.keep {
                println!("  kept the database: {}", db.keep());
            } else {
                db.drop_db().await?;
            }
        }
    }
    if a.what == "fanin" || a.what == "all" {
        fanin::fanin(&a).await?;
    }
    if a.what == "analyses" {
        e2e::analyses_bench::run(a.events as u64 / 5, a.events as u64, a.keep, &a.servers).await?;
    }
    Ok(())
}
