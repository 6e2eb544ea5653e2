//! The update logic of the drill-down, search, sort, export and mouse clicks: from fixed
//! messages and a fixed clock, like [`super::tests`].
//!
//! Invariant: no I/O and no real clock: every test is deterministic.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::Rect;
use time::macros::datetime;

use super::*;
use crate::model::{
    DropOff, DropSession, Funnel, FunnelStep, Live, NameCount, PageRow, Pages, Person,
};

const T0: OffsetDateTime = datetime!(2025-03-01 12:00:00 UTC);

fn app() -> App {
    let mut a = App::new(
        Config {
            refresh: Duration::from_secs(2),
            steps: vec!["page_view".into(), "加入购物车".into(), "purchase".into()],
            collectors: vec![],
            has_database: true,
            range: TimeRange::H1,
            tabs: Analysis::ALL.to_vec(),
            max_replica_lag: crate::app::DEFAULT_MAX_REPLICA_LAG,
        },
        T0,
    );
    a.data.funnel = Some(Funnel {
        steps: ["page_view", "加入购物车", "purchase"]
            .iter()
            .map(|n| FunnelStep {
                name: n.to_string(),
                sessions: 10,
                step_conversion: 1.0,
                overall_conversion: 1.0,
            })
            .collect(),
    });
    a.data.pages = Some(Pages {
        pages: [("/", 30, 9), ("/商品/抹茶", 20, 12), ("/cart", 5, 5)]
            .iter()
            .map(|(u, v, n)| PageRow {
                url: u.to_string(),
                views: *v,
                users: *n,
            })
            .collect(),
    });
    a.data.live = Some(Live {
        top_events: [("page_view", 9), ("購入完了🎉", 3), ("search", 5)]
            .iter()
            .map(|(n, c)| NameCount {
                name: n.to_string(),
                count: *c,
            })
            .collect(),
        ..Live::default()
    });
    a
}

