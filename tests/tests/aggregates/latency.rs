//! The ignored latency benchmark of every `monitor query`.

use super::*;

/// Latency of every `monitor query` at 1M and 10M events (ignored: minutes of setup).
///
/// `cargo test -p e2e --release --test aggregates -- --ignored query_latency --nocapture`
///
/// Environment: `BENCH_SIZES` (events, comma-separated; default `1000000,10000000`),
/// `BENCH_DAYS` (days of data, default 30), `BENCH_RUNS` (timed runs per query after one
/// warm-up, default 5), `BENCH_DATABASE_URL` (time a database filled earlier instead).
/// Sessions of 8 events; a quarter of sessions are a new user's first, the others belong
/// to an earlier user picked pseudo-randomly (so every day has a cohort and returning
/// users). Rows are generated server-side
/// (`INSERT … SELECT generate_series`, one day per batch, through `edge_staging` and
/// `edge_after_batch()` like the forwarder) into a private database, then each query runs
/// as the real binary (`monitor query … --format json`, process start and connection
/// included) with the default `--since` (24h) and with `--since 7d`; the minimum and
/// median are printed.
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn query_latency() {
    let sizes: Vec<i64> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "1000000,10000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let env_i64 = |k: &str, d: i64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let days = env_i64("BENCH_DAYS", 30);
    let runs = env_i64("BENCH_RUNS", 5) as usize;
    // BENCH_DATABASE_URL: time the queries over a database filled earlier (kept as is).
    if let Ok(url) = std::env::var("BENCH_DATABASE_URL") {
        let c = e2e::db::connect(&url).await.expect("connect");
        let n: i64 = c
            .query_one("SELECT count(*) FROM user_events", &[])
            .await
            .expect("count")
            .get(0);
        println!("\n{n} events in {url}, {} edition", edition(&c).await);
        time_queries(&url, runs);
        return;
    }
    for size in sizes {
        let db = TestDb::migrated("bench").await.expect("db");
        let c = db.client().await.expect("client");
        let ed = edition(&c).await;
        let start = Instant::now();
        fill(&c, size, days).await;
        c.batch_execute("ANALYZE").await.expect("analyze");
        println!(
            "\n{size} events over {days} days, {ed} edition: generated in {:.0} s",
            start.elapsed().as_secs_f64()
        );
        if ed == "timescale" {
            let t = Instant::now();
            for view in CONTINUOUS_AGGREGATES {
                c.batch_execute(&format!(
                    "CALL refresh_continuous_aggregate('{view}', NULL, now() - INTERVAL '1 hour')"
                ))
                .await
                .expect("refresh");
            }
            println!(
                "refreshed the continuous aggregates in {:.0} s",
                t.elapsed().as_secs_f64()
            );
        }
        time_queries(&db.url, runs);
        drop(c);
        let _ = db.drop_db().await;
    }
}

/// Runs each `monitor query` (24h and 7d) `runs` times after one warm-up against `url` and
/// prints the minimum and median wall time.
fn time_queries(url: &str, runs: usize) {
    println!(
        "{:<12} {:>6} {:>10} {:>10}",
        "query", "since", "min ms", "median ms"
    );
    for what in QUERIES {
        for since in ["24h", "7d"] {
            let mut ms: Vec<f64> = (0..=runs)
                .map(|_| {
                    let t = Instant::now();
                    monitor(url, None, &[what, "--since", since, "--format", "json"]);
                    t.elapsed().as_secs_f64() * 1000.0
                })
                .skip(1)
                .collect();
            ms.sort_by(f64::total_cmp);
            println!(
                "{what:<12} {since:>6} {:>10.0} {:>10.0}",
                ms.first().copied().unwrap_or(0.0),
                ms.get(ms.len() / 2).copied().unwrap_or(0.0)
            );
        }
    }
}

/// `size` seed-shaped events over the last `days` days, one day per transaction through
/// `edge_staging` and `edge_after_batch()`. Sessions of ~8 events; funnel steps in order.
async fn fill(c: &Client, size: i64, days: i64) {
    prepare(c).await.expect("staging");
    let per_day = size / days;
    for d in 0..days {
        let n = if d == days - 1 {
            size - per_day * (days - 1)
        } else {
            per_day
        };
        let offset = d * per_day;
        c.batch_execute("BEGIN").await.expect("begin");
        // 8 events per session, 20 s apart; sessions spread evenly over the day; funnel
        // drop-offs: 1/2 of sessions add to cart, 1/4 check out, 1/8 purchase.
        c.execute(
            "INSERT INTO edge_staging (event_id, user_id, session_id, event_type, event_name,
                 page_url, device_type, browser, os, country_code, event_time, received_at,
                 collector_id)
             SELECT gen_random_uuid(),
                    CASE WHEN s % 4 = 0 THEN s
                         ELSE ((s * 2654435761) % GREATEST(s, 1)) / 4 * 4 END,
                    's' || s,
                    CASE WHEN k = 0 THEN 'view' ELSE 'action' END,
                    CASE WHEN k = 4 AND s % 2 <> 0 THEN 'click'
                         WHEN k = 5 AND s % 4 <> 0 THEN 'scroll'
                         WHEN k = 6 AND s % 8 <> 0 THEN 'page_view'
                         ELSE (ARRAY['page_view', 'page_view', 'search', 'page_view',
                                     'add_to_cart', 'checkout_start', 'purchase', 'click'])[1 + k]
                    END,
                    '/p/' || (i % 500),
                    (ARRAY['desktop', 'mobile', 'tablet', 'other'])[1 + (s % 4)::INT],
                    'Chrome', 'Linux',
                    (ARRAY['US', 'CN', 'DE', 'FR', 'BR', 'IN'])[1 + (s % 6)::INT],
                    ts, ts, 'bench'
             FROM (
                 SELECT $1::INT8 + j AS i, ($1::INT8 + j) / 8 AS s, (j % 8)::INT AS k,
                        now() - make_interval(days => $3::INT)
                          + make_interval(secs => (j / 8) * 86400.0 / ceil($2::FLOAT8 / 8)
                                                   + (j % 8) * 20)
                          AS ts
                 FROM generate_series(0::INT8, $2::INT8 - 1) AS j
             ) g",
            &[&offset, &n, &((days - d) as i32)],
        )
        .await
        .expect("stage a day");
        merge_staged(c).await.expect("insert a day");
        c.batch_execute("COMMIT").await.expect("commit a day");
    }
}
