//! The Pages view: the most viewed page URLs over the range, with views, distinct users and
//! each page's share of the listed views.
//!
//! Invariant: a pure function of the state; rows keep the query's order (most viewed
//! first) unless `/` searches or `s` sorts them ([`crate::app::arrange`]), URLs are cut to their column by display width (CJK and emoji count two cells),
//! and shares are relative to the listed total, which the title states.

use ratatui::{
    layout::{Constraint, Rect},
    widgets::{Cell, Paragraph, Row, Table, TableState},
    Frame,
};

use crate::{
    analysis::Analysis,
    app::{App, Hits, List},
    model::Pages,
    text,
};

use super::{draw_missing, fmt, list, range_of, section_block, theme};

impl super::View for Pages {
    fn draw(frame: &mut Frame, area: Rect, app: &App, hits: &mut Hits) {
        draw(frame, area, app, hits);
    }
}

fn draw(frame: &mut Frame, area: Rect, app: &App, hits: &mut Hits) {
    let title = format!("Top pages · {}", range_of(app, Analysis::Pages));
    let Some(pages) = &app.data.pages else {
        draw_missing(frame, area, app, Analysis::Pages, &title);
        return;
    };
    let total: i64 = pages.pages.iter().map(|p| p.views).sum();
    let mut block = section_block(
        app,
        Analysis::Pages,
        format!("{title} · {} views listed", fmt::int(total)),
    );
    let order = app.arranged(List::Pages);
    if let Some(f) = list::footer(app, List::Pages, order.len(), pages.pages.len()) {
        block = block.title_bottom(f);
    }
    if pages.pages.is_empty() {
        frame.render_widget(
            Paragraph::new("no page views in this range")
                .style(theme::dim())
                .block(block),
            area,
        );
        return;
    }
    let wide = area.width >= 100;
    let (num_w, share_w, bar_w): (u16, u16, u16) = if wide { (9, 6, 20) } else { (7, 6, 0) };
    let columns: u16 = if wide { 6 } else { 5 };
    let url_w = area
        .width
        .saturating_sub(2 + 3 + 2 * num_w + share_w + bar_w + (columns - 1))
        .max(8);
    let rows = order
        .iter()
        .filter_map(|&i| Some((i, pages.pages.get(i)?)))
        .map(|(i, p)| {
            let share = if total > 0 {
                p.views as f64 / total as f64
            } else {
                0.0
            };
            let mut cells = vec![
                Cell::from(format!("{:>3}", i + 1)).style(theme::dim()),
                Cell::from(text::fit(&p.url, url_w as usize)).style(theme::bold()),
                Cell::from(format!("{:>w$}", fmt::int(p.views), w = num_w as usize)),
                Cell::from(format!("{:>w$}", fmt::int(p.users), w = num_w as usize)),
                Cell::from(format!("{:>6}", fmt::pct(share))),
            ];
            if wide {
                cells.push(Cell::from(fmt::bar(share, bar_w as usize)));
            }
            Row::new(cells)
        });
    let mut widths = vec![
        Constraint::Length(3),
        Constraint::Length(url_w),
        Constraint::Length(num_w),
        Constraint::Length(num_w),
        Constraint::Length(share_w),
    ];
    let mut header = vec![
        Cell::from("  #"),
        Cell::from(list::header(
            app,
            List::Pages,
            0,
            "Page",
            url_w as usize,
            false,
        )),
        Cell::from(list::header(
            app,
            List::Pages,
            1,
            "Views",
            num_w as usize,
            true,
        )),
        Cell::from(list::header(
            app,
            List::Pages,
            2,
            "Users",
            num_w as usize,
            true,
        )),
        Cell::from(format!("{:>6}", "Share")),
    ];
    if wide {
        widths.push(Constraint::Length(bar_w));
        header.push(Cell::from(""));
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme::header()))
        .row_highlight_style(theme::selected())
        .block(block);
    let selected = app
        .selection(Analysis::Pages)
        .min(order.len().saturating_sub(1));
    let mut state = TableState::default().with_selected((!order.is_empty()).then_some(selected));
    frame.render_stateful_widget(table, area, &mut state);
    list::table_rows(hits, area, state.offset(), order.len());
}
