//! Render tests of the analyses' filter: its chips under the status line with a CJK and an
//! emoji value (on an analysis tab, and on a tab it does not apply to), many terms cut with
//! `+N`, and the `f` prompt being typed and refusing a term — at 80×24 and 160×48.
//!
//! Invariant: built from the fixed fixture of [`super::tests`]; without a filter the
//! screen is the fixture's own (no line is taken).

use super::tests::{fixture, render, snap};
use crate::{
    analysis::Analysis,
    app::{App, Input},
    model::Filter,
};

fn filtered(view: Analysis) -> App {
    let mut app = fixture();
    app.view = view;
    app.filter =
        Filter::parse(&["event=加入购物车", "prop.plan=pro 🚀", "country=cn"]).expect("filter");
    app
}

#[test]
fn chips_on_an_analysis_and_on_a_tab_it_does_not_apply_to() {
    snap("filter_chips_overview", &filtered(Analysis::Live));
    snap("filter_chips_funnel", &filtered(Analysis::Funnel));
    snap("filter_chips_collectors", &filtered(Analysis::Collectors));
    let screen = render(&filtered(Analysis::Live), (80, 24))
        .backend()
        .to_string();
    assert!(screen.contains(" event=加入购物车 "), "{screen}");
    assert!(screen.contains(" prop.plan=pro 🚀 "), "{screen}");
    assert!(screen.contains(" country=CN "), "{screen}");
}

#[test]
fn many_terms_are_cut_by_display_width() {
    let mut app = filtered(Analysis::Breakdown);
    for (k, v) in [
        ("渠道", "微信小程序"),
        ("活动", "双十一🎉大促"),
        ("tier", "gold"),
    ] {
        app.filter.add(&format!("prop.{k}={v}")).expect("term");
    }
    snap("filter_chips_many", &app);
    let narrow = render(&app, (80, 24)).backend().to_string();
    let line = narrow.lines().nth(2).unwrap_or_default();
    assert!(line.contains(" +4 f adds · F clears"), "{line}");
    let wide = render(&app, (160, 48)).backend().to_string();
    let line = wide.lines().nth(2).unwrap_or_default();
    assert!(line.contains(" prop.活动=双十一🎉大促 "), "{line}");
}

#[test]
fn the_prompt_being_typed_and_refusing_a_term() {
    let mut app = filtered(Analysis::Pages);
    app.input = Some(Input {
        text: "source=小程序".into(),
        filter: true,
        ..Input::default()
    });
    snap("filter_prompt_typing", &app);
    app.input = Some(Input {
        text: "colour=红".into(),
        error: Some(
            Filter::parse(&["colour=红"])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
        ),
        filter: true,
        ..Input::default()
    });
    snap("filter_prompt_refused", &app);
    // The prompt on the Tail view is the analyses' one, not the tail's filter line.
    let mut tail = fixture();
    tail.view = Analysis::Tail;
    tail.input = app.input.clone();
    let screen = render(&tail, (160, 48)).backend().to_string();
    assert!(screen.contains("filter + colour=红"), "{screen}");
    assert!(!screen.contains("filter / "), "{screen}");
}

#[test]
fn no_filter_takes_no_line() {
    let plain = render(&fixture(), (80, 24)).backend().to_string();
    let mut cleared = filtered(Analysis::Live);
    cleared.filter = Filter::default();
    assert_eq!(render(&cleared, (80, 24)).backend().to_string(), plain);
}
