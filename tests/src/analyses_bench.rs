//! `bench analyses`: every analysis as the real `monitor query` process, per range, over
//! session-shaped events loaded straight into a fresh database (SQL, not the ingest path:
//! this measures the queries, and loads 10M events in minutes), at two sizes, so the table
//! shows each figure and how it grows with the number of events. `--servers URL,URL` times
//! several clusters in one run (an Apache and a Community one: CI has only the first), and
//! the table is then edition × analysis × range.
//!
//! The loader writes what the forwarder would: `user_events` rows, then the per-batch
//! tables rebuilt from them with the migrations' own backfill statements (actors, daily
//! actors, transitions, session funnels, retention summaries and their counters, the activity rollups). Timings are medians of 3 runs of the whole process (connect,
//! query, print), as an on-call engineer waits for them.

use std::{collections::BTreeMap, process::Command, time::Instant};

use anyhow::Context;

use crate::{db::TestDb, proc};

/// The analyses timed, as `monitor query` names them.
pub const ANALYSES: [&str; 6] = ["live", "funnel", "retention", "paths", "breakdown", "pages"];
/// The ranges timed.
pub const RANGES: [&str; 4] = ["1h", "24h", "7d", "30d"];
/// The target per analysis and range, in ms (issue #15).
pub const TARGET_MS: f64 = 150.0;
/// The row of the dashboard's full refresh (every analysis of every tab, one connection).
pub const DASHBOARD: &str = "dashboard";
/// Its target per range, in ms (issue #15).
pub const DASHBOARD_TARGET_MS: f64 = 500.0;

