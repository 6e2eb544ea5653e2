//! `bench ingest`.

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

use super::{row, rss_kib, Args};

pub(crate) async fn ingest(a: &Args) -> anyhow::Result<()> {
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
