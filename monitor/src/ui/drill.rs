//! The funnel drill-down, drawn over the Funnel view: the sessions that reached a step and
//! not the next (session, person, last event, its time; newest first), and the person
//! opened from one of them (ids, traits, first and last seen, recent events).
//!
//! Invariant: a pure function of the state; every id, name and URL is cut to its column by
//! display width ([`crate::text`]); loading and errors are said in words, never as an
//! empty table.

use ratatui::{
    layout::{Constraint, Layout, Rect},
    text::{Line, Span},
    widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState, Wrap},
    Frame,
};
use time::OffsetDateTime;

use crate::{
    app::{App, Drill, Hits, List, Loadable, PersonPane},
    model::{DropOff, Person},
    text,
};

use super::{fmt, list, theme};

/// `2025-03-01 11:59:30`.
fn when(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        fmt::hms(t)
    )
}

fn block(title: String, hint: &'static str) -> Block<'static> {
    Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(format!(" {title} "), theme::title()))
        .title_bottom(Line::from(Span::styled(hint, theme::dim())))
}

/// Says what is there instead of a table: loading, or the error.
fn waiting<T>(frame: &mut Frame, area: Rect, block: Block<'_>, data: &Loadable<T>) -> bool {
    let (style, msg) = match data {
        Loadable::Ready(_) => return false,
        Loadable::Loading => (theme::dim(), "loading…".to_string()),
        Loadable::Failed(e) => (theme::error(), format!("query failed: {e} · r retries")),
    };
    frame.render_widget(
        Paragraph::new(msg)
            .style(style)
            .wrap(Wrap { trim: true })
            .block(block),
        area,
    );
    true
}

pub(crate) fn draw(frame: &mut Frame, area: Rect, app: &App, hits: &mut Hits) {
    let Some(d) = &app.drill else {
        return;
    };
    match &d.person {
        Some(p) => draw_person(frame, area, p),
        None => draw_list(frame, area, app, d, hits),
    }
}

/// "Reached add_to_cart, not checkout_start · 1h".
fn list_title(d: &Drill) -> String {
    let step = d.steps.get(d.step).map_or("", String::as_str);
    let what = match d.steps.get(d.step + 1) {
        Some(next) => format!("Step {} {step}, not {next}", d.step + 1),
        None => format!("Step {} {step}: completed the funnel", d.step + 1),
    };
    format!("Drop-off · {what} · {}", d.range.label())
}

