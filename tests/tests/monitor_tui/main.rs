//! The dashboard end to end: the real `monitor` binary in a pseudo-terminal, against the
//! real database loaded with known events through a running collector; what a person would
//! read on the screen is parsed with a terminal emulator (vt100) and checked, keys are typed,
//! and `q` must leave the terminal as it was. Also: the database unreachable while a
//! collector is polled directly, and (ignored) the refresh benchmark.
//!
//! Nothing here mocks the database.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use collector::database::copy;
use e2e::{
    client::post_json,
    db::{eventually, TestDb},
    gen,
    proc::{self, CollectorOpts},
    tui::Tui,
};
use serde_json::{json, Value};
use time::OffsetDateTime;

mod database_faults;

/// 40 sessions of one user each, 10 minutes ago: every session views a page, the first 20
/// add to cart, the first 10 start checkout, the first 5 buy. 75 events; even sessions on
/// desktop, odd on mobile.
fn known_events() -> Vec<Value> {
    let t0 = OffsetDateTime::now_utc() - time::Duration::minutes(10);
    let mut events = Vec::new();
    for i in 0..40i64 {
        let steps = match i {
            0..=4 => 4,
            5..=9 => 3,
            10..=19 => 2,
            _ => 1,
        };
        for (k, name) in gen::FUNNEL.iter().take(steps).enumerate() {
            events.push(json!({
                "event_id": uuid::Uuid::new_v4().to_string(),
                "user_id": 7_000 + i,
                "session_id": format!("tui-{i}"),
                "event_type": if k == 0 { "view" } else { "action" },
                "event_name": name,
                "page_url": format!("https://shop.example/p/{k}"),
                "device_type": if i % 2 == 0 { "desktop" } else { "mobile" },
                "country_code": if i < 30 { "DE" } else { "FR" },
                "event_time": gen::rfc3339(t0 + time::Duration::seconds(i * 3 + k as i64)),
            }));
        }
    }
    events
}