/// Loads `n` session-shaped events over the last 30 days into a new database on `server`.
pub async fn load(server: &str, n: u64) -> anyhow::Result<TestDb> {
    let db = TestDb::empty_on(server, "anabench").await?;
    db.migrate().await?;
    let c = db.client().await?;
    let started = Instant::now();
    // Sessions of 3 events 20 s apart; a user per 3 sessions on average; every fifth user a
    // string id, one session in eight anonymous. Times spread evenly over 30 days.
    c.batch_execute(&format!(
        "INSERT INTO user_events (event_id, user_id, app_user_id, anonymous_id, session_id,
                                  event_type, event_name, page_url, device_type, country_code,
                                  event_time, received_at)
         SELECT gen_random_uuid(),
                CASE WHEN anon OR u % 5 = 0 THEN NULL ELSE u END,
                CASE WHEN anon THEN NULL WHEN u % 5 = 0 THEN 'usr_' || u ELSE u::TEXT END,
                CASE WHEN anon THEN 'anon-' || s END,
                's' || s,
                CASE WHEN k = 0 THEN 'view' ELSE 'action' END,
                (ARRAY['page_view','add_to_cart','checkout_start','purchase','search'])[1 + (k + s % 3 * (k % 2)) % 5],
                '/p/' || ((s * 7 + k) % 500),
                (ARRAY['desktop','mobile','tablet','other'])[1 + s % 4],
                (ARRAY['US','CN','DE','FR','BR','IN'])[1 + u % 6],
                t, t
         FROM (
             SELECT s, k, (hashint8(s) & 2147483647) % GREATEST({n} / 9, 1) AS u,
                    (hashint8(s * 31) & 7) = 0 AS anon,
                    now() - INTERVAL '30 days'
                        + (s::FLOAT8 / GREATEST({n} / 3, 1)) * INTERVAL '30 days'
                        + k * INTERVAL '20 seconds' AS t
             FROM generate_series(0::INT8, {n}::INT8 / 3 - 1) s, generate_series(0, 2) k
         ) g
         WHERE t < now()"
    ))
    .await
    .context("load user_events")?;
    // One statement per summary, each timed: at 50M events the loader runs for most of an
    // hour, and the steps say where.
    let steps: [(&str, &str); 8] = [
        (
            "actor_first_seen",
            "INSERT INTO actor_first_seen
             SELECT COALESCE(app_user_id, user_id::TEXT, anonymous_id), min(event_time)
             FROM user_events GROUP BY 1 HAVING COALESCE(app_user_id, user_id::TEXT, anonymous_id) IS NOT NULL",
        ),
        (
            "actor_daily",
            "INSERT INTO actor_daily
             SELECT DISTINCT time_bucket(INTERVAL '1 day', event_time), COALESCE(app_user_id, user_id::TEXT, anonymous_id)
             FROM user_events WHERE COALESCE(app_user_id, user_id::TEXT, anonymous_id) IS NOT NULL",
        ),
        (
            "transitions hourly",
            "INSERT INTO rollup_transitions_hourly
             SELECT * FROM edge_transitions_between(now() - INTERVAL '31 days', now() + INTERVAL '1 hour', INTERVAL '1 hour')",
        ),
        (
            "transitions by minute",
            "INSERT INTO rollup_transitions_minute
             SELECT * FROM edge_transitions_between(now() - INTERVAL '31 days', now() + INTERVAL '1 hour', INTERVAL '1 minute')",
        ),
        (
            "transitions daily",
            "SELECT edge_rebuild_transitions_daily()",
        ),
        ("funnel", "SELECT edge_rebuild_funnel()"),
        ("activity", "SELECT edge_rebuild_activity()"),
        ("retention", "SELECT edge_rebuild_retention()"),
    ];
    println!(
        "  {n} events: user_events in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let rebuild = drop_keys(&c).await?;
    for (what, sql) in steps {
        let t = Instant::now();
        c.batch_execute(sql)
            .await
            .with_context(|| format!("build {what}"))?;
        println!("    {what}: {:.0} s", t.elapsed().as_secs_f64());
    }
    let t = Instant::now();
    c.batch_execute("SET maintenance_work_mem = '1GB'").await?;
    for sql in &rebuild {
        c.batch_execute(sql)
            .await
            .with_context(|| format!("rebuild: {sql}"))?;
    }
    println!(
        "    {} keys and indexes rebuilt: {:.0} s",
        rebuild.len(),
        t.elapsed().as_secs_f64()
    );
    // As autovacuum would have by then (visibility map, statistics).
    let t = Instant::now();
    c.batch_execute("VACUUM ANALYZE").await?;
    println!("    vacuum analyze: {:.0} s", t.elapsed().as_secs_f64());
    // Community edition: materialise the continuous aggregates now, as their policies would
    // have by then; otherwise the policies' first runs over the whole load overlap the
    // timings (seen at 50M: paths 196 ms while they ran, 88 ms after).
    let t = Instant::now();
    let caggs = crate::db::refresh_continuous_aggregates(&c).await?;
    if caggs > 0 {
        println!(
            "    {caggs} continuous aggregates refreshed by hand: {:.0} s",
            t.elapsed().as_secs_f64()
        );
    }
    println!(
        "  loaded {n} events and their summaries in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(db)
}

/// Drops the primary keys, unique constraints and indexes of the summary tables (every
/// plain table of `public`; not the hypertables, whose chunks the events are already in)
/// and returns the statements that build them again, definitions read from the catalog.
///
/// Why: the summaries are bulk inserts of tens of millions of rows in hash order; kept
/// indexes make each row a random B-tree insert into an index far larger than
/// `shared_buffers` (at 2M events the activity rebuild took 38 s with its keys, 28 s with
/// them built after; at 50M it had not ended after an hour). The rebuild functions insert
/// after a `TRUNCATE`, without `ON CONFLICT`, so they need no key while they run.
async fn drop_keys(c: &tokio_postgres::Client) -> anyhow::Result<Vec<String>> {
    let rows = c
        .query(
            "WITH tables AS (
                 SELECT t.oid FROM pg_class t
                 WHERE t.relnamespace = 'public'::regnamespace AND t.relkind = 'r'
                   AND NOT EXISTS (SELECT 1 FROM timescaledb_information.hypertables h
                                   WHERE h.hypertable_schema = 'public'
                                     AND h.hypertable_name = t.relname)
             )
             SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', k.conrelid::regclass, k.conname),
                    format('ALTER TABLE %s ADD CONSTRAINT %I %s', k.conrelid::regclass, k.conname,
                           pg_get_constraintdef(k.oid)),
                    0 AS pass
             FROM pg_constraint k JOIN tables t ON t.oid = k.conrelid
             WHERE k.contype IN ('p', 'u')
             UNION ALL
             SELECT format('DROP INDEX %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid), 1
             FROM pg_index i JOIN tables t ON t.oid = i.indrelid
             WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
             ORDER BY 3",
            &[],
        )
        .await
        .context("read the summary tables' keys")?;
    let mut rebuild = Vec::new();
    for row in rows {
        let (drop, create): (String, String) = (row.get(0), row.get(1));
        c.batch_execute(&drop)
            .await
            .with_context(|| format!("before the load: {drop}"))?;
        rebuild.push(create);
    }
    Ok(rebuild)
}

/// Median wall time of 3 `monitor query WHAT --since RANGE` processes, in ms.
pub fn time_query(url: &str, what: &str, range: &str) -> anyhow::Result<f64> {
    let mut ms = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let out = Command::new(proc::bin("monitor")?)
            .args(["query", what, "--since", range, "--format", "json"])
            .args(["--database-url", url])
            .env_remove("MONITOR_AS_OF")
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "monitor query {what} --since {range}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms[1])
}

/// Median full refresh of the dashboard (`monitor --bench 3`: every query of every tab
/// over one connection, as the running monitor refreshes) at `range`, in ms.
pub fn dashboard_ms(url: &str, range: &str) -> anyhow::Result<f64> {
    let out = Command::new(proc::bin("monitor")?)
        .args([
            "--bench",
            "3",
            "--bench-range",
            range,
            "--database-url",
            url,
        ])
        .env_remove("MONITOR_AS_OF")
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "monitor --bench --bench-range {range}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ms = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if let Some(errors) = v["errors"].as_array().filter(|e| !e.is_empty()) {
            anyhow::bail!("monitor --bench --bench-range {range}: {errors:?}");
        }
        if let Some(t) = v["total_ms"].as_f64() {
            ms.push(t);
        }
    }
    ms.sort_by(f64::total_cmp);
    ms.get(ms.len() / 2)
        .copied()
        .context("monitor --bench printed no refresh")
}

