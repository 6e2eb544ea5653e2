//! The analyses' filter in the real dashboard: `monitor --where …` in a pseudo-terminal
//! against a real database loaded through a running collector starts filtered (its chip on
//! screen, the Overview's top events counting only the matching events); `f` adds a term
//! typed in CJK, a bad term is refused with its reason, `F` clears and the unfiltered
//! counts come back.
//!
//! Nothing here mocks the database.

use std::time::Duration;

use e2e::{gen, tui::Tui};
use serde_json::{json, Value};
use time::OffsetDateTime;

const WAIT: Duration = Duration::from_secs(30);

/// Five minutes ago: `浏览商品` 9 times (6 on mobile, 3 of them with plan 企业版, and 3 on
/// desktop), `加入购物车🎉` 4 times on desktop.
fn events() -> Vec<Value> {
    let t0 = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    let mut out = Vec::new();
    for i in 0..13i64 {
        let (name, device) = match i {
            0..=5 => ("浏览商品", "mobile"),
            6..=8 => ("浏览商品", "desktop"),
            _ => ("加入购物车🎉", "desktop"),
        };
        let plan = if i < 3 { "企业版" } else { "free" };
        out.push(json!({
            "user_id": format!("usr_{i}"),
            "session_id": format!("s-{i}"),
            "event_type": "track",
            "event_name": name,
            "device_type": device,
            "properties": {"plan": plan},
            "event_time": gen::rfc3339(t0 + time::Duration::seconds(i)),
        }));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_starts_filtered_and_f_and_capital_f_change_it() -> anyhow::Result<()> {
    let (db, collector) = e2e::tui::loaded("monitor_filter_tui", &events(), WAIT).await?;

    let mut tui = Tui::start(
        &[
            "--database-url",
            &db.url,
            "--refresh",
            "1s",
            "--where",
            "device=mobile",
        ],
        160,
        48,
    )?;
    tui.wait_text(" device=mobile ", WAIT)?;
    tui.wait_line(&["浏览商品", "6"], WAIT)?;
    assert!(
        !tui.contents().contains("加入购物车🎉"),
        "a desktop-only event under device=mobile:\n{}",
        tui.contents()
    );

    // f: a property term typed in CJK narrows it further.
    tui.keys("f")?;
    tui.wait_text("filter + ", WAIT)?;
    tui.keys("prop.plan=企业版\r")?;
    tui.wait_text(" prop.plan=企业版 ", WAIT)?;
    tui.wait_line(&["浏览商品", "3"], WAIT)?;

    // A bad term: refused with its reason, the filter unchanged.
    tui.keys("f")?;
    tui.keys("colour=red\r")?;
    tui.wait_text("unknown field", WAIT)?;
    // Esc alone (a key right after it would read as Alt-key): the prompt closes.
    tui.keys("\x1b")?;
    tui.wait_until("the prompt closes", WAIT, |s| !s.contains("filter + "))?;
    tui.wait_text(" prop.plan=企业版 ", WAIT)?;

    // F: every event again.
    tui.keys("F")?;
    tui.wait_line(&["浏览商品", "9"], WAIT)?;
    tui.wait_line(&["加入购物车🎉", "4"], WAIT)?;
    assert!(
        !tui.contents().contains(" device=mobile "),
        "{}",
        tui.contents()
    );

    tui.keys("q")?;
    assert_eq!(tui.wait_exit(Duration::from_secs(10))?, 0);
    drop(tui);
    drop(collector);
    db.drop_db().await?;
    Ok(())
}