fn draw_list(frame: &mut Frame, area: Rect, app: &App, d: &Drill, hits: &mut Hits) {
    let hint = " ↑↓ select · Enter person · / search · s sort · e export · Esc back ";
    let order = app.arranged(List::DropOff);
    let note = d
        .list
        .ready()
        .map(|l| count_note(l, order.len()))
        .unwrap_or_default();
    let room = (area.width as usize).saturating_sub(6 + text::width(&note));
    let b = block(text::fit(&list_title(d), room), hint);
    if waiting(frame, area, b.clone(), &d.list) {
        return;
    }
    let Some(list) = d.list.ready() else {
        return;
    };
    let mut b = b.title(Line::from(Span::styled(note, theme::dim())).right_aligned());
    if let Some(f) = list::footer(app, List::DropOff, order.len(), list.sessions.len()) {
        b = b.title_bottom(f.right_aligned());
    }
    if list.sessions.is_empty() {
        frame.render_widget(
            Paragraph::new("no session stopped at this step in the range")
                .style(theme::dim())
                .block(b),
            area,
        );
        return;
    }
    let inner_w = area.width.saturating_sub(2) as usize;
    let time_w = 19;
    let rest = inner_w.saturating_sub(time_w + 3);
    let (session_w, person_w) = (rest * 3 / 10, rest * 3 / 10);
    let event_w = rest.saturating_sub(session_w + person_w);
    let rows = order.iter().filter_map(|&i| list.sessions.get(i)).map(|s| {
        Row::new(vec![
            Cell::from(text::fit(&s.session_id, session_w)),
            match &s.person {
                Some(p) => Cell::from(text::fit(p, person_w)).style(theme::bold()),
                None => Cell::from("(no id)").style(theme::dim()),
            },
            Cell::from(text::fit(&s.last_event, event_w)),
            Cell::from(when(s.last_time)).style(theme::dim()),
        ])
    });
    let header = Row::new(vec![
        Cell::from(list::header(
            app,
            List::DropOff,
            0,
            "Session",
            session_w,
            false,
        )),
        Cell::from(list::header(
            app,
            List::DropOff,
            1,
            "Person",
            person_w,
            false,
        )),
        Cell::from(list::header(
            app,
            List::DropOff,
            2,
            "Last event",
            event_w,
            false,
        )),
        Cell::from(list::header(
            app,
            List::DropOff,
            3,
            "Time (UTC)",
            time_w,
            false,
        )),
    ])
    .style(theme::header());
    let widths = [
        Constraint::Length(session_w as u16),
        Constraint::Length(person_w as u16),
        Constraint::Length(event_w as u16),
        Constraint::Length(time_w as u16),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .row_highlight_style(theme::selected())
        .block(b);
    let selected = d.selected.min(order.len().saturating_sub(1));
    let mut state = TableState::default().with_selected((!order.is_empty()).then_some(selected));
    frame.render_stateful_widget(table, area, &mut state);
    list::table_rows(hits, area, state.offset(), order.len());
}

/// " 100 of 2,302 sessions " (or " 12 sessions ").
fn count_note(list: &DropOff, shown: usize) -> String {
    let listed = list.sessions.len() as i64;
    if list.total > listed {
        format!(
            " newest {} of {} sessions ",
            fmt::int(listed),
            fmt::int(list.total)
        )
    } else if (shown as i64) < listed {
        format!(" {} sessions ", fmt::int(listed))
    } else {
        format!(" {} sessions ", fmt::int(list.total))
    }
}

fn draw_person(frame: &mut Frame, area: Rect, p: &PersonPane) {
    let title = text::fit(
        &format!("Person {}", p.id),
        (area.width as usize).saturating_sub(6),
    );
    let b = block(title, " e export · Esc back to the sessions ");
    if waiting(frame, area, b.clone(), &p.data) {
        return;
    }
    let Some(data) = p.data.ready() else {
        return;
    };
    let Some(person) = data else {
        frame.render_widget(
            Paragraph::new(format!(
                "no event was ever sent with the id {}",
                text::clean(&p.id)
            ))
            .style(theme::dim())
            .block(b),
            area,
        );
        return;
    };
    let trait_lines = person.traits.len().min(4) + usize::from(person.traits.len() > 4);
    let info_h = (5 + trait_lines.max(1)) as u16;
    let [info, events] =
        Layout::vertical([Constraint::Length(info_h), Constraint::Min(3)]).areas(area);
    draw_identity(frame, info, b, person);
    draw_recent(frame, events, person);
}

fn draw_identity(frame: &mut Frame, area: Rect, b: Block<'_>, p: &Person) {
    let w = area.width.saturating_sub(2) as usize;
    let label = |s: &str| Span::styled(text::left(s, 14), theme::dim());
    let value = |s: &str, room: usize| Span::styled(text::fit(s, room), theme::bold());
    let room = w.saturating_sub(14);
    let anon = if p.anonymous_ids.is_empty() {
        "—".to_string()
    } else {
        p.anonymous_ids.join(", ")
    };
    let seen =
        |t: Option<OffsetDateTime>| t.map_or("—".to_string(), |t| format!("{} UTC", when(t)));
    let mut lines = vec![
        Line::from(vec![label("Person"), value(&p.person, room)]),
        Line::from(vec![label("Anonymous ids"), value(&anon, room)]),
        Line::from(vec![
            label("First seen"),
            value(&seen(p.first_seen), 26),
            Span::styled("  last seen ", theme::dim()),
            value(&seen(p.last_seen), 26),
        ]),
    ];
    if p.traits.is_empty() {
        lines.push(Line::from(vec![
            label("Traits"),
            Span::styled("none", theme::dim()),
        ]));
    }
    for (i, (k, v)) in p.traits.iter().take(4).enumerate() {
        let v = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let key_w = 16.min(room / 3);
        lines.push(Line::from(vec![
            label(if i == 0 { "Traits" } else { "" }),
            Span::raw(text::left(k, key_w)),
            Span::raw(" "),
            value(&v, room.saturating_sub(key_w + 1)),
        ]));
    }
    if p.traits.len() > 4 {
        lines.push(Line::from(vec![
            label(""),
            Span::styled(
                format!("… {} more (e exports them all)", p.traits.len() - 4),
                theme::dim(),
            ),
        ]));
    }
    frame.render_widget(Paragraph::new(lines).block(b), area);
}

fn draw_recent(frame: &mut Frame, area: Rect, p: &Person) {
    let b = Block::default().borders(Borders::ALL).title(Span::styled(
        format!(" Recent events ({}) ", p.recent.len()),
        theme::title(),
    ));
    if p.recent.is_empty() {
        frame.render_widget(
            Paragraph::new("none in the raw events (older ones expired)")
                .style(theme::dim())
                .block(b),
            area,
        );
        return;
    }
    let inner_w = area.width.saturating_sub(2) as usize;
    let wide = inner_w >= 120;
    let time_w = 19;
    let rest = inner_w.saturating_sub(time_w + if wide { 4 } else { 3 });
    let (event_w, actor_w) = (rest * 3 / 10, rest / 4);
    let session_w = if wide { rest / 5 } else { 0 };
    let page_w = rest.saturating_sub(event_w + actor_w + session_w);
    let rows = p.recent.iter().map(|e| {
        let mut cells = vec![
            Cell::from(when(e.time)).style(theme::dim()),
            Cell::from(text::fit(&e.event_name, event_w)).style(theme::bold()),
            Cell::from(text::fit(&e.actor, actor_w)),
        ];
        if wide {
            cells.push(Cell::from(text::fit(
                e.session_id.as_deref().unwrap_or("—"),
                session_w,
            )));
        }
        cells.push(Cell::from(text::fit(
            e.page_url.as_deref().unwrap_or(""),
            page_w,
        )));
        Row::new(cells)
    });
    let mut header = vec!["Time (UTC)", "Event", "Sent as"];
    let mut widths = vec![
        Constraint::Length(time_w as u16),
        Constraint::Length(event_w as u16),
        Constraint::Length(actor_w as u16),
    ];
    if wide {
        header.push("Session");
        widths.push(Constraint::Length(session_w as u16));
    }
    header.push("Page");
    widths.push(Constraint::Length(page_w as u16));
    frame.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(theme::header()))
            .block(b),
        area,
    );
}
