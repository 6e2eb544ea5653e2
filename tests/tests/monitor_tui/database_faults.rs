//! The dashboard while its database misbehaves, in a pseudo-terminal: unreachable (a banner,
//! while the collectors polled directly stay live), slow (a lock held by another session),
//! unresponsive (a relay that accepts and never answers) and frozen mid-session (a relay
//! that stops relaying): the UI never freezes, and every state is named on the screen.
//!
//! Invariant: every wait is bounded by [`WAIT`] or less.

use std::time::{Duration, Instant};

use anyhow::bail;
use e2e::{
    client::post_json,
    db::{free_port, TestDb},
    gen,
    proc::CollectorOpts,
    relay::{url_addr, url_via, Relay},
    tui::Tui,
};
use serde_json::json;

use super::{TUI_COLLECTOR_ENV, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_shows_a_banner_while_polls_stay_live() -> anyhow::Result<()> {
    // A collector without a database, and a database URL where nothing listens.
    let collector = CollectorOpts::new("monitor-tui-down")
        .envs(TUI_COLLECTOR_ENV)
        .start()?;
    for _ in 0..3 {
        let mut rng = gen::rng(7);
        let r = post_json(
            collector.ingest,
            "/v1/batch",
            &json!(gen::batch(&mut rng, 50)),
        )?;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let dead = format!("postgres://postgres@127.0.0.1:{}/nowhere", free_port());
    let admin = collector.admin.to_string();
    let mut tui = Tui::start(
        &[
            "--database-url",
            &dead,
            "--collector",
            &admin,
            "--refresh",
            "1s",
        ],
        80,
        24,
    )?;
    tui.wait_text("database unreachable", WAIT)?;
    tui.wait_text("retry in", WAIT)?;
    // The UI stays live: views switch while the database is down.
    tui.keys("2")?;
    tui.wait_line(&["edge-tui-1", "150", "stalled"], WAIT)?;
    tui.wait_text("tui-region · v", WAIT)?;
    tui.keys("q")?;
    assert_eq!(tui.wait_exit(Duration::from_secs(10))?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_database_shows_a_banner_and_the_ui_stays_live() -> anyhow::Result<()> {
    let db = TestDb::migrated("monitor_tui_slow").await?;
    let mut tui = Tui::start(&["--database-url", &db.url, "--refresh", "1s"], 80, 24)?;
    tui.wait_text("updated", WAIT)?;
    // Another session holds an exclusive lock: every query on user_events waits.
    let locker = db.client().await?;
    locker
        .batch_execute("BEGIN; LOCK TABLE user_events IN ACCESS EXCLUSIVE MODE")
        .await?;
    tui.wait_text("database slow: the", WAIT)?;
    // Keys still work while the refresh waits.
    let asked = Instant::now();
    tui.keys("4")?;
    tui.wait_text("Retention · first-seen cohorts", Duration::from_secs(2))?;
    assert!(asked.elapsed() < Duration::from_secs(2));
    locker.batch_execute("ROLLBACK").await?;
    let start = Instant::now();
    while tui.contents().contains("database slow") {
        if start.elapsed() > WAIT {
            bail!(
                "the banner stayed after the lock was released:\n{}",
                tui.contents()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    tui.keys("q")?;
    assert_eq!(tui.wait_exit(Duration::from_secs(10))?, 0);
    drop(tui);
    db.drop_db().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresponsive_database_never_freezes_the_ui() -> anyhow::Result<()> {
    // Accepts connections and never answers: connecting hangs until its deadline.
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("postgres://postgres@{}/analytics", silent.local_addr()?);
    let mut tui = Tui::start(&["--database-url", &url, "--refresh", "1s"], 80, 24)?;
    tui.wait_text("1 Overview", WAIT)?;
    for (key, title) in [("3", "Funnel ·"), ("7", "Database"), ("?", "Keys")] {
        let asked = Instant::now();
        tui.keys(key)?;
        tui.wait_text(title, Duration::from_secs(2))?;
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "{key} took {:?}",
            asked.elapsed()
        );
    }
    tui.keys(" ")?;
    tui.wait_text("database unreachable: cannot connect within 5s", WAIT)?;
    tui.wait_text("retry in", WAIT)?;
    tui.keys("q")?;
    assert_eq!(tui.wait_exit(Duration::from_secs(10))?, 0);
    drop(silent);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_database_path_shows_as_unreachable_not_slow_forever() -> anyhow::Result<()> {
    // Connected and answering, then the path freezes: sockets open and silent, as a
    // partition looks from the client.
    let db = TestDb::migrated("monitor_tui_frozen").await?;
    let relay = Relay::start(url_addr(&db.url)?)?;
    let url = url_via(&db.url, relay.addr);
    let mut tui = Tui::start(&["--database-url", &url, "--refresh", "1s"], 80, 24)?;
    tui.wait_text("updated", WAIT)?;
    relay.freeze();
    let frozen = Instant::now();
    // The next refresh's first statement gets no answer within 5 s: unreachable, and the
    // refresh after that reconnects (and waits on its connect deadline) instead of waiting
    // out every section's 30 s.
    tui.wait_text("database unreachable", Duration::from_secs(20))?;
    eprintln!("unreachable shown {:?} after the freeze", frozen.elapsed());
    tui.keys("q")?;
    assert_eq!(tui.wait_exit(Duration::from_secs(10))?, 0);
    drop(tui);
    db.drop_db().await?;
    Ok(())
}