/// The dashboard tests' collector: its id and region as the screens show them, and
/// heartbeats and forwarding fast enough for the screens to fill in seconds.
const TUI_COLLECTOR_ENV: [(&str, &str); 4] = [
    ("COLLECTOR_COLLECTOR_ID", "edge-tui-1"),
    ("COLLECTOR_REGION", "tui-region"),
    ("COLLECTOR_HEARTBEAT_INTERVAL_SECS", "1"),
    ("COLLECTOR_FORWARD__LINGER_MS", "50"),
];

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_the_loaded_numbers_and_restores_the_terminal() -> anyhow::Result<()> {
    let db = TestDb::migrated("monitor_tui").await?;
    let collector = CollectorOpts::new("monitor-tui")
        .database(&db.url)
        .envs(TUI_COLLECTOR_ENV)
        .start()?;
    let events = known_events();
    let r = post_json(collector.ingest, "/v1/batch", &json!(events))?;
    assert_eq!(r.status, 200, "{}", r.body);
    let landed = eventually(WAIT, || async {
        db.count_events().await.map(|c| c.0 == 75).unwrap_or(false)
    })
    .await;
    assert!(
        landed,
        "75 events did not land; log:\n{}",
        collector.log_text()
    );
    let heartbeats = eventually(WAIT, || async {
        match db.client().await {
            Ok(c) => c
                .query_one("SELECT count(*) FROM collector_heartbeats", &[])
                .await
                .map(|r| r.get::<_, i64>(0) > 0)
                .unwrap_or(false),
            Err(_) => false,
        }
    })
    .await;
    assert!(heartbeats, "no heartbeat landed");

    let admin = collector.admin.to_string();
    let mut tui = Tui::start(
        &[
            "--database-url",
            &db.url,
            "--collector",
            &admin,
            "--refresh",
            "1s",
        ],
        160,
        48,
    )?;

    // Overview: top events of the last hour and active users.
    tui.wait_line(&["page_view", "40"], WAIT)?;
    tui.wait_line(&["add_to_cart", "20"], WAIT)?;
    tui.wait_line(&["checkout_start", "10"], WAIT)?;
    tui.wait_line(&["purchase", "5"], WAIT)?;
    tui.wait_text("1h 40", WAIT)?;

    // Funnel: 40 → 20 → 10 → 5 sessions, 50 % at each step.
    tui.keys("3")?;
    tui.wait_line(&["1", "page_view", "40", "100.0%", "100.0%"], WAIT)?;
    tui.wait_line(&["2", "add_to_cart", "20", "50.0%", "50.0%"], WAIT)?;
    tui.wait_line(&["3", "checkout_start", "10", "50.0%", "25.0%"], WAIT)?;
    tui.wait_line(&["4", "purchase", "5", "50.0%", "12.5%"], WAIT)?;

    // Breakdown: 38 events from 20 desktop users, 37 from 20 mobile ones; 30 German users.
    tui.keys("6")?;
    tui.wait_line(&["desktop", "38", "20"], WAIT)?;
    tui.wait_line(&["mobile", "37", "20"], WAIT)?;
    tui.wait_line(&["DE", "30"], WAIT)?;

    // Retention: today's cohort holds the 40 users, all active on day 0.
    tui.keys("4")?;
    tui.wait_line(&["40", "100"], WAIT)?;

    // Paths: every session's page_view is followed by add_to_cart in 20 of them.
    tui.keys("5")?;
    tui.wait_line(&["page_view", "→", "add_to_cart", "20"], WAIT)?;

    // Collectors: the collector, polled live, with its region; its detail view.
    tui.keys("2")?;
    tui.wait_line(&["edge-tui-1", "tui-region", "poll"], WAIT)?;
    tui.keys("\r")?;
    tui.wait_text("Buffered events", WAIT)?;
    tui.keys("\x1b")?;

    // Database view and the help overlay.
    tui.keys("7")?;
    tui.wait_line(&["user_events", "hypertable"], WAIT)?;
    tui.keys("?")?;
    tui.wait_text("pause / resume refreshing", WAIT)?;
    tui.keys(" ")?;

    // Time range and pause are shown in the status line.
    tui.keys("\x1b[C")?; // →
    tui.wait_text("◂ 24h ▸", WAIT)?;
    tui.keys("p")?;
    tui.wait_text("PAUSED", WAIT)?;

    // Redraws on resize: at 80 columns the tab bar drops its dividers.
    tui.resize(80, 24)?;
    tui.wait_text("1 Overview 2 Collectors 3 Funnel", WAIT)?;
    tui.wait_text("PAUSED", WAIT)?;

    let rss = tui.peak_rss_kib();
    eprintln!("monitor peak RSS: {rss:?} KiB");
    if let Some(kib) = rss {
        assert!(kib < 50 * 1024, "monitor used {kib} KiB");
    }

    tui.keys("q")?;
    let code = tui.wait_exit(Duration::from_secs(10))?;
    assert_eq!(code, 0, "exit code");
    let (alt, cursor_hidden, raw) = tui.terminal_state();
    assert!(!alt, "still on the alternate screen");
    assert!(!cursor_hidden, "cursor still hidden");
    let text = String::from_utf8_lossy(&raw);
    let entered = text
        .rfind("\x1b[?1049h")
        .context("never entered the alternate screen")?;
    let left = text
        .rfind("\x1b[?1049l")
        .context("never left the alternate screen")?;
    assert!(left > entered);
    assert!(text.rfind("\x1b[?25h").is_some_and(|shown| shown > entered));
    assert_eq!(tui.cooked(), Some(true), "raw mode not left");

    drop(tui);
    drop(collector);
    db.drop_db().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hangup_ends_the_dashboard() -> anyhow::Result<()> {
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("postgres://postgres@{}/analytics", silent.local_addr()?);
    let mut tui = Tui::start(&["--database-url", &url], 80, 24)?;
    tui.wait_text("1 Overview", WAIT)?;
    tui.hang_up();
    // No orphan left spinning on a dead terminal.
    tui.wait_exit(Duration::from_secs(10))?;
    Ok(())
}

/// A terminal that goes away for good (tmux kill-session: SIGHUP, and reads fail for ever)
/// must not leave the monitor running; crossterm's reader spins on a dead terminal, so the
/// exit must not wait for it. Needs tmux (skipped without it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_tmux_session_leaves_no_monitor_behind() -> anyhow::Result<()> {
    let tmux = |args: &[&str]| std::process::Command::new("tmux").args(args).output();
    if tmux(&["-V"]).is_err() {
        eprintln!("tmux not installed: skipped");
        return Ok(());
    }
    let socket = format!("e2e-monitor-{}", uuid::Uuid::new_v4().simple());
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let cmd = format!(
        "{} --database-url postgres://postgres@{}/analytics",
        proc::bin("monitor")?.display(),
        silent.local_addr()?
    );
    let out = tmux(&[
        "-L",
        &socket,
        "new-session",
        "-d",
        "-s",
        "m",
        "-x",
        "80",
        "-y",
        "24",
        &cmd,
    ])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tmux(&["-L", &socket, "list-panes", "-t", "m", "-F", "#{pane_pid}"])?;
    let pid: i32 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
    let started = eventually(WAIT, || async {
        tmux(&["-L", &socket, "capture-pane", "-p", "-t", "m"])
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("1 Overview"))
            .unwrap_or(false)
    })
    .await;
    assert!(started, "the dashboard did not start in tmux");
    let _ = tmux(&["-L", &socket, "kill-server"]);
    let alive = || {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    };
    let gone = eventually(Duration::from_secs(10), || async { !alive() }).await;
    if !gone {
        // SAFETY: kill(2) on the process the test started through tmux.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    assert!(
        gone,
        "monitor {pid} still running after its terminal went away"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_to_show_is_an_error_before_the_terminal_is_touched() -> anyhow::Result<()> {
    let out = std::process::Command::new(proc::bin("monitor")?)
        .env_remove("DATABASE_URL")
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--database-url"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("\x1b[?1049h"));
    Ok(())
}

/// Loads `n` seed-shaped events over the last 30 days the way the forwarder writes them
/// (staging table, `INSERT … ON CONFLICT`, `edge_after_batch()`), in batches.
async fn load_events(db: &TestDb, n: i64) -> anyhow::Result<()> {
    let c = db.client().await?;
    copy::prepare(&c).await?;
    const COLUMNS: &str = "event_id, user_id, session_id, event_type, event_name, page_url, \
        referrer, device_type, browser, os, country_code, region, city, event_time, \
        properties, received_at, collector_id";
    let batch = 100_000i64;
    let mut start = 0i64;
    while start < n {
        let end = (start + batch).min(n);
        c.batch_execute("BEGIN").await?;
        c.execute(
            &format!(
                "INSERT INTO edge_staging ({COLUMNS})
                 SELECT gen_random_uuid(), u, 's-' || u || '-' || (g % 5),
                        CASE WHEN k = 0 THEN 'view' ELSE 'action' END,
                        (ARRAY['page_view','add_to_cart','checkout_start','purchase'])[k + 1],
                        'https://shop.example/p/' || (g % 500), 'https://search.example/',
                        (ARRAY['desktop','mobile','tablet','other'])[1 + g % 4],
                        (ARRAY['Chrome','Safari','Firefox','Edge'])[1 + g % 4 / 2], 'Linux',
                        (ARRAY['US','CN','DE','FR','BR','IN'])[1 + g % 6], 'region', 'city',
                        t, jsonb_build_object('price', g % 500), t + interval '1 second',
                        'bench-1'
                 FROM (SELECT g, 1 + (g * 7919) % 50000 AS u,
                              CASE WHEN g % 10 < 6 THEN 0 WHEN g % 10 < 8 THEN 1
                                   WHEN g % 10 < 9 THEN 2 ELSE 3 END AS k,
                              now() - (interval '30 days') * (($2::float8 - g) / $2::float8) AS t
                       FROM generate_series($1::int8, $3::int8 - 1) g) s"
            ),
            &[&start, &(n as f64), &end],
        )
        .await?;
        copy::merge_staged(&c).await?;
        c.batch_execute("COMMIT").await?;
        start = end;
    }
    c.batch_execute("ANALYZE").await?;
    // On the Community edition, materialise the continuous aggregates as their policies would.
    e2e::db::refresh_continuous_aggregates(&c).await?;
    Ok(())
}

/// The refresh benchmark: `BENCH_EVENTS` events (default 1,000,000) over 30 days; each
/// full refresh's (all seven analyses) total and per-query time for each of `BENCH_RANGES`
/// (default `1h,24h,30d`), `BENCH_REFRESHES` times (default 5); then the monitor binary's
/// peak RSS while it refreshes every 500 ms through every view and range. Run:
/// `BENCH_EVENTS=1000000 cargo test --release -p e2e --test monitor_tui bench_refresh -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: minutes of loading; run explicitly"]
async fn bench_refresh() -> anyhow::Result<()> {
    let n: i64 = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // BENCH_DATABASE_URL: a database already loaded by an earlier run (kept, not dropped).
    let (url, owned) = match std::env::var("BENCH_DATABASE_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let db = TestDb::migrated("monitor_bench").await?;
            let t = Instant::now();
            load_events(&db, n).await?;
            println!(
                "loaded {n} events in {:.1}s into {}",
                t.elapsed().as_secs_f64(),
                db.url
            );
            (db.url.clone(), Some(db))
        }
    };
    let edition: String = e2e::db::connect(&url)
        .await?
        .query_one("SHOW timescaledb.license", &[])
        .await?
        .get(0);
    let steps: Vec<String> = gen::FUNNEL.iter().map(|s| s.to_string()).collect();
    let refreshes: usize = std::env::var("BENCH_REFRESHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let ranges = std::env::var("BENCH_RANGES").unwrap_or_else(|_| "1h,24h,30d".into());
    for label in ranges.split(',') {
        let Some(range) = monitor::app::TimeRange::ALL
            .into_iter()
            .find(|r| r.label() == label.trim())
        else {
            bail!("BENCH_RANGES: unknown range {label:?} (15m, 1h, 24h, 7d, 30d)");
        };
        let runs = monitor::tui::bench(&url, range, &steps, refreshes).await?;
        for (i, r) in runs.iter().enumerate() {
            let per: Vec<String> = r
                .timings
                .iter()
                .map(|(s, d)| format!("{} {:.0}", s.name(), d.as_secs_f64() * 1e3))
                .collect();
            println!(
                "events={n} edition={edition} range={} refresh={} total_ms={:.0} [{}]{}",
                range.label(),
                i + 1,
                r.total.as_secs_f64() * 1e3,
                per.join(", "),
                if r.errors.is_empty() {
                    String::new()
                } else {
                    format!(" errors={:?}", r.errors)
                }
            );
        }
    }
    // Peak memory of the real binary while it works.
    let mut tui = Tui::start(&["--database-url", &url, "--refresh", "500ms"], 160, 48)?;
    tui.wait_text("updated", Duration::from_secs(120))?;
    for key in ["2", "3", "4", "5", "6", "7", "1"] {
        tui.keys(key)?;
        std::thread::sleep(Duration::from_millis(700));
    }
    for _ in 0..4 {
        tui.keys("\x1b[C")?;
        std::thread::sleep(Duration::from_secs(2));
    }
    for key in ["2", "3", "4", "5", "6", "7"] {
        tui.keys(key)?;
        std::thread::sleep(Duration::from_millis(700));
    }
    let rss = tui.peak_rss_kib();
    println!("events={n} monitor_peak_rss_kib={rss:?}");
    tui.keys("q")?;
    assert_eq!(tui.wait_exit(Duration::from_secs(30))?, 0);
    drop(tui);
    if let Some(db) = owned {
        if std::env::var("BENCH_KEEP").is_err() {
            db.drop_db().await?;
        }
    }
    Ok(())
}
