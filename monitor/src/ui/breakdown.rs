//! The Breakdown view: events and distinct users by device type, by country and by event
//! name, side by side.
//!
//! Invariant: a pure function of the state; each table's share column is relative to that
//! table's own event total, and rows keep the query's order unless `/` searches or `s`
//! sorts them (one search and sort for the three tables, [`crate::app::arrange`]).

use ratatui::{
    layout::{Constraint, Layout, Rect},
    widgets::{Block, Cell, Paragraph, Row, Table},
    Frame,
};

use crate::{
    analysis::Analysis,
    app::{self, App, Hits, List},
    model::BreakdownRow,
    text,
};

use super::{draw_missing, fmt, list, range_of, section_block, theme};

impl super::View for crate::model::Breakdown {
    fn draw(frame: &mut Frame, area: Rect, app: &App, _hits: &mut Hits) {
        draw(frame, area, app);
    }
}

fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let Some(b) = &app.data.breakdown else {
        draw_missing(
            frame,
            area,
            app,
            Analysis::Breakdown,
            &format!("Breakdown · {}", range_of(app, Analysis::Breakdown)),
        );
        return;
    };
    let [device, country, event] = Layout::horizontal([
        Constraint::Ratio(1, 3),
        Constraint::Ratio(1, 3),
        Constraint::Ratio(1, 3),
    ])
    .areas(area);
    let range = range_of(app, Analysis::Breakdown);
    draw_table(
        frame,
        device,
        app,
        section_block(app, Analysis::Breakdown, format!("Device · {range}")),
        &b.by_device,
    );
    draw_table(
        frame,
        country,
        app,
        section_block(app, Analysis::Breakdown, format!("Country · {range}")),
        &b.by_country,
    );
    draw_table(
        frame,
        event,
        app,
        section_block(app, Analysis::Breakdown, format!("Event · {range}")),
        &b.by_event,
    );
}

fn draw_table(frame: &mut Frame, area: Rect, app: &App, block: Block<'_>, all: &[BreakdownRow]) {
    let state = app.list_state(List::Breakdown);
    let order = app::arrange(List::Breakdown, state, &app::lists::breakdown(all));
    let block = match list::footer(app, List::Breakdown, order.len(), all.len()) {
        Some(f) => block.title_bottom(f),
        None => block,
    };
    let rows: Vec<&BreakdownRow> = order.iter().filter_map(|&i| all.get(i)).collect();
    if rows.is_empty() {
        frame.render_widget(
            Paragraph::new(if all.is_empty() {
                "no events"
            } else {
                "no match"
            })
            .style(theme::dim())
            .block(block),
            area,
        );
        return;
    }
    let total: i64 = all.iter().map(|r| r.events).sum();
    // Narrow: key, events, users. Wide: plus share and a bar.
    let wide = area.width >= 48;
    let inner_w = area.width.saturating_sub(2);
    let num_w: u16 = if wide { 9 } else { 6 };
    let (share_w, bar_w): (u16, u16) = if wide { (6, 8) } else { (0, 0) };
    let columns: u16 = if wide { 5 } else { 3 };
    let key_w = inner_w
        .saturating_sub(2 * num_w + share_w + bar_w + (columns - 1))
        .max(4);
    let number = |n: i64| {
        if wide {
            fmt::int(n)
        } else {
            fmt::compact(n)
        }
    };
    let body = rows.iter().map(|r| {
        let share = if total > 0 {
            r.events as f64 / total as f64
        } else {
            0.0
        };
        let mut cells = vec![
            Cell::from(text::fit(&r.key, key_w as usize)).style(theme::bold()),
            Cell::from(format!("{:>w$}", number(r.events), w = num_w as usize)),
            Cell::from(format!("{:>w$}", number(r.users), w = num_w as usize)),
        ];
        if wide {
            cells.push(Cell::from(format!("{:>6}", fmt::pct(share))));
            cells.push(Cell::from(fmt::bar(share, bar_w as usize)));
        }
        Row::new(cells)
    });
    let mut widths = vec![
        Constraint::Length(key_w),
        Constraint::Length(num_w),
        Constraint::Length(num_w),
    ];
    let mut header = vec![
        Cell::from(list::header(
            app,
            List::Breakdown,
            0,
            "",
            key_w as usize,
            false,
        )),
        Cell::from(list::header(
            app,
            List::Breakdown,
            1,
            "Events",
            num_w as usize,
            true,
        )),
        Cell::from(list::header(
            app,
            List::Breakdown,
            2,
            "Users",
            num_w as usize,
            true,
        )),
    ];
    if wide {
        widths.extend([Constraint::Length(share_w), Constraint::Length(bar_w)]);
        header.extend([Cell::from(format!("{:>6}", "Share")), Cell::from("")]);
    }
    frame.render_widget(
        Table::new(body, widths)
            .header(Row::new(header).style(theme::header()))
            .block(block),
        area,
    );
}
