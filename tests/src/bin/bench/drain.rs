//! `bench drain` and `bench monitor`: a pre-filled buffer drained by `collector drain` against
//! `psql \copy` of the same rows, then the dashboard's refresh time over what it filled.

use std::{
    io::Write,
    time::{Duration, Instant},
};

use e2e::{
    db::TestDb,
    gen,
    proc::{self, CollectorOpts},
};

use super::{rss_kib, Args};

/// Writes `n` seed-shaped events into a stopped collector's buffer (records of 50 events),
/// and, given `csv`, the same rows as CSV for `psql \copy`.
pub(crate) fn prefill(
    buffer_dir: &std::path::Path,
    csv: Option<&std::path::Path>,
    n: usize,
    span: std::time::Duration,
) -> anyhow::Result<()> {
    use collector::{buffer::Buffer, event, record::Record};
    let buffer = Buffer::open(buffer_dir, &Default::default())?;
    let mut out = match csv {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => None,
    };
    let mut rng = gen::rng(42);
    let now = time::OffsetDateTime::now_utc();
    let limits = collector::config::Limits::default();
    let ctx = event::Context {
        now,
        user_agent: None,
        source: None,
    };
    let stream = gen::session_stream(&mut rng, n, now - time::Duration::try_from(span)?, now, 200);
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
            let Some(out) = out.as_mut() else {
                events.push(e);
                continue;
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
    if let Some(out) = out.as_mut() {
        out.flush()?;
    }
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
pub(crate) async fn drain(a: &Args, keep: bool) -> anyhow::Result<Option<TestDb>> {
    let n = a.events;
    let mut kept = None;
    println!("\n== drain: {n} buffered events over {} into user_events (unique key + 3 indexes + time index; aggregate upserts included) vs psql \\copy", humantime::format_duration(a.span));
    let dir = proc::temp_dir("bench-drain");
    let (master, csv) = (dir.join("master"), dir.join("rows.csv"));
    let t = Instant::now();
    prefill(&master, Some(&csv), n, a.span)?;
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

    // (connections, summaries, retention rollup): the rows without the retention rollup
    // (migration 0014, made a no-op) show what its per-batch maintenance costs.
    // (connections, summaries, retention, deferred): deferred = `forward.maintenance =
    // "deferred"`, the buffer COPYed into the queue and applied by the collector's applier;
    // the drain ends when both are done, and the time the buffer took is printed apart.
    for (connections, summaries, retention, deferred) in [
        (1usize, true, true, false),
        (1, true, false, false),
        (4, true, true, false),
        (4, true, false, false),
        (1, false, false, false),
        (1, true, true, true),
        (4, true, true, true),
    ] {
        if a.quick && !(summaries && retention) {
            continue;
        }
        let db = TestDb::migrated("bench_drain").await?;
        // Per-function timings of the maintenance, printed after the drain (a superuser's
        // setting: on another server without the right the breakdown is skipped).
        let admin = db.client().await?;
        let timed = admin
            .batch_execute(&format!(
                "ALTER DATABASE \"{}\" SET track_functions = 'pl'",
                db.name
            ))
            .await
            .is_ok();
        if !retention {
            admin
                .batch_execute("CREATE OR REPLACE FUNCTION edge_rollup_retention() RETURNS VOID LANGUAGE plpgsql AS $$ BEGIN RETURN; END $$")
                .await?;
        }
        if !summaries {
            // Measures the COPY path alone (staging, the insert `ON CONFLICT DO NOTHING`):
            // the per-batch summaries (0009-0010) and rollups (0011-0015) made no-ops.
            admin
                .batch_execute(
                    "CREATE OR REPLACE FUNCTION edge_after_batch() RETURNS VOID LANGUAGE plpgsql AS $$ BEGIN RETURN; END $$;
                     CREATE OR REPLACE FUNCTION edge_rollups() RETURNS VOID LANGUAGE plpgsql AS $$ BEGIN RETURN; END $$",
                )
                .await?;
        }
        drop(admin);
        let data = dir.join(format!("drain{connections}"));
        copy_dir(&master, &data)?;
        let t = Instant::now();
        let maintenance = if deferred { "deferred" } else { "in-batch" };
        let args = [
            "drain".to_string(),
            "--quiet".into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--database-url".into(),
            db.url.clone(),
        ];
        let run = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            proc::collector(
                &args,
                &[
                    ("COLLECTOR_FORWARD__CONNECTIONS", &connections.to_string()),
                    ("COLLECTOR_FORWARD__MAINTENANCE", maintenance),
                ],
            )
        });
        // Deferred: when every row was in the database (queued or applied), the buffer was empty.
        let buffer_secs = if deferred {
            Some(all_in_database(&db, n, &run).await?)
        } else {
            None
        };
        let (code, _, err) = run.await??;
        let secs = t.elapsed().as_secs_f64();
        anyhow::ensure!(code == 0, "drain failed: {err}");
        if let Some(buffer_secs) = buffer_secs {
            let rate = n as f64 / buffer_secs;
            println!(
                "  collector drain, {connections} connection(s), deferred, buffer empty (queued): {buffer_secs:>7.1} s  {rate:>9.0} rows/s  ratio to \\copy {:.2}",
                rate / copy_rate
            );
        }
        anyhow::ensure!(
            db.count_events().await? == (n as i64, n as i64),
            "drain row count"
        );
        let rate = n as f64 / secs;
        println!(
            "  collector drain, {connections} connection(s){}: {secs:>7.1} s  {rate:>9.0} rows/s  ratio to \\copy {:.2}",
            match (summaries, retention, deferred) {
                (_, _, true) => ", deferred, applied",
                (true, true, _) => ", with summaries   ",
                (true, false, _) => ", without retention",
                _ => ", events only      ",
            },
            rate / copy_rate
        );
        if timed && summaries && retention {
            print_function_times(&db).await?;
        }
        let _ = std::fs::remove_dir_all(&data);
        if keep && connections == 4 && retention && !deferred {
            kept = Some(db);
        } else {
            db.drop_db().await?;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(kept)
}

/// Seconds until all `n` rows are in the database, queued (`edge_pending`) or applied
/// (`user_events`), polled every 200 ms while `run` (the drain) goes on; the drain's whole
/// time if it ends first.
async fn all_in_database<T>(
    db: &TestDb,
    n: usize,
    run: &tokio::task::JoinHandle<T>,
) -> anyhow::Result<f64> {
    let t = Instant::now();
    let client = db.client().await?;
    while !run.is_finished() {
        let landed: i64 = client
            .query_one(
                "SELECT (SELECT count(*) FROM edge_pending) + (SELECT count(*) FROM user_events)",
                &[],
            )
            .await?
            .get(0);
        if landed as usize >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Where the drain's database time went: the maintenance functions' own time
/// (`pg_stat_user_functions`, self time, so nested calls are not counted twice), in ms, as
/// a share of them all, and their calls.
async fn print_function_times(db: &TestDb) -> anyhow::Result<()> {
    let client = db.client().await?;
    // The statistics collector reports a backend's counts when it goes idle; give it a moment.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let rows = client
        .query(
            "SELECT funcname::text, calls, self_time FROM pg_stat_user_functions
             WHERE funcname LIKE 'edge\\_%' AND self_time > 0 ORDER BY self_time DESC LIMIT 12",
            &[],
        )
        .await?;
    let total: f64 = rows.iter().map(|r| r.get::<_, f64>(2)).sum();
    println!(
        "    maintenance, the functions' own time (pg_stat_user_functions), {total:.0} ms in all:"
    );
    for r in rows {
        let (name, calls, ms): (String, i64, f64) = (r.get(0), r.get(1), r.get(2));
        println!(
            "      {name:<32} {ms:>8.0} ms  {:>4.1} %  {calls:>6} calls",
            100.0 * ms / total.max(1e-9)
        );
    }
    Ok(())
}

/// The dashboard's refresh time over `db`, through the real binary (`monitor --bench`).
pub(crate) async fn monitor_refresh(db: &TestDb, n: usize) -> anyhow::Result<()> {
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
    for range in ["1h", "24h", "7d", "30d"] {
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
