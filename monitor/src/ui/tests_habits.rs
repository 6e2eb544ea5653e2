//! Render tests of the list habits: a search being typed and kept, sort marks in the
//! headers, the status line's export notice and error, at 80×24 and 160×48 (insta
//! snapshots `habits_*`), from the CJK fixture so cuts and widths show.
//!
//! Invariant: built from the fixed fixture of [`super::tests`] (no clock, no randomness).

use super::tests::{render, snap, NOW};
use super::tests_unicode::cjk_fixture;
use crate::{
    analysis::Analysis,
    app::{App, Input, List, ListState, Notice, Sort},
};

fn with(view: Analysis, list: List, search: &str, sort: Option<Sort>) -> App {
    let mut app = cjk_fixture();
    app.view = view;
    app.lists[list.index()] = ListState {
        search: search.into(),
        sort,
    };
    app
}

#[test]
fn search_being_typed_and_kept() {
    let mut app = with(Analysis::Pages, List::Pages, "商品", None);
    app.input = Some(Input {
        text: "商品".into(),
        error: None,
        search: Some(List::Pages),
        filter: false,
    });
    snap("habits_pages_search_typing", &app);
    app.input = None;
    snap("habits_pages_search_kept", &app);
    let text = render(&app, (160, 48)).backend().to_string();
    assert!(text.contains("/商品/抹茶"), "{text}");
    assert!(!text.contains("/cart"), "{text}");
    // The breakdown's three tables share one search.
    let app = with(Analysis::Breakdown, List::Breakdown, "🇯🇵", None);
    snap("habits_breakdown_search", &app);
}

#[test]
fn sort_marks_in_the_headers() {
    let sort = |column, reversed| Some(Sort { column, reversed });
    snap(
        "habits_paths_sorted",
        &with(Analysis::Paths, List::Paths, "", sort(3, false)),
    );
    snap(
        "habits_collectors_sorted",
        &with(Analysis::Collectors, List::Collectors, "", sort(3, true)),
    );
    snap(
        "habits_top_events_sorted",
        &with(Analysis::Live, List::TopEvents, "", sort(0, false)),
    );
    let text = render(
        &with(Analysis::Pages, List::Pages, "", sort(1, true)),
        (160, 48),
    )
    .backend()
    .to_string();
    assert!(text.contains("Views▲"), "{text}");
    assert!(text.contains("sort Views▲"), "{text}");
}

#[test]
fn status_line_notices() {
    let mut app = cjk_fixture();
    app.view = Analysis::Pages;
    app.notice = Some(Notice {
        text: "exported to /home/oncall/报告/monitor-pages-20250301T120000Z.csv".into(),
        error: false,
        at: NOW,
    });
    snap("habits_exported", &app);
    app.notice = Some(Notice {
        text: "export failed: /srv: Permission denied (os error 13); /tmp: No space left on device (os error 28)".into(),
        error: true,
        at: NOW,
    });
    snap("habits_export_failed", &app);
}
