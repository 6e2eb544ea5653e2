//! The Tail view's update logic: polls only while it is on screen and not paused, one
//! round at a time; answers merged into the model; the `/` filter input.
//!
//! Invariant: no I/O and no real clock, like [`super::tests`].

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use time::macros::datetime;

use super::*;
use crate::model::{TailEvent, TailPage};

const T0: OffsetDateTime = datetime!(2025-03-01 12:00:00 UTC);

fn app() -> App {
    App::new(
        Config {
            refresh: Duration::from_secs(2),
            steps: vec![],
            collectors: vec!["127.0.0.1:9100".into(), "127.0.0.1:9101".into()],
            has_database: false,
            range: TimeRange::H1,
            tabs: Analysis::ALL.to_vec(),
            max_replica_lag: DEFAULT_MAX_REPLICA_LAG,
        },
        T0,
    )
}

fn key(c: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn typed(a: &mut App, s: &str) {
    for c in s.chars() {
        update(a, key(KeyCode::Char(c)));
    }
}

fn tails(cmds: &[Cmd]) -> Vec<Vec<Option<u64>>> {
    cmds.iter()
        .filter_map(|c| match c {
            Cmd::Tail { afters, .. } => Some(afters.clone()),
            _ => None,
        })
        .collect()
}

fn page(id: &str, seq: u64, name: &str) -> Result<TailPage, String> {
    Ok(TailPage {
        collector_id: id.into(),
        epoch: 1,
        first_seq: 1,
        last_seq: seq,
        missed: 0,
        events: vec![TailEvent {
            seq,
            event_name: name.into(),
            received_at: T0,
            ..TailEvent::default()
        }],
    })
}

#[test]
fn polls_only_on_the_tail_view_one_round_at_a_time() {
    let mut a = app();
    assert!(
        tails(&update(&mut a, Msg::Tick(T0))).is_empty(),
        "not on screen"
    );
    let cmds = update(&mut a, key(KeyCode::Char('9')));
    assert_eq!(a.view, Analysis::Tail);
    assert_eq!(tails(&cmds), vec![vec![None, None]]);
    // In flight: no second round.
    assert!(tails(&update(&mut a, Msg::Tick(T0 + Duration::from_secs(3)))).is_empty());
    update(
        &mut a,
        Msg::Tailed(vec![page("edge-a", 4, "加入购物车"), Err("refused".into())]),
    );
    let t = a.tail().map(|t| t.events.len());
    assert_eq!(t, Some(1));
    // Due again after the interval, from the cursors.
    let cmds = update(&mut a, Msg::Tick(T0 + Duration::from_secs(5)));
    assert_eq!(tails(&cmds), vec![vec![Some(4), None]]);
    update(
        &mut a,
        Msg::Tailed(vec![page("edge-a", 5, "x"), page("edge-b", 1, "y")]),
    );
    // Paused: nothing is polled; resumed: polling goes on from the cursors.
    update(&mut a, key(KeyCode::Char('p')));
    assert!(tails(&update(&mut a, Msg::Tick(T0 + Duration::from_secs(9)))).is_empty());
    let cmds = update(&mut a, key(KeyCode::Char('p')));
    assert_eq!(tails(&cmds), vec![vec![Some(5), Some(1)]]);
}

#[test]
fn slash_edits_the_filter() {
    let mut a = app();
    update(&mut a, key(KeyCode::Char('9')));
    update(&mut a, key(KeyCode::Char('/')));
    assert!(a.input.is_some());
    // Keys go to the input, even q.
    typed(&mut a, "user=q");
    assert!(!a.quit);
    update(&mut a, key(KeyCode::Enter));
    let error = a.input.as_ref().and_then(|i| i.error.clone());
    assert!(
        error.is_some_and(|e| e.contains("integer")),
        "refused, input stays open"
    );
    for _ in 0..6 {
        update(&mut a, key(KeyCode::Backspace));
    }
    typed(&mut a, "name=加入购物车 plan=pro");
    update(&mut a, key(KeyCode::Enter));
    assert!(a.input.is_none());
    assert_eq!(a.tail_filter.text(), "name=加入购物车 plan=pro");
    // Esc leaves the filter as it was.
    update(&mut a, key(KeyCode::Char('/')));
    typed(&mut a, " more");
    update(&mut a, key(KeyCode::Esc));
    assert_eq!(a.tail_filter.text(), "name=加入购物车 plan=pro");
    // Ctrl-C still quits from the input.
    update(&mut a, key(KeyCode::Char('/')));
    update(
        &mut a,
        Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
    );
    assert!(a.quit);
}
