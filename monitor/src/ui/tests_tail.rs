//! Render tests of the Tail view: events with CJK and emoji names merged from two
//! collectors (one failing), the rate line, a filter, the `/` input with an error, a pause,
//! events lost to a ring's bound, and no `--collector` at all; at 80×24 and 160×48 (insta
//! snapshots `tail_*`).
//!
//! Invariant: the tail is built by feeding fixed pages through the real merge
//! ([`crate::model::Tail::apply`]) at fixed times, so the snapshots change only when
//! drawing or merging does.

use std::time::Duration;

use serde_json::json;

use super::tests::{fixture, render, snap, NOW};
use crate::{
    analysis::Analysis,
    app::{App, Input},
    model::{Tail, TailEvent, TailPage},
    tail::Filter,
};

fn event(seq: u64, secs_ago: i64, name: &str, user: i64, props: serde_json::Value) -> TailEvent {
    TailEvent {
        seq,
        received_at: NOW
            - time::Duration::seconds(secs_ago)
            - time::Duration::milliseconds((seq as i64 * 37) % 1000),
        event_id: format!("0190c0de-0000-7000-8000-{seq:012}"),
        event_name: name.into(),
        user_id: Some(user.to_string()),
        session_id: Some(format!("s-{user}-1")),
        country_code: Some(if user % 2 == 0 { "CN" } else { "JP" }.into()),
        page_url: Some(format!("https://shop.example/商品/{seq}")),
        properties: Some(props),
        ..TailEvent::default()
    }
}

const NAMES: [&str; 6] = [
    "加入购物车",
    "購入完了🎉",
    "page_view",
    "cafe\u{301}_visit",
    "非常に長いイベント名がここで切れる予定です",
    "👨\u{200d}👩\u{200d}👧 family",
];

/// Two rounds from edge-eu-1 (history, then 12 new events), the second collector refusing.
fn tail() -> Tail {
    let mut t = Tail::for_addresses(&["127.0.0.1:9100".into(), "10.0.0.9:9100".into()]);
    let page = |from: u64, to: u64, missed| TailPage {
        collector_id: "edge-eu-1".into(),
        epoch: 1,
        first_seq: 1,
        last_seq: to,
        missed,
        events: (from..=to)
            .map(|s| {
                let name = NAMES[(s as usize) % NAMES.len()];
                let plan = if s % 3 == 0 { "pro" } else { "free" };
                event(
                    s,
                    (30 - s as i64).max(0),
                    name,
                    40 + (s as i64 % 5),
                    json!({"plan": plan, "qty": s % 4}),
                )
            })
            .collect(),
    };
    let refused =
        || Err("cannot connect to 10.0.0.9:9100: Connection refused (os error 111)".into());
    t.apply(
        vec![Ok(page(1, 8, 0)), refused()],
        NOW - Duration::from_secs(5),
    );
    t.apply(
        vec![Ok(page(9, 20, 3)), refused()],
        NOW - Duration::from_secs(1),
    );
    t
}

fn tail_app() -> App {
    let mut app = fixture();
    app.tabs = Analysis::ALL.to_vec();
    app.view = Analysis::Tail;
    app.data.tail = Some(tail());
    app
}

#[test]
fn tail_view() {
    snap("tail", &tail_app());
}

#[test]
fn tail_view_filtered_paused_and_editing() {
    let mut app = tail_app();
    app.tail_filter = Filter::parse("plan=pro").unwrap_or_default();
    snap("tail_filtered", &app);

    app.paused = true;
    app.input = Some(Input {
        text: "user=佐藤".into(),
        error: Some("\"user=佐藤\": a user id is an integer".into()),
        search: None,
        filter: false,
    });
    snap("tail_paused_input", &app);
}

#[test]
fn tail_view_without_collectors_or_events() {
    let mut app = tail_app();
    app.data.tail = Some(Tail::default());
    snap("tail_no_collectors", &app);
    let mut app = tail_app();
    app.data.tail = Some(Tail::for_addresses(&["127.0.0.1:9100".into()]));
    let text = render(&app, (80, 24)).backend().to_string();
    assert!(text.contains("no event yet"), "{text}");
    assert!(text.contains("not read yet"), "{text}");
}

#[test]
fn tail_columns_line_up_and_say_the_rate() {
    let app = tail_app();
    for size in [(80, 24), (160, 48)] {
        let t = render(&app, size);
        let text = t.backend().to_string();
        assert!(text.contains("events/s"), "{text}");
        assert!(text.contains("3 missed"), "{text}");
        assert!(text.contains("✗ cannot connect"), "{text}");
        // The user column ends at the same cell on every event row: find "4x" user ids
        // right-aligned before the country code.
        let buf = t.backend().buffer();
        let mut ends = Vec::new();
        for y in 0..size.1 {
            let row: Vec<&str> = (0..size.0).map(|x| buf[(x, y)].symbol()).collect();
            if let Some(x) = (1..size.0 as usize).find(|&x| {
                row[x - 1] == "4"
                    && row[x].len() == 1
                    && row[x].chars().all(|c| c.is_ascii_digit())
                    && row.get(x + 1) == Some(&" ")
                    && row.get(x + 2).is_some_and(|s| *s == "C" || *s == "J")
            }) {
                ends.push(x);
            }
        }
        assert!(ends.len() >= 5, "{size:?}: {ends:?}\n{text}");
        assert!(
            ends.windows(2).all(|w| w[0] == w[1]),
            "{size:?}: {ends:?}\n{text}"
        );
    }
}
