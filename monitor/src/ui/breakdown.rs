//! The Breakdown view: events and distinct users by device type, by country and by event
//! name, side by side.
//!
//! Invariant: a pure function of the state; each table's share column is relative to that
//! table's own event total, and rows keep the query's order.

use ratatui::{
    layout::{Constraint, Layout, Rect},
    widgets::{Block, Cell, Paragraph, Row, Table},
    Frame,
};

use crate::{analysis::Analysis, app::App, model::BreakdownRow, text};

use super::{draw_missing, fmt, range_of, section_block, theme};

impl super::View for crate::model::Breakdown {
    fn draw(frame: &mut Frame, area: Rect, app: &App) {
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
        section_block(app, Analysis::Breakdown, format!("Device · {range}")),
        &b.by_device,
    );
    draw_table(
        frame,
        country,
        section_block(app, Analysis::Breakdown, format!("Country · {range}")),
        &b.by_country,
    );
    draw_table(
        frame,
        event,
        section_block(app, Analysis::Breakdown, format!("Event · {range}")),
        &b.by_event,
    );
}

fn draw_table(frame: &mut Frame, area: Rect, block: Block<'_>, rows: &[BreakdownRow]) {
    if rows.is_empty() {
        frame.render_widget(
            Paragraph::new("no events").style(theme::dim()).block(block),
            area,
        );
        return;
    }
    let total: i64 = rows.iter().map(|r| r.events).sum();
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
        Cell::from(""),
        Cell::from(format!("{:>w$}", "Events", w = num_w as usize)),
        Cell::from(format!("{:>w$}", "Users", w = num_w as usize)),
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
