//! Render tests with the seed's users' event names: Chinese and Japanese (two cells a
//! character), emoji, a flag, combining marks and names too long for their column, in every
//! view at 80×24 and 160×48 (insta snapshots `cjk_*`), plus checks that columns line up by
//! display width and that cuts are marked with `…`.
//!
//! Invariant: built from the fixed fixture of [`super::tests`] with only the names changed,
//! so a snapshot here differs from its ASCII twin only where width handling shows.

use ratatui::buffer::Buffer;

use super::tests::{fixture, health, render, snap};
use crate::{
    analysis::Analysis,
    app::App,
    model::{BreakdownRow, CollectorRow, NameCount, Source},
};

/// Names as the seed's users write them; the second one is longer than any column.
const NAMES: [&str; 7] = [
    "浏览商品",
    "非常に長いイベント名がここで切れる予定です",
    "加入购物车",
    "購入完了🎉",
    "cafe\u{301}_visit",
    "🇯🇵キャンペーン参加",
    "search",
];

/// The fixture with CJK, emoji and combining names in every list.
pub(super) fn cjk_fixture() -> App {
    let mut app = fixture();
    app.tabs = Analysis::ALL.to_vec();
    app.steps = NAMES[..4].iter().map(|s| s.to_string()).collect();
    if let Some(live) = app.data.live.as_mut() {
        for (e, name) in live.top_events.iter_mut().zip(NAMES) {
            e.name = name.into();
        }
        live.top_events.push(NameCount {
            name: "👨\u{200d}👩\u{200d}👧 family".into(),
            count: 12,
        });
    }
    if let Some(b) = app.data.breakdown.as_mut() {
        for (r, name) in b.by_event.iter_mut().zip(NAMES) {
            r.key = name.into();
        }
        b.by_country.push(BreakdownRow {
            key: "🇯🇵".into(),
            events: 9,
            users: 4,
        });
    }
    if let Some(f) = app.data.funnel.as_mut() {
        for (s, name) in f.steps.iter_mut().zip(NAMES) {
            s.name = name.into();
        }
    }
    if let Some(p) = app.data.paths.as_mut() {
        for (i, t) in p.transitions.iter_mut().enumerate() {
            t.from = NAMES[i % NAMES.len()].into();
            t.to = NAMES[(i + 1) % NAMES.len()].into();
        }
    }
    if let Some(c) = app.data.collectors.as_mut() {
        c.collectors.push(CollectorRow {
            source: Source::Heartbeat,
            age_seconds: 0.0,
            fill: 0.0,
            drain_seconds: None,
            health: health("edge-東京-1", "東京リージョン", 3, 77, 1 << 20, 12.0, "up"),
        });
    }
    app
}

#[test]
fn every_view_with_cjk_and_emoji_names() {
    for view in Analysis::ALL {
        let mut app = cjk_fixture();
        app.view = view;
        snap(&format!("cjk_{}", view.title().to_lowercase()), &app);
    }
}

/// The x of the first bar glyph on row `y` left of `limit`.
fn bar_start(buf: &Buffer, y: u16, limit: u16) -> Option<u16> {
    (0..limit).find(|&x| "█▏▎▍▌▋▊▉".contains(buf[(x, y)].symbol()))
}

#[test]
fn top_events_columns_line_up_by_display_width() {
    for size in [(80, 24), (160, 48), (100, 30)] {
        let app = cjk_fixture();
        let t = render(&app, size);
        let buf = t.backend().buffer();
        let text = t.backend().to_string();
        // The Top events panel is the bottom-left half: every row's bar starts at the same
        // column and the count ends two cells before it.
        let title = (0..size.1)
            .find(|&y| {
                (0..size.0 / 2)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
                    .contains("Top events")
            })
            .unwrap_or(size.1);
        let rows: Vec<(u16, u16)> = (title + 1..size.1)
            .filter(|&y| buf[(0, y)].symbol() == "│")
            .filter_map(|y| bar_start(buf, y, size.0 / 2).map(|x| (y, x)))
            .collect();
        assert!(rows.len() >= 5, "{size:?}: {rows:?}\n{text}");
        let x0 = rows[0].1;
        for &(y, x) in &rows {
            assert_eq!(x, x0, "{size:?}: row {y} bar at {x}, not {x0}\n{text}");
            let digit = buf[(x - 2, y)].symbol();
            assert!(
                digit.chars().all(|c| c.is_ascii_digit()) && !digit.is_empty(),
                "{size:?}: row {y} count does not end at {}: {digit:?}\n{text}",
                x - 2
            );
        }
        // The long name is cut, marked, and never halves a character.
        assert!(text.contains("非常に長い"), "{text}");
        let cut_line = text
            .lines()
            .find(|l| l.contains("非常に長い"))
            .unwrap_or_default();
        assert!(cut_line.contains('…'), "{cut_line}");
    }
}

#[test]
fn no_view_leaves_half_a_wide_character() {
    // A wide character cut by a column edge would leave its first half drawn in one cell
    // and the next cell overwritten: every wide glyph's second cell must be the blank
    // continuation ratatui writes.
    for view in Analysis::ALL {
        for size in [(80, 24), (160, 48), (97, 31)] {
            let mut app = cjk_fixture();
            app.view = view;
            let t = render(&app, size);
            let buf = t.backend().buffer();
            for y in 0..size.1 {
                let mut x = 0;
                while x < size.0 {
                    let w = ratatui::buffer::CellWidth::cell_width(buf[(x, y)].symbol());
                    if w == 2 {
                        assert!(x + 1 < size.0, "{view:?} {size:?}: wide glyph at the edge");
                        assert_eq!(buf[(x + 1, y)].symbol(), " ", "{view:?} {size:?} ({x},{y})");
                    }
                    x += u16::max(w, 1);
                }
            }
        }
    }
}