fn key(c: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn chars(a: &mut App, s: &str) {
    for c in s.chars() {
        update(a, key(KeyCode::Char(c)));
    }
}

fn drop_off(steps: Vec<String>, step: usize) -> DropOff {
    DropOff {
        steps,
        step,
        total: 3,
        sessions: vec![
            DropSession {
                session_id: "s-3".into(),
                person: Some("usr_李".into()),
                last_event: "加入购物车".into(),
                last_time: T0 - Duration::from_secs(10),
            },
            DropSession {
                session_id: "s-2".into(),
                person: None,
                last_event: "page_view".into(),
                last_time: T0 - Duration::from_secs(20),
            },
            DropSession {
                session_id: "s-1".into(),
                person: Some("v-🎉".into()),
                last_event: "加入购物车".into(),
                last_time: T0 - Duration::from_secs(30),
            },
        ],
    }
}

/// Opens the drill-down on step 2 and answers it; returns the lookup asked for.
fn drilled(a: &mut App) -> Lookup {
    update(a, key(KeyCode::Char('3')));
    update(a, key(KeyCode::Down));
    let cmds = update(a, key(KeyCode::Enter));
    let lookup = cmds
        .iter()
        .find_map(|c| match c {
            Cmd::Lookup(l) => Some(l.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no lookup in {cmds:?}"));
    let Lookup::DropOff {
        window,
        steps,
        step,
        ..
    } = lookup.clone()
    else {
        panic!("{lookup:?}");
    };
    update(
        a,
        Msg::Looked(Box::new(Looked::DropOff {
            window,
            steps: steps.clone(),
            step,
            result: Ok(drop_off(steps, step)),
        })),
    );
    lookup
}

#[test]
fn enter_on_a_step_asks_for_its_drop_off_over_the_range() {
    let mut a = app();
    let lookup = drilled(&mut a);
    assert_eq!(
        lookup,
        Lookup::DropOff {
            window: TimeRange::H1.window(T0),
            steps: a.steps.clone(),
            step: 1,
            filter: Default::default(),
        }
    );
    let d = a.drill.as_ref().unwrap_or_else(|| panic!("no drill-down"));
    assert_eq!(d.list.ready().map(|l| l.sessions.len()), Some(3));
    assert_eq!(a.current_list(), Some(List::DropOff));
}

#[test]
fn enter_on_a_session_opens_its_person_and_esc_goes_back_level_by_level() {
    let mut a = app();
    drilled(&mut a);
    let cmds = update(&mut a, key(KeyCode::Enter));
    assert!(
        cmds.contains(&Cmd::Lookup(Lookup::Person {
            id: "usr_李".into()
        })),
        "{cmds:?}"
    );
    // A late answer for another id is dropped; the right one lands.
    let person = |id: &str| Person {
        asked: id.into(),
        person: id.into(),
        ..Person::default()
    };
    update(
        &mut a,
        Msg::Looked(Box::new(Looked::Person {
            id: "someone-else".into(),
            result: Ok(Some(person("someone-else"))),
        })),
    );
    let pane = |a: &App| a.drill.as_ref().and_then(|d| d.person.clone());
    assert_eq!(pane(&a).map(|p| p.data), Some(Loadable::Loading));
    update(
        &mut a,
        Msg::Looked(Box::new(Looked::Person {
            id: "usr_李".into(),
            result: Ok(Some(person("usr_李"))),
        })),
    );
    assert_eq!(
        pane(&a).map(|p| p.data),
        Some(Loadable::Ready(Some(person("usr_李"))))
    );
    update(&mut a, key(KeyCode::Esc));
    assert!(a.drill.is_some() && pane(&a).is_none(), "back to the list");
    update(&mut a, key(KeyCode::Esc));
    assert!(a.drill.is_none(), "back to the funnel");
    assert_eq!(a.view, Analysis::Funnel);
}

#[test]
fn a_session_without_an_id_says_so_and_an_old_drop_off_answer_is_dropped() {
    let mut a = app();
    drilled(&mut a);
    update(&mut a, key(KeyCode::Down));
    assert!(update(&mut a, key(KeyCode::Enter)).is_empty());
    assert!(a.current_notice().is_some_and(|n| n.error));
    // A range change asks again; the answer for the old window does not land.
    let cmds = update(&mut a, key(KeyCode::Right));
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Cmd::Lookup(Lookup::DropOff { .. }))),
        "{cmds:?}"
    );
    let steps = a.steps.clone();
    update(
        &mut a,
        Msg::Looked(Box::new(Looked::DropOff {
            window: TimeRange::H1.window(T0),
            steps,
            step: 1,
            result: Ok(DropOff::default()),
        })),
    );
    assert_eq!(
        a.drill.as_ref().map(|d| d.list.clone()),
        Some(Loadable::Loading)
    );
}

#[test]
fn search_filters_as_typed_enter_keeps_esc_clears() {
    let mut a = app();
    update(&mut a, key(KeyCode::Char('8')));
    update(&mut a, key(KeyCode::Char('/')));
    chars(&mut a, "商品");
    assert_eq!(a.arranged(List::Pages), vec![1]);
    update(&mut a, key(KeyCode::Enter));
    assert!(a.input.is_none());
    assert_eq!(a.arranged(List::Pages), vec![1], "Enter keeps the search");
    // Esc clears the search first (and only that).
    update(&mut a, key(KeyCode::Esc));
    assert_eq!(a.arranged(List::Pages), vec![0, 1, 2]);
    // Case-insensitive; no match is an empty list, not an error.
    update(&mut a, key(KeyCode::Char('/')));
    chars(&mut a, "CART");
    assert_eq!(a.arranged(List::Pages), vec![2]);
    update(&mut a, key(KeyCode::Esc));
    assert!(a.input.is_none());
    assert_eq!(
        a.arranged(List::Pages).len(),
        3,
        "Esc in the input clears it"
    );
    // Typing a search never switches tabs or quits.
    update(&mut a, key(KeyCode::Char('/')));
    chars(&mut a, "q1");
    assert!(!a.quit);
    assert_eq!(a.view, Analysis::Pages);
}

#[test]
fn s_cycles_sort_columns_and_capital_s_reverses() {
    let mut a = app();
    // Overview: top events by name A→Z, then by count largest first, then the query's order.
    update(&mut a, key(KeyCode::Char('s')));
    assert_eq!(a.arranged(List::TopEvents), vec![0, 2, 1]);
    update(&mut a, key(KeyCode::Char('S')));
    assert_eq!(a.arranged(List::TopEvents), vec![1, 2, 0]);
    update(&mut a, key(KeyCode::Char('s')));
    assert_eq!(a.arranged(List::TopEvents), vec![0, 2, 1]);
    assert_eq!(
        a.list_state(List::TopEvents).sort,
        Some(Sort {
            column: 1,
            reversed: false
        })
    );
    update(&mut a, key(KeyCode::Char('S')));
    assert_eq!(a.arranged(List::TopEvents), vec![1, 2, 0], "fewest first");
    update(&mut a, key(KeyCode::Char('s')));
    assert_eq!(a.list_state(List::TopEvents).sort, None);
    assert_eq!(a.arranged(List::TopEvents), vec![0, 1, 2]);
    // Each list keeps its own.
    update(&mut a, key(KeyCode::Char('8')));
    assert_eq!(a.list_state(List::Pages).sort, None);
}

#[test]
fn e_asks_for_the_views_csv_and_shows_where_it_went() {
    let mut a = app();
    update(&mut a, key(KeyCode::Char('8')));
    let cmds = update(&mut a, key(KeyCode::Char('e')));
    let Some(Cmd::Export { file_name, csv }) = cmds.first() else {
        panic!("{cmds:?}");
    };
    assert_eq!(file_name, "monitor-pages-20250301T120000Z.csv");
    assert!(
        csv.starts_with("section,page_url,views,users\r\npages,/,30,9\r\n"),
        "{csv}"
    );
    update(&mut a, Msg::Exported(Ok("/tmp/x.csv".into())));
    let n = a.current_notice().cloned();
    assert_eq!(
        n.map(|n| (n.text, n.error)),
        Some(("exported to /tmp/x.csv".into(), false))
    );
    update(&mut a, Msg::Exported(Err("disk full".into())));
    assert!(a
        .current_notice()
        .is_some_and(|n| n.error && n.text.contains("disk full")));
    // Notices fade.
    update(&mut a, Msg::Tick(T0 + NOTICE_FOR));
    assert!(a.current_notice().is_none());
    // The drill-down exports its sessions; nothing loaded is an error, not a file.
    let mut b = app();
    drilled(&mut b);
    let cmds = update(&mut b, key(KeyCode::Char('e')));
    assert!(
        matches!(&cmds[..], [Cmd::Export { file_name, csv }]
            if file_name.starts_with("monitor-drop-off-") && csv.contains("sessions,s-3,usr_李")),
        "{cmds:?}"
    );
    update(&mut b, key(KeyCode::Char('7')));
    b.data.database = None;
    assert!(update(&mut b, key(KeyCode::Char('e'))).is_empty());
    assert!(b.current_notice().is_some_and(|n| n.error));
}

#[test]
fn clicks_select_then_open_and_tabs_switch() {
    let mut hits = Hits::default();
    hits.add(Rect::new(0, 0, 10, 1), Target::Tab(Analysis::Funnel));
    hits.add(Rect::new(0, 5, 80, 1), Target::Row(0));
    hits.add(Rect::new(0, 7, 80, 1), Target::Row(1));
    let click = |x, y| MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: x,
        row: y,
        modifiers: KeyModifiers::NONE,
    };
    let mut a = app();
    let msg = resolve(click(3, 0), &hits).unwrap_or(Msg::Quit);
    update(&mut a, msg);
    assert_eq!(a.view, Analysis::Funnel);
    let msg = resolve(click(40, 7), &hits).unwrap_or(Msg::Quit);
    assert!(update(&mut a, msg).is_empty(), "a first click only selects");
    assert_eq!(a.selection(Analysis::Funnel), 1);
    let msg = resolve(click(40, 7), &hits).unwrap_or(Msg::Quit);
    let cmds = update(&mut a, msg);
    assert!(
        matches!(&cmds[..], [Cmd::Lookup(Lookup::DropOff { step: 1, .. })]),
        "a second click opens: {cmds:?}"
    );
    // Nothing under the pointer, or the wheel.
    assert!(matches!(
        resolve(click(79, 20), &hits),
        Some(Msg::Click(None))
    ));
    let wheel = MouseEvent {
        kind: MouseEventKind::ScrollDown,
        ..click(0, 0)
    };
    assert!(matches!(resolve(wheel, &hits), Some(Msg::Scroll(1))));
    // The help overlay: a click closes it and does nothing else.
    let mut b = app();
    update(&mut b, key(KeyCode::Char('?')));
    update(&mut b, Msg::Click(Some(Target::Tab(Analysis::Pages))));
    assert!(!b.help);
    assert_eq!(b.view, Analysis::Live);
}
