//! `bench e2e`: HTTP load → collector → TimescaleDB on one machine.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use e2e::{
    db::TestDb,
    load,
    proc::{self, CollectorOpts},
};

use super::{mem::Sampler, row, rss_kib, Args};

/// Requests per second (of 50 events) of the sustained end-to-end phase: well under what
/// collector and database manage together on the 2-core reference machine (the burst phase
/// measures that), so the lag is the pipeline's, not a backlog's.
const SUSTAINED_REQUESTS_PER_SEC: u64 = 300;

/// End to end: HTTP load → collector → TimescaleDB on one machine; a burst as fast as the
/// clients go, then a sustained fixed rate with its lag.
pub(crate) async fn end_to_end(a: &Args) -> anyhow::Result<()> {
    println!("\n== end to end: a burst (64 clients, 50-event batches, {} s), then a sustained fixed rate; collector, database and load generator on the same 2 cores", a.seconds);
    let db = TestDb::migrated("bench_e2e").await?;
    let dir = proc::temp_dir("bench-e2e");
    let c = CollectorOpts::in_dir(dir.join("buffer"))
        .database(&db.url)
        .env("COLLECTOR_FORWARD__LINGER_MS", "200")
        .env("COLLECTOR_BUFFER__MAX_BYTES", (1u64 << 30).to_string())
        .start()?;
    let sampler = Sampler::start(c.pid());
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
        // The burst acknowledges ~2M events in 10 s; with the per-batch rollups the database
        // takes minutes to land them (the drain rate), and the figure is the time to the last.
        if n >= acked || t.elapsed() > Duration::from_secs(a.seconds * 60 + 60) {
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
    // Percentiles of no rows are NULL (a database too slow to land any in time).
    let (rows, p50, p99): (i64, f64, f64) = (
        row.get(0),
        row.get::<_, Option<f64>>(1).unwrap_or(f64::NAN),
        row.get::<_, Option<f64>>(2).unwrap_or(f64::NAN),
    );
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
    let (p50, p99): (f64, f64) = (
        row.get::<_, Option<f64>>(0).unwrap_or(f64::NAN),
        row.get::<_, Option<f64>>(1).unwrap_or(f64::NAN),
    );
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
    let rss = rss_kib(c.pid());
    println!(
        "  collector memory: peak RSS (VmHWM) {:.1} MiB; largest sample {}",
        rss as f64 / 1024.0,
        sampler.finish().describe()
    );
    super::verdict(
        "collector peak RSS end to end (1 GiB buffer limit)",
        &format!("{:.1} MiB", rss as f64 / 1024.0),
        "",
        None,
        "<= 96 MiB",
        rss <= 96 * 1024,
    );
    // The burst's rows once more: when the burst outlasted its wait above, the forwarder
    // went on landing them (before the sustained rows: it forwards oldest first).
    let rows: i64 = client
        .query_one(
            "SELECT count(*) FROM user_events WHERE received_at < $1",
            &[&since],
        )
        .await?
        .get(0);
    anyhow::ensure!(
        rows == acked && landed == sent,
        "acknowledged events did not all reach the database ({rows} of {acked}, {landed} of {sent}); the collector's buffer is kept in {}",
        dir.display()
    );
    db.drop_db().await?;
    Ok(())
}
