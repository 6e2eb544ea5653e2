//! The analyses' filter in the update logic: `f` opens the prompt, Enter adds a term (a bad
//! one is refused with its reason and changes nothing), `F` clears; each change clears the
//! filtered analyses' data, refetches at once with the new filter, and drops the answers
//! of a fetch asked for with the old one.
//!
//! Invariant: no I/O and no real clock, as the other update tests.

use crossterm::event::KeyCode;

use super::tests::{app, feed, key, ok_fetch, T0};
use super::*;
use crate::model::Filter;

fn typed(a: &mut App, text: &str) {
    for c in text.chars() {
        update(a, key(KeyCode::Char(c)));
    }
}

fn fetch_filter(cmds: &[Cmd]) -> Option<Filter> {
    cmds.iter().find_map(|c| match c {
        Cmd::Fetch { filter, .. } => Some(filter.clone()),
        _ => None,
    })
}

#[test]
fn f_adds_a_term_and_refetches_with_it() {
    let mut a = app();
    let first = update(&mut a, Msg::Tick(T0));
    assert_eq!(fetch_filter(&first), Some(Filter::default()));
    feed(&mut a, ok_fetch(TimeRange::H1));
    assert!(a.data.live.is_some());

    update(&mut a, key(KeyCode::Char('f')));
    assert!(a.input.as_ref().is_some_and(|i| i.filter));
    // Keys go to the prompt, not to the key map (`q` does not quit, `3` opens no tab).
    typed(&mut a, "event=加入购物车 q3");
    assert!(!a.quit);
    assert_eq!(a.view, Analysis::Live);
    for _ in 0..3 {
        update(&mut a, key(KeyCode::Backspace));
    }
    let cmds = update(&mut a, key(KeyCode::Enter));
    assert!(a.input.is_none());
    assert_eq!(a.filter.event.as_deref(), Some("加入购物车"));
    assert!(
        a.data.live.is_none(),
        "the unfiltered numbers are not shown as filtered"
    );
    assert_eq!(fetch_filter(&cmds), Some(a.filter.clone()));

    // A second term is AND-ed; the collectors' data is not the filter's and stays.
    feed(&mut a, ok_fetch(TimeRange::H1));
    update(&mut a, key(KeyCode::Char('f')));
    typed(&mut a, "prop.plan=pro 🚀");
    let cmds = update(&mut a, key(KeyCode::Enter));
    assert_eq!(a.filter.label(), "event=加入购物车 prop.plan=pro 🚀");
    assert_eq!(fetch_filter(&cmds), Some(a.filter.clone()));
}

#[test]
fn a_bad_term_is_refused_with_its_reason() {
    let mut a = app();
    update(&mut a, Msg::Tick(T0));
    update(&mut a, key(KeyCode::Char('f')));
    typed(&mut a, "colour=red");
    let cmds = update(&mut a, key(KeyCode::Enter));
    assert!(fetch_filter(&cmds).is_none());
    let input = a.input.as_ref().expect("the prompt stays open");
    assert!(input
        .error
        .as_deref()
        .is_some_and(|e| e.contains("unknown field")));
    assert!(a.filter.is_empty());
    // Typing clears the error; Esc closes without a change.
    typed(&mut a, "x");
    assert!(a.input.as_ref().is_some_and(|i| i.error.is_none()));
    update(&mut a, key(KeyCode::Esc));
    assert!(a.input.is_none() && a.filter.is_empty());
}

#[test]
fn answers_for_the_old_filter_are_dropped_and_capital_f_clears() {
    let mut a = app();
    update(&mut a, Msg::Tick(T0));
    // The fetch is in flight when the filter changes.
    update(&mut a, key(KeyCode::Char('f')));
    typed(&mut a, "device=mobile");
    update(&mut a, key(KeyCode::Enter));
    let cmds = feed(&mut a, ok_fetch(TimeRange::H1));
    assert!(a.data.live.is_none(), "an answer for no filter was applied");
    let filter = fetch_filter(&cmds).expect("refetched when the old fetch ended");
    assert_eq!(filter.device.as_deref(), Some("mobile"));
    feed(&mut a, ok_fetch(TimeRange::H1));
    assert!(a.data.live.is_some());

    let cmds = update(&mut a, key(KeyCode::Char('F')));
    assert!(a.filter.is_empty());
    assert!(a.data.live.is_none());
    assert_eq!(fetch_filter(&cmds), Some(Filter::default()));
    // F with no filter does nothing.
    feed(&mut a, ok_fetch(TimeRange::H1));
    assert!(fetch_filter(&update(&mut a, key(KeyCode::Char('F')))).is_none());
}

#[test]
fn the_drill_down_asks_with_the_filter_and_closes_when_it_changes() {
    let mut a = app();
    a.filter = Filter::parse(&["source=web"]).expect("filter");
    a.data.funnel = Some(crate::query::funnel::build(&a.steps, &[4, 2]));
    a.view = Analysis::Funnel;
    let cmds = update(&mut a, key(KeyCode::Enter));
    assert!(cmds.iter().any(|c| matches!(
        c,
        Cmd::Lookup(Lookup::DropOff { filter, .. }) if filter.source.as_deref() == Some("web")
    )));
    assert!(a.drill.is_some());
    update(&mut a, key(KeyCode::Char('F')));
    assert!(a.drill.is_none());
}