/// The table for one database: analysis (and [`DASHBOARD`]) → range → ms.
pub fn table(url: &str) -> anyhow::Result<BTreeMap<&'static str, Vec<f64>>> {
    let mut out = BTreeMap::new();
    for what in ANALYSES {
        let mut row = Vec::new();
        for range in RANGES {
            row.push(time_query(url, what, range)?);
        }
        out.insert(what, row);
    }
    let row = RANGES
        .iter()
        .map(|range| dashboard_ms(url, range))
        .collect::<anyhow::Result<_>>()?;
    out.insert(DASHBOARD, row);
    Ok(out)
}

/// `bench analyses`: the table at `small` and `large` events, side by side with the ratio,
/// for each server of `servers` (the shared test server when empty): one block of rows per
/// edition, so one run prints edition × analysis × range. With `keep`, each larger database
/// stays (its URL printed) for reading the plans.
pub async fn run(small: u64, large: u64, keep: bool, servers: &[String]) -> anyhow::Result<()> {
    let servers = if servers.is_empty() {
        vec![crate::db::server_url()]
    } else {
        servers.to_vec()
    };
    let mut blocks = Vec::new();
    for server in &servers {
        let edition = {
            let db = TestDb::empty_on(server, "anabench").await?;
            db.migrate().await?;
            let c = db.client().await?;
            let e: String = c.query_one("SHOW timescaledb.license", &[]).await?.get(0);
            drop(c);
            db.drop_db().await?;
            if e == "timescale" {
                "community".to_string()
            } else {
                e
            }
        };
        println!(
            "\n== analyses on the {edition} edition: `monitor query` process time (median of 3), target {TARGET_MS} ms"
        );
        let mut tables = Vec::new();
        for n in [small, large] {
            let db = load(server, n).await?;
            tables.push(table(&db.url)?);
            if keep && n == large {
                println!("  kept the database: {}", db.keep());
            } else {
                db.drop_db().await?;
            }
        }
        blocks.push((edition, tables));
    }
    println!(
        "\n  ms at {small} / {large} events (ratio), by edition, analysis and range:\n  {:<21}{}",
        "edition   analysis",
        RANGES
            .iter()
            .map(|r| format!("{r:>22}"))
            .collect::<String>()
    );
    for (edition, tables) in &blocks {
        for what in ANALYSES.into_iter().chain([DASHBOARD]) {
            let (a, b) = (&tables[0][what], &tables[1][what]);
            let target = if what == DASHBOARD {
                DASHBOARD_TARGET_MS
            } else {
                TARGET_MS
            };
            let cells: String = a
                .iter()
                .zip(b)
                .map(|(x, y)| {
                    let flag = if *y <= target { ' ' } else { '!' };
                    format!("{:>22}", format!("{x:.0} / {y:.0}{flag} ({:.1}x)", y / x))
                })
                .collect();
            println!("  {edition:<10}{what:<11}{cells}");
        }
    }
    println!(
        "  (! = over the target at the larger size: {TARGET_MS} ms an analysis, {DASHBOARD_TARGET_MS} ms the dashboard's full refresh (`monitor --bench`: wall time of one refresh of every tab's queries over one connection); × = larger/smaller)"
    );
    Ok(())
}
