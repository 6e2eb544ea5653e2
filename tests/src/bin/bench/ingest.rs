//! `bench ingest` and `bench startup`.
//!
//! `ingest` runs two collectors side by side without a database (the buffers only grow):
//! one in `flush` mode, one in `fsync` mode. The load alternates short slices — no-op
//! `/v1/validate` on the first, durable `/v1/batch` on the first, durable `/v1/batch` on the
//! second — round after round, so that each ratio compares loads measured under the same
//! conditions of a shared machine (a neighbour's build slows every load of a round, not
//! one of them). Then single-event `/track` latency at a fixed 1,000 requests/s on each.
//!
//! `startup` pre-fills a buffer with `--events` events and times a collector's start until
//! it listens, with its peak RSS.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use e2e::{
    load::{self, Merged},
    proc::{self, CollectorOpts},
};

use super::{
    mem::{Rollup, Sampler},
    row, rss_kib, verdict, Args,
};

/// Length of one slice of the alternating load.
const SLICE: Duration = Duration::from_secs(2);
/// Clients and events per request of the throughput load.
const CLIENTS: usize = 64;
const PER: usize = 50;

pub(crate) async fn ingest(a: &Args) -> anyhow::Result<()> {
    println!("\n== ingest: two collectors without a database (the buffers only grow), flush and fsync mode; load generator on the same cores");
    let dir = proc::temp_dir("bench-ingest");
    let flush = CollectorOpts::in_dir(dir.join("buffer")).start()?;
    let fsync = CollectorOpts::in_dir(dir.join("buffer-fsync"))
        .env("COLLECTOR_BUFFER__DURABILITY", "fsync")
        .start()?;
    std::thread::sleep(Duration::from_secs(1));
    let idle = Rollup::of(flush.pid()).unwrap_or_default();
    println!(
        "  flush-mode collector idle (started, no request yet): {}",
        idle.describe()
    );
    let sampler = Sampler::start(flush.pid());
    let batches = Arc::new(load::bodies(1, 2000, PER));
    let warm = Duration::from_secs(1);
    let mut scratch = Merged::new(PER);
    for (addr, path) in [
        (flush.ingest, "/v1/validate"),
        (flush.ingest, "/v1/batch"),
        (fsync.ingest, "/v1/batch"),
    ] {
        load::closed_loop_into(&mut scratch, addr, path, batches.clone(), CLIENTS, warm).await?;
    }
    let rounds = (a.seconds / SLICE.as_secs()).max(1);
    let (mut noop, mut durable, mut strict) =
        (Merged::new(PER), Merged::new(PER), Merged::new(PER));
    // CPU seconds per load: [collector under load, load generator, whole machine].
    let mut cpu = [[0f64; 3]; 3];
    for r in 0..rounds {
        // The order turns every round, so no load always follows the same one.
        let mut order: Vec<(usize, &mut Merged, u32, std::net::SocketAddr, &str)> = vec![
            (0, &mut noop, flush.pid(), flush.ingest, "/v1/validate"),
            (1, &mut durable, flush.pid(), flush.ingest, "/v1/batch"),
            (2, &mut strict, fsync.pid(), fsync.ingest, "/v1/batch"),
        ];
        order.rotate_left((r % 3) as usize);
        for (k, into, pid, addr, path) in order {
            let before = cpu_now(pid);
            load::closed_loop_into(into, addr, path, batches.clone(), CLIENTS, SLICE).await?;
            let after = cpu_now(pid);
            for (sum, (b, a)) in cpu[k].iter_mut().zip(before.iter().zip(after)) {
                *sum += a - b;
            }
        }
    }
    let (noop, durable, strict) = (noop.report(), durable.report(), strict.report());
    println!(
        "  {CLIENTS} keep-alive clients, {PER}-event batches, {rounds} rounds of {} s slices (validate / batch / batch fsync, order turning):",
        SLICE.as_secs()
    );
    row("no-op /v1/validate (no buffer)", &noop);
    row("durable /v1/batch (flush mode)", &durable);
    row("durable /v1/batch (fsync mode)", &strict);
    println!("  CPU per request (collector / load generator) and cores busy (collector, load generator, whole machine):");
    for (k, (name, r)) in [("no-op", &noop), ("flush", &durable), ("fsync", &strict)]
        .into_iter()
        .enumerate()
    {
        let secs = r.elapsed.as_secs_f64();
        let per = |c: f64| c / r.requests.max(1) as f64 * 1e6;
        println!(
            "  {name:<6} {:>6.0} µs / {:>6.0} µs per request; cores {:.2} / {:.2} / {:.2} of {}",
            per(cpu[k][0]),
            per(cpu[k][1]),
            cpu[k][0] / secs,
            cpu[k][1] / secs,
            cpu[k][2] / secs,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
    }
    let flush_rss = rss_kib(flush.pid());
    let at_peak = sampler.finish();
    println!(
        "  flush-mode collector under the throughput loads: peak RSS (VmHWM) {:.1} MiB; largest sample {}",
        flush_rss as f64 / 1024.0,
        at_peak.describe()
    );
    let dur = Duration::from_secs(a.seconds);
    let track = load::open_loop(
        flush.ingest,
        "/track",
        Arc::new(load::bodies(2, 5000, 1)),
        1000,
        32,
        dur,
    )
    .await?;
    row("/track at 1,000 req/s, flush mode", &track);
    let track_fsync = load::open_loop(
        fsync.ingest,
        "/track",
        Arc::new(load::bodies(4, 5000, 1)),
        1000,
        32,
        dur,
    )
    .await?;
    row("/track at 1,000 req/s, fsync mode", &track_fsync);
    let stats = e2e::client::get(flush.admin, "/v1/buffer")?.json();
    let events = stats["buffered_events"].as_f64().unwrap_or(0.0).max(1.0);
    let metrics = e2e::client::get(flush.admin, "/metrics")?.body;
    let flushes: f64 = metrics
        .lines()
        .find(|l| l.starts_with("collector_buffer_flush_seconds_count"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let reqs = (durable.requests + track.requests + scratch.report().requests / 3) as f64;
    println!(
        "  flush-mode buffer: {events:.0} events, {:.0} logical bytes/event, {:.0} disk bytes/event; group commit {:.1} requests per flush",
        stats["buffered_bytes"].as_f64().unwrap_or(0.0) / events,
        stats["buffer_disk_bytes"].as_f64().unwrap_or(0.0) / events,
        reqs / flushes.max(1.0)
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("  figure | measured | baseline (same run) | ratio | target");
    let ratio = durable.events_per_sec() / noop.events_per_sec();
    verdict(
        "durable ingest, flush mode",
        &format!(
            "{:.0} events/s, p99 {:.1} ms",
            durable.events_per_sec(),
            ms(durable.p99)
        ),
        &format!("no-op {:.0} events/s", noop.events_per_sec()),
        Some(ratio),
        "ratio >= 0.70, >= 150,000 events/s, p99 <= 40 ms",
        ratio >= 0.70 && durable.events_per_sec() >= 150_000.0 && ms(durable.p99) <= 40.0,
    );
    let fsync_ratio = strict.events_per_sec() / durable.events_per_sec();
    verdict(
        "durable ingest, fsync mode",
        &format!(
            "{:.0} events/s, p99 {:.1} ms",
            strict.events_per_sec(),
            ms(strict.p99)
        ),
        "flush mode above",
        Some(fsync_ratio),
        "ratio >= 0.85",
        fsync_ratio >= 0.85,
    );
    verdict(
        "/track at 1,000 req/s",
        &format!(
            "p50 {:.1} ms, p99 {:.1} ms (fsync: p99 {:.1} ms)",
            ms(track.p50),
            ms(track.p99),
            ms(track_fsync.p99)
        ),
        "",
        None,
        "p99 <= 15 ms (flush mode)",
        ms(track.p99) <= 15.0,
    );
    verdict(
        "collector peak RSS under ingest",
        &format!("{:.1} MiB", flush_rss as f64 / 1024.0),
        "",
        None,
        "<= 64 MiB",
        flush_rss <= 64 * 1024,
    );
    drop(flush);
    drop(fsync);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// CPU seconds so far: the process `pid`, this process (the load generator), and the whole
/// machine (busy time of every CPU in `/proc/stat`: anything else running counts too).
fn cpu_now(pid: u32) -> [f64; 3] {
    let machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().next()?.to_string();
            let f: Vec<f64> = line
                .split_whitespace()
                .skip(1)
                .map(|v| v.parse().unwrap_or(0.0))
                .collect();
            // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
            let busy: f64 = f.iter().take(8).sum::<f64>() - f.get(3)? - f.get(4)?;
            Some(busy / 100.0)
        })
        .unwrap_or(0.0);
    [
        e2e::fleet::cpu_seconds(pid).unwrap_or(0.0),
        e2e::fleet::own_cpu_seconds(),
        machine,
    ]
}

/// Start-up time with `--events` events buffered.
pub(crate) async fn startup(a: &Args) -> anyhow::Result<()> {
    let n = a.events;
    println!("\n== start-up with {n} events buffered (records of 50, session-shaped)");
    let dir = proc::temp_dir("bench-startup");
    let t = Instant::now();
    super::drain::prefill(&dir.join("buffer"), None, n, a.span)?;
    println!("  prefilled in {:.1} s", t.elapsed().as_secs_f64());
    let mut times = Vec::new();
    let mut rss = 0;
    let mut now = Rollup::default();
    for _ in 0..3 {
        let t = Instant::now();
        let mut c = CollectorOpts::in_dir(dir.join("buffer")).start()?;
        times.push(t.elapsed().as_secs_f64());
        rss = rss.max(rss_kib(c.pid()));
        now = Rollup::of(c.pid()).unwrap_or_default();
        c.terminate(Duration::from_secs(60))?;
    }
    times.sort_by(f64::total_cmp);
    println!(
        "  resident once listening (peak {:.1} MiB): {}",
        rss as f64 / 1024.0,
        now.describe()
    );
    verdict(
        &format!("start-up, {n} events buffered"),
        &format!(
            "{:.2} s (median of 3: {:.2}-{:.2}), RSS {:.0} MiB",
            times[1],
            times[0],
            times[2],
            rss as f64 / 1024.0
        ),
        "",
        None,
        "< 1 s",
        times[1] < 1.0,
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
