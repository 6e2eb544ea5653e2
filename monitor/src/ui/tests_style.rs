//! Styles that carry meaning: state is said in words as well as colour, no view paints a
//! background (readable on dark and light terminals), and with colour off (`NO_COLOR`) no
//! cell carries a colour while failing states stay distinct.
//!
//! Invariant: colour is a process-wide setting, so every test here that draws holds
//! [`COLOR_LOCK`] and leaves colour on.

use ratatui::style::{Color, Modifier};

use super::tests::{fixture, render};
use crate::analysis::Analysis;

/// Held by the tests that draw with colour on or off (a process-wide setting).
static COLOR_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn no_color_draws_no_colour_and_keeps_the_words() {
    let _lock = COLOR_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    super::theme::set_color(false);
    for view in Analysis::ALL {
        let mut app = fixture();
        app.view = view;
        let t = render(&app, (160, 48));
        let buf = t.backend().buffer();
        let coloured = buf.content.iter().find(|c| c.fg != Color::Reset);
        assert!(coloured.is_none(), "{view:?}: {coloured:?}");
        if view == Analysis::Collectors {
            let text = t.backend().to_string();
            assert!(text.contains("95s!") && text.contains("stalled"), "{text}");
            // Failing is still distinct: bold and underlined.
            let stale = buf.content.iter().find(|c| c.symbol() == "!");
            assert!(stale.is_some_and(|c| c.modifier.contains(Modifier::UNDERLINED)));
        }
    }
    super::theme::set_color(true);
}

#[test]
fn meaning_is_not_only_colour() {
    let _lock = COLOR_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut app = fixture();
    app.view = Analysis::Collectors;
    let t = render(&app, (160, 48));
    let text = t.backend().to_string();
    // Stale rows say so with a "!" and are red; not draining says "stalled".
    assert!(text.contains("95s!"), "{text}");
    assert!(text.contains("stalled"), "{text}");
    let buf = t.backend().buffer();
    let cell = (0..buf.area.height)
        .flat_map(|y| (0..buf.area.width).map(move |x| (x, y)))
        .find(|&(x, y)| {
            buf[(x, y)].symbol() == "9"
                && buf[(x + 1, y)].symbol() == "5"
                && buf[(x + 2, y)].symbol() == "s"
                && buf[(x + 3, y)].symbol() == "!"
        });
    let Some((x, y)) = cell else {
        panic!("no stale age cell")
    };
    assert_eq!(buf[(x, y)].fg, Color::Red);
    // No view paints backgrounds: readable on dark and light terminals.
    for view in Analysis::ALL {
        let mut app = fixture();
        app.view = view;
        app.help = view == Analysis::Live;
        let t = render(&app, (160, 48));
        let buf = t.backend().buffer();
        assert!(
            buf.content.iter().all(|c| c.bg == Color::Reset),
            "{view:?} paints a background"
        );
    }
    // The selected tab is reversed.
    let app = fixture();
    let t = render(&app, (80, 24));
    assert!(t.backend().buffer()[(0, 0)]
        .modifier
        .contains(Modifier::REVERSED));
}
