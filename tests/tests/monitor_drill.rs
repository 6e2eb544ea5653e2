//! The funnel drill-down and the list habits end to end: the real `monitor` in a
//! pseudo-terminal against a real database loaded through a running collector. Enter on a
//! funnel step lists the sessions that stopped there (with CJK and emoji ids), Enter on one
//! opens its person (a visitor who signed up resolves to the user), Esc goes back; `/`
//! searches the list, `e` writes its CSV into the working directory and says where; a
//! mouse click switches tabs; `q` leaves the terminal as it was (mouse reporting off).
//!
//! Nothing here mocks the database.

use std::time::Duration;

use e2e::{db::eventually, gen, tui::Tui};
use serde_json::{json, Value};
use time::OffsetDateTime;

const WAIT: Duration = Duration::from_secs(30);

/// 12 sessions 10 minutes ago, one person each (`usr_李-N`): sessions 0–5 only view a
/// page, 6–9 also add to cart, 10–11 buy. Session 5's visitor (`v-🎉-5`) browses
/// anonymously and signs in at the end of the session: the person is the user.
fn events() -> Vec<Value> {
    let t0 = OffsetDateTime::now_utc() - time::Duration::minutes(10);
    let mut out = Vec::new();
    for i in 0..12i64 {
        let steps = match i {
            0..=5 => 1,
            6..=9 => 2,
            _ => 4,
        };
        let user = format!("usr_李-{i}");
        let at = |k: i64| gen::rfc3339(t0 + time::Duration::seconds(i * 5 + k));
        for (k, name) in gen::FUNNEL.iter().take(steps).enumerate() {
            let (user_id, anon) = if i == 5 {
                (Value::Null, json!("v-🎉-5"))
            } else {
                (json!(user), Value::Null)
            };
            out.push(json!({
                "user_id": user_id,
                "anonymous_id": anon,
                "session_id": format!("drill-{i:02}-会话"),
                "event_type": "track",
                "event_name": name,
                "page_url": format!("https://shop.example/商品/{k}"),
                "event_time": at(k as i64),
            }));
        }
        if i == 5 {
            out.push(json!({
                "user_id": user,
                "anonymous_id": "v-🎉-5",
                "traits": {"name": "李雷", "plan": "pro 🚀"},
                "session_id": "drill-05-会话",
                "event_type": "identify",
                "event_name": "identify",
                "event_time": at(3),
            }));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enter_on_a_funnel_step_lists_who_dropped_off_and_opens_a_person() -> anyhow::Result<()> {
    let (db, collector) = e2e::tui::loaded("monitor_drill", &events(), WAIT).await?;

    let dir = std::env::temp_dir().join(format!("monitor-drill-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut tui = Tui::start_in(
        &["--database-url", &db.url, "--refresh", "1s"],
        160,
        48,
        Some(&dir),
    )?;

    // The funnel: 12 → 6 → 2 → 2.
    tui.keys("3")?;
    tui.wait_line(&["1", "page_view", "12"], WAIT)?;
    tui.wait_line(&["2", "add_to_cart", "6"], WAIT)?;

    // Enter on step 1: the six sessions that viewed a page and never added to the cart,
    // newest first, each with its person and last event.
    tui.keys("\r")?;
    tui.wait_text("Drop-off · Step 1 page_view, not add_to_cart", WAIT)?;
    tui.wait_text("6 sessions", WAIT)?;
    // Session 5's last event is the sign-in; its person is the user, not the visitor.
    tui.wait_line(&["drill-05-会话", "usr_李-5", "identify"], WAIT)?;
    tui.wait_line(&["drill-00-会话", "usr_李-0", "page_view"], WAIT)?;
    let screen = tui.contents();
    assert!(
        !screen.contains("drill-06-会话"),
        "added to cart:\n{screen}"
    );
    let order: Vec<usize> = (0..6)
        .map(|i| screen.find(&format!("drill-0{i}-会话")).unwrap_or(0))
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] > w[1]),
        "not newest first:\n{screen}"
    );

    // Enter on the first row (session 5): the person, with the visitor's id and traits.
    tui.keys("\r")?;
    tui.wait_text("Person usr_李-5", WAIT)?;
    tui.wait_line(&["Anonymous", "ids", "v-🎉-5"], WAIT)?;
    tui.wait_line(&["plan", "pro", "🚀"], WAIT)?;
    tui.wait_text("Recent events (2)", WAIT)?;
    tui.keys("\x1b")?;
    tui.wait_text("Drop-off · Step 1", WAIT)?;

    // `/` searches the list as it is typed; Enter keeps it.
    tui.keys("/03")?;
    tui.wait_until("the search keeps one session", WAIT, |s| {
        s.contains("drill-03-会话") && !s.contains("drill-04-会话")
    })?;
    tui.keys("\r")?;
    tui.wait_text("/03 · 1 of 6", WAIT)?;

    // `e` writes the drill-down's CSV (all six sessions) in the working directory.
    tui.keys("e")?;
    tui.wait_text("exported to", WAIT)?;
    let written = eventually(WAIT, || async {
        std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".csv"))
            })
            .unwrap_or(false)
    })
    .await;
    assert!(written, "no CSV in {}", dir.display());
    let file = std::fs::read_dir(&dir)?
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("monitor-drop-off-")
        })
        .map(|e| e.path());
    let csv = std::fs::read_to_string(file.as_deref().unwrap_or(dir.as_path()))?;
    assert!(csv.starts_with("section,field,value\r\n"), "{csv}");
    assert!(csv.contains("drop_off,sessions,6\r\n"), "{csv}");
    assert_eq!(csv.matches("\r\nsessions,drill-").count(), 6, "{csv}");
    assert!(
        csv.contains("sessions,drill-05-会话,usr_李-5,identify,"),
        "{csv}"
    );

    // Esc clears the search, Esc again back to the funnel.
    tui.keys("\x1b")?;
    tui.wait_text("drill-04-会话", WAIT)?;
    tui.keys("\x1b")?;
    tui.wait_line(&["2", "add_to_cart", "6"], WAIT)?;

    // A click on the Pages tab opens it.
    let screen = tui.contents();
    let top = screen.lines().next().unwrap_or_default();
    let col = top
        .find("8 Pages")
        .map(|b| top[..b].chars().count() as u16 + 1)
        .unwrap_or(0);
    assert!(col > 0, "no Pages tab: {top}");
    tui.click(col, 0)?;
    tui.wait_text("Top pages", WAIT)?;

    tui.keys("q")?;
    assert_eq!(tui.wait_exit(Duration::from_secs(10))?, 0);
    let (alt, cursor_hidden, raw) = tui.terminal_state();
    assert!(!alt && !cursor_hidden, "terminal not restored");
    let text = String::from_utf8_lossy(&raw);
    let on = text.rfind("\x1b[?1000h").unwrap_or(usize::MAX);
    let off = text.rfind("\x1b[?1000l");
    assert!(
        off.is_some_and(|off| on != usize::MAX && off > on),
        "mouse reporting left on"
    );
    assert_eq!(tui.cooked(), Some(true), "raw mode not left");

    drop(tui);
    let _ = std::fs::remove_dir_all(&dir);
    drop(collector);
    db.drop_db().await?;
    Ok(())
}
