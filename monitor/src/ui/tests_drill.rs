//! Render tests of the funnel drill-down and the person pane: sessions and a person whose
//! ids, event names, traits and URLs hold CJK, emoji, a flag and combining marks, at 80×24
//! and 160×48 (insta snapshots `drill_*`), plus loading and failure, and the hit map that
//! makes rows clickable.
//!
//! Invariant: built from the fixed fixture of [`super::tests`] (no clock, no randomness).

use time::macros::datetime;

use super::tests::{render, snap, NOW};
use super::tests_unicode::cjk_fixture;
use crate::{
    analysis::Analysis,
    app::{App, Drill, Loadable, PersonPane, Target, TimeRange},
    model::{DropOff, DropSession, Person, PersonEvent},
};

fn sessions() -> Vec<DropSession> {
    let rows = [
        ("sess-🎉-0001", Some("usr_李雷"), "加入购物车"),
        ("sess-0002", None, "浏览商品"),
        (
            "a-very-long-session-identifier-from-a-mobile-sdk-0003",
            Some("非常に長いユーザー名がここで切れる予定です"),
            "購入完了🎉",
        ),
        ("sess-0004", Some("v-🇯🇵-42"), "cafe\u{301}_visit"),
        ("sess-0005", Some("7004"), "加入购物车"),
    ];
    rows.iter()
        .enumerate()
        .map(|(i, (s, p, e))| DropSession {
            session_id: s.to_string(),
            person: p.map(str::to_string),
            last_event: e.to_string(),
            last_time: NOW - time::Duration::seconds(30 + 97 * i as i64),
        })
        .collect()
}

pub(super) fn drilled(list: Loadable<DropOff>) -> App {
    let mut app = cjk_fixture();
    app.view = Analysis::Funnel;
    app.selected[Analysis::Funnel.index()] = 1;
    app.drill = Some(Drill {
        step: 1,
        steps: app.steps.clone(),
        range: TimeRange::H1,
        window: TimeRange::H1.window(NOW),
        list,
        selected: 0,
        person: None,
    });
    app
}

pub(super) fn drop_off(app: &App) -> DropOff {
    DropOff {
        steps: app.steps.clone(),
        step: 1,
        total: 2_302,
        sessions: sessions(),
    }
}

fn person() -> Person {
    Person {
        asked: "usr_李雷".into(),
        person: "usr_李雷".into(),
        anonymous_ids: vec!["v-🇯🇵-42".into(), "dev-0003".into()],
        traits: vec![
            ("name".into(), serde_json::json!("李雷")),
            ("plan".into(), serde_json::json!("pro 🚀")),
            ("city".into(), serde_json::json!("東京")),
            ("age".into(), serde_json::json!(31)),
            ("note".into(), serde_json::json!("cafe\u{301} lover")),
            ("vip".into(), serde_json::json!(true)),
        ],
        first_seen: Some(datetime!(2025-02-11 08:30:00 UTC)),
        last_seen: Some(NOW - time::Duration::seconds(30)),
        recent: (0..14)
            .map(|i| PersonEvent {
                time: NOW - time::Duration::seconds(30 + 60 * i),
                event_name: ["加入购物车", "浏览商品", "購入完了🎉", "page_view"][i as usize % 4]
                    .into(),
                actor: if i < 6 { "usr_李雷" } else { "v-🇯🇵-42" }.into(),
                session_id: Some(format!("sess-🎉-{:04}", i / 3)),
                page_url: Some(format!("/商品/抹茶-セット?ref=🎧&page={i}")),
                source: Some("shop".into()),
            })
            .collect(),
    }
}

#[test]
fn drill_down_list_with_cjk_and_emoji() {
    let mut app = drilled(Loadable::Loading);
    let d = drop_off(&app);
    if let Some(drill) = app.drill.as_mut() {
        drill.list = Loadable::Ready(d);
        drill.selected = 2;
    }
    snap("drill_list", &app);
    // Every listed session is a clickable row, in the order drawn.
    let mut t = render(&app, (80, 24));
    let mut hits = crate::app::Hits::default();
    if let Err(e) = t.draw(|f| hits = super::draw_with_hits(f, &app)) {
        panic!("{e}");
    }
    let text = t.backend().to_string();
    let y = text
        .lines()
        .position(|l| l.contains("sess-0004"))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(hits.at(10, y as u16), Some(Target::Row(3)), "{text}");
    assert_eq!(
        hits.at(0, 0).map(|t| matches!(t, Target::Tab(_))),
        Some(true)
    );
}

#[test]
fn drill_down_loading_failed_and_empty() {
    snap("drill_loading", &drilled(Loadable::Loading));
    snap(
        "drill_failed",
        &drilled(Loadable::Failed(
            "database error: canceling statement due to statement timeout (57014)".into(),
        )),
    );
    let mut app = drilled(Loadable::Loading);
    let mut empty = drop_off(&app);
    empty.sessions.clear();
    empty.total = 0;
    empty.step = 3;
    if let Some(d) = app.drill.as_mut() {
        d.step = 3;
        d.list = Loadable::Ready(empty);
    }
    snap("drill_completed_empty", &app);
}

#[test]
fn person_pane_with_cjk_and_emoji() {
    let mut app = drilled(Loadable::Loading);
    let d = drop_off(&app);
    if let Some(drill) = app.drill.as_mut() {
        drill.list = Loadable::Ready(d);
        drill.person = Some(PersonPane {
            id: "usr_李雷".into(),
            data: Loadable::Ready(Some(person())),
        });
    }
    snap("drill_person", &app);
    if let Some(p) = app.drill.as_mut().and_then(|d| d.person.as_mut()) {
        p.data = Loadable::Ready(None);
    }
    snap("drill_person_unknown", &app);
}
