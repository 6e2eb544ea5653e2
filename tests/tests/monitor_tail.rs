//! The live tail end to end: two real collectors whose database (a private cluster) is
//! stopped, events with Chinese, Japanese and emoji names sent to both, and what the on-call
//! engineer reads: `monitor tail --follow` printing them as NDJSON as they are accepted, and
//! the dashboard's Tail view in a pseudo-terminal showing them merged, filtered with `/`,
//! paused with `p`. Then the database comes back and the same events land. Also: the tail
//! is guarded by the admin token, and payloads never reach the collector's log.
//!
//! Nothing here mocks the database or the collectors.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use e2e::{
    client::{get, post_json, request},
    db::{eventually, PrivateCluster, TestDb},
    proc::{self, CollectorOpts, CollectorProc},
    tui::Tui,
};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

fn collector(name: &str, db: &TestDb) -> anyhow::Result<CollectorProc> {
    CollectorOpts::new(name)
        .database(&db.url)
        .fast_forwarding()
        .env("COLLECTOR_COLLECTOR_ID", name)
        .env("COLLECTOR_HEARTBEAT_INTERVAL_SECS", "1")
        .start()
}

/// `monitor tail` running with its stdout lines collected.
struct TailProc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl TailProc {
    fn start(args: &[&str]) -> anyhow::Result<TailProc> {
        let mut child = Command::new(proc::bin("monitor")?)
            .arg("tail")
            .args(args)
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        Ok(TailProc { child, lines })
    }

