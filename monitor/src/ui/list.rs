//! What every list view shares about search and sort: the sort mark in a column header
//! (`▼` largest or last first, `▲` the other way), the block's bottom line saying what the
//! search keeps and how the list is sorted, the `/` search line, and recording drawn rows
//! for mouse clicks.
//!
//! Invariant: pure; text goes through [`crate::text`] (a search may hold CJK or emoji).

use ratatui::{
    layout::Rect,
    text::{Line, Span},
    widgets::Paragraph,
    Frame,
};

use crate::{
    app::{App, Hits, List, Target},
    text,
};

use super::theme;

/// ` ▼` / ` ▲` when `list` is sorted by column `col`, else nothing.
pub(crate) fn mark(app: &App, list: List, col: usize) -> &'static str {
    match app.list_state(list).sort {
        Some(s) if s.column == col => {
            if s.descending(list) {
                "▼"
            } else {
                "▲"
            }
        }
        _ => "",
    }
}

/// `name` with its sort mark, in `width` cells aligned like its column.
pub(crate) fn header(
    app: &App,
    list: List,
    col: usize,
    name: &str,
    width: usize,
    right: bool,
) -> String {
    let label = format!("{name}{}", mark(app, list, col));
    if right {
        text::right(&label, width)
    } else {
        text::left(&label, width)
    }
}

/// The bottom line of a list's block: ` /search · 3 of 20 · sort Views ▼ `, when a search or
/// a sort is on.
pub(crate) fn footer(app: &App, list: List, shown: usize, total: usize) -> Option<Line<'static>> {
    let state = app.list_state(list);
    let mut parts = Vec::new();
    if !state.search.is_empty() {
        parts.push(format!(
            "/{} · {shown} of {total}",
            text::clean(&state.search)
        ));
    }
    if let Some(s) = state.sort {
        if let Some(c) = list.columns().get(s.column) {
            parts.push(format!("sort {}{}", c.name, mark(app, list, s.column)));
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(Line::from(Span::styled(
        format!(" {} ", parts.join(" · ")),
        theme::warn(),
    )))
}

/// The `/` line under the view while a list's search is typed.
pub(crate) fn draw_search(frame: &mut Frame, area: Rect, app: &App, list: List) {
    let Some(input) = &app.input else {
        return;
    };
    let spans = vec![
        Span::styled(format!("search {} / ", list.name()), theme::bold()),
        Span::raw(text::fit(
            &input.text,
            (area.width as usize).saturating_sub(40),
        )),
        Span::styled("█", theme::dim()),
        Span::styled("  Enter keeps · Esc clears", theme::dim()),
    ];
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// Records rows `offset..offset + n` drawn one per line from `first_y` in `area`'s columns
/// (stopping at its bottom) as clickable.
pub(crate) fn rows(hits: &mut Hits, area: Rect, first_y: u16, offset: usize, n: usize) {
    for j in 0..n {
        let y = first_y.saturating_add(j as u16);
        if y >= area.y + area.height {
            break;
        }
        hits.add(
            Rect {
                x: area.x,
                y,
                width: area.width,
                height: 1,
            },
            Target::Row(offset + j),
        );
    }
}

/// [`rows`] for a bordered table with a one-line header drawn in `area`, scrolled to
/// `offset`, of `len` rows.
pub(crate) fn table_rows(hits: &mut Hits, area: Rect, offset: usize, len: usize) {
    let inner = area.inner(ratatui::layout::Margin::new(1, 1));
    rows(
        hits,
        inner,
        inner.y.saturating_add(1),
        offset,
        len.saturating_sub(offset),
    );
}
