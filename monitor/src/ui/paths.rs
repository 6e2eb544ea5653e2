//! The Paths view: the most frequent next-event transitions within sessions, with counts,
//! share of the listed transitions and average time between the two events.
//!
//! Invariant: a pure function of the state; rows keep the query's order (most frequent
//! first) unless `/` searches or `s` sorts them ([`crate::app::arrange`]), and the share bars are relative to the listed total, which the title states.

use ratatui::{
    layout::{Constraint, Rect},
    widgets::{Cell, Paragraph, Row, Table, TableState},
    Frame,
};

use crate::{
    analysis::Analysis,
    app::{App, Hits, List},
    text,
};

use super::{draw_missing, fmt, list, range_of, section_block, theme};

impl super::View for crate::model::Paths {
    fn draw(frame: &mut Frame, area: Rect, app: &App, hits: &mut Hits) {
        draw(frame, area, app, hits);
    }
}

fn draw(frame: &mut Frame, area: Rect, app: &App, hits: &mut Hits) {
    let title = format!(
        "Top transitions within sessions · {}",
        range_of(app, Analysis::Paths)
    );
    let Some(paths) = &app.data.paths else {
        draw_missing(frame, area, app, Analysis::Paths, &title);
        return;
    };
    let total: i64 = paths.transitions.iter().map(|t| t.count).sum();
    let mut block = section_block(
        app,
        Analysis::Paths,
        format!("{title} · {} transitions listed", fmt::int(total)),
    );
    let order = app.arranged(List::Paths);
    if let Some(f) = list::footer(app, List::Paths, order.len(), paths.transitions.len()) {
        block = block.title_bottom(f);
    }
    if paths.transitions.is_empty() {
        frame.render_widget(
            Paragraph::new("no transitions in this range")
                .style(theme::dim())
                .block(block),
            area,
        );
        return;
    }
    let wide = area.width >= 120;
    let name_w: u16 = if wide { 34 } else { 17 };
    let bar_w = area
        .width
        .saturating_sub(2 + 3 + 2 * name_w + 2 + 9 + 7 + 10 + 6)
        .max(4) as usize;
    let rows = order
        .iter()
        .filter_map(|&i| paths.transitions.get(i))
        .map(|t| {
            let share = if total > 0 {
                t.count as f64 / total as f64
            } else {
                0.0
            };
            Row::new(vec![
                Cell::from(text::fit(&t.from, name_w as usize)),
                Cell::from("→").style(theme::dim()),
                Cell::from(text::fit(&t.to, name_w as usize)).style(theme::bold()),
                Cell::from(format!("{:>9}", fmt::int(t.count))).style(theme::bold()),
                Cell::from(format!("{:>6}", fmt::pct(share))),
                Cell::from(fmt::bar(share / max_share(paths, total), bar_w)),
                Cell::from(format!("{:>9}", fmt::secs(t.avg_seconds))),
            ])
        });
    let table = Table::new(
        rows,
        [
            Constraint::Length(name_w),
            Constraint::Length(1),
            Constraint::Length(name_w),
            Constraint::Length(9),
            Constraint::Length(6),
            Constraint::Length(bar_w as u16),
            Constraint::Length(9),
        ],
    )
    .header(
        Row::new(vec![
            Cell::from(list::header(
                app,
                List::Paths,
                0,
                "From",
                name_w as usize,
                false,
            )),
            Cell::from(""),
            Cell::from(list::header(
                app,
                List::Paths,
                1,
                "To",
                name_w as usize,
                false,
            )),
            Cell::from(list::header(app, List::Paths, 2, "Count", 9, true)),
            Cell::from(format!("{:>6}", "Share")),
            Cell::from(""),
            Cell::from(list::header(app, List::Paths, 3, "Avg gap", 9, true)),
        ])
        .style(theme::header()),
    )
    .row_highlight_style(theme::selected())
    .block(block);
    let selected = app
        .selection(Analysis::Paths)
        .min(order.len().saturating_sub(1));
    let mut state = TableState::default().with_selected((!order.is_empty()).then_some(selected));
    frame.render_stateful_widget(table, area, &mut state);
    list::table_rows(hits, area, state.offset(), order.len());
}

/// The largest share, so the longest bar fills its column.
fn max_share(paths: &crate::model::Paths, total: i64) -> f64 {
    let max = paths.transitions.iter().map(|t| t.count).max().unwrap_or(0);
    if total > 0 && max > 0 {
        max as f64 / total as f64
    } else {
        1.0
    }
}