    fn events(&self) -> Vec<Value> {
        self.lines
            .lock()
            .map(|l| {
                l.iter()
                    .map(|s| serde_json::from_str(s).unwrap_or(Value::Null))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn wait_for(&self, n: usize) -> anyhow::Result<Vec<Value>> {
        let start = Instant::now();
        loop {
            let events = self.events();
            if events.len() >= n {
                return Ok(events);
            }
            if start.elapsed() > WAIT {
                bail!(
                    "monitor tail printed {} lines, not {n}: {events:?}",
                    events.len()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for TailProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `monitor tail <args>` to completion: (exit code, stdout lines, stderr).
fn tail_once(args: &[&str]) -> anyhow::Result<(i32, Vec<Value>, String)> {
    let out = Command::new(proc::bin("monitor")?)
        .arg("tail")
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("COLLECTOR_ADMIN_TOKEN")
        .output()?;
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
        .collect();
    Ok((
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn event(name: &str, user: i64, plan: &str) -> Value {
    json!({
        "event_id": uuid::Uuid::new_v4().to_string(),
        "event_name": name,
        "user_id": user,
        "session_id": format!("tail-{user}"),
        "country_code": "CN",
        "page_url": "https://shop.example/商品/1",
        "properties": {"plan": plan, "note": "备注"},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tail_shows_events_being_buffered_while_the_database_is_down() -> anyhow::Result<()> {
    let cluster = PrivateCluster::start("monitor-tail")?;
    let db = TestDb::empty_on(&cluster.url, "monitor_tail").await?;
    db.migrate().await?;
    let a = collector("edge-tail-a", &db)?;
    let b = collector("edge-tail-b", &db)?;
    let (admin_a, admin_b) = (a.admin.to_string(), b.admin.to_string());
    cluster.stop()?;

    let follow = TailProc::start(&[
        "--collector",
        &admin_a,
        "--collector",
        &admin_b,
        "--follow",
        "--interval",
        "300ms",
    ])?;
    let mut tui = Tui::start(
        &[
            "--database-url",
            &db.url,
            "--collector",
            &admin_a,
            "--collector",
            &admin_b,
            "--refresh",
            "1s",
        ],
        160,
        48,
    )?;
    tui.wait_text("1 Overview", WAIT)?;
    tui.keys("9")?;
    tui.wait_text("Live tail", WAIT)?;
    // Let both read their (empty) rings first: what follows arrives live.
    std::thread::sleep(Duration::from_secs(2));

    // Sent while the database is down: acknowledged (buffered) all the same.
    let r = post_json(
        a.ingest,
        "/v1/batch",
        &json!([event("加入购物车", 42, "pro")]),
    )?;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post_json(
        b.ingest,
        "/v1/batch",
        &json!([event("購入完了🎉", 7, "free")]),
    )?;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post_json(a.ingest, "/track", &event("page_view", 42, "pro"))?;
    assert_eq!(r.status, 200, "{}", r.body);

    // monitor tail --follow: one NDJSON line each, with its collector.
    let lines = follow.wait_for(3)?;
    let find = |name: &str| lines.iter().find(|l| l["event_name"] == name).cloned();
    let cart = find("加入购物车").context("no 加入购物车 line")?;
    assert_eq!(cart["collector_id"], "edge-tail-a", "{cart}");
    assert_eq!(cart["user_id"], "42", "the user id as sent, as text");
    assert_eq!(cart["properties"]["plan"], "pro");
    assert_eq!(cart["properties"]["note"], "备注");
    let buy = find("購入完了🎉").context("no 購入完了🎉 line")?;
    assert_eq!(buy["collector_id"], "edge-tail-b", "{buy}");
    assert!(find("page_view").is_some(), "{lines:?}");
    // Newest appended: a's page_view came after a's cart.
    let pos = |name: &str| lines.iter().position(|l| l["event_name"] == name);
    assert!(pos("加入购物车") < pos("page_view"), "{lines:?}");

    // A one-shot tail with a property filter and a name filter.
    let (code, only_pro, _) = tail_once(&[
        "--collector",
        &admin_a,
        "--collector",
        &admin_b,
        "--filter",
        "plan=pro",
    ])?;
    assert_eq!(code, 0);
    let names: Vec<&str> = only_pro
        .iter()
        .filter_map(|l| l["event_name"].as_str())
        .collect();
    assert_eq!(names, ["加入购物车", "page_view"], "{only_pro:?}");
    let (_, named, _) = tail_once(&["--collector", &admin_b, "--filter", "name=購入完了🎉"])?;
    assert_eq!(named.len(), 1, "{named:?}");

    // The Tail view: both collectors merged, the database banner meanwhile.
    tui.wait_line(&["edge-tail-a", "加入购物车", "42", "CN"], WAIT)?;
    tui.wait_line(&["edge-tail-b", "購入完了🎉", "7", "CN"], WAIT)?;
    tui.wait_text("database unreachable", WAIT)?;
    tui.wait_text("events/s", WAIT)?;
    // `/` filters the list.
    tui.keys("/plan=pro\r")?;
    tui.wait_text("Filter plan=pro", WAIT)?;
    tui.wait_until("the filter hides 購入完了🎉", WAIT, |s| {
        s.contains("加入购物车") && !s.contains("購入完了🎉")
    })?;
    // `p` pauses: new events do not appear until resumed.
    tui.keys("p")?;
    tui.wait_text("PAUSED (p resumes)", WAIT)?;
    let r = post_json(a.ingest, "/track", &event("支付成功", 43, "pro"))?;
    assert_eq!(r.status, 200, "{}", r.body);
    std::thread::sleep(Duration::from_secs(2));
    assert!(!tui.contents().contains("支付成功"), "{}", tui.contents());
    tui.keys("p")?;
    tui.wait_line(&["edge-tail-a", "支付成功", "43"], WAIT)?;
    follow.wait_for(4)?;

    // The database comes back: the same events land, exactly those.
    cluster.restart()?;
    let landed = eventually(Duration::from_secs(60), || async {
        db.count_events().await.map(|c| c.0 == 4).unwrap_or(false)
    })
    .await;
    assert!(landed, "the 4 buffered events did not land");

    tui.keys("q")?;
    assert_eq!(tui.wait_exit(Duration::from_secs(10))?, 0);
    // The collectors never logged a payload.
    for c in [&a, &b] {
        let log = c.log_text();
        for name in ["加入购物车", "購入完了🎉", "支付成功", "备注"] {
            assert!(!log.contains(name), "payload {name} in the log:\n{log}");
        }
    }
    drop(follow);
    drop((a, b));
    db.drop_db().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tail_needs_the_admin_token_and_says_so() -> anyhow::Result<()> {
    let c = CollectorOpts::new("tail-token")
        .env("COLLECTOR_ADMIN_TOKEN", "s3cret")
        .env("COLLECTOR_COLLECTOR_ID", "edge-token")
        .start()?;
    let r = post_json(c.ingest, "/track", &event("加入购物车", 1, "pro"))?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(get(c.admin, "/v1/tail")?.status, 401);
    let r = request(
        "GET",
        c.admin,
        "/v1/tail?after=0",
        &[("Authorization", "Bearer s3cret")],
    )?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["events"][0]["event_name"], "加入购物车");
    assert_eq!(r.json()["last_seq"], 1);
    let r = request(
        "GET",
        c.admin,
        "/v1/tail?after=x",
        &[("Authorization", "Bearer s3cret")],
    )?;
    assert_eq!(r.status, 400, "{}", r.body);

    let admin = c.admin.to_string();
    let (code, lines, stderr) = tail_once(&["--collector", &admin])?;
    assert_eq!(code, 1, "{stderr}");
    assert!(lines.is_empty());
    assert!(
        stderr.contains("401") && stderr.contains("--admin-token"),
        "{stderr}"
    );
    let (code, lines, stderr) = tail_once(&["--collector", &admin, "--admin-token", "s3cret"])?;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["collector_id"], "edge-token");

    // Usage errors are clear and exit 2.
    let (code, _, stderr) = tail_once(&[])?;
    assert_eq!(code, 2);
    assert!(stderr.contains("--collector"), "{stderr}");
    let (code, _, stderr) = tail_once(&["--collector", &admin, "--filter", "user=bob"])?;
    assert_eq!(code, 2);
    assert!(stderr.contains("integer"), "{stderr}");
    Ok(())
}
