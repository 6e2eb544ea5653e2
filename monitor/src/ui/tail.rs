//! The Tail view: events as the collectors accept them, newest first, merged across the
//! `--collector` addresses, with the rate line (events/s, all and matching the filter), each
//! source's state, the filter, and the `/` input that edits it.
//!
//! Invariant: a pure function of the state; every cell is cut to its column by display
//! width ([`crate::text`]), so CJK and emoji names line up and a cut is marked `…`; a
//! collector that cannot be read, events lost to a ring's bound and a pause are said in
//! words, not only in colour.

use ratatui::{
    layout::{Constraint, Layout, Rect},
    text::{Line, Span},
    widgets::{Cell, Paragraph, Row, Table},
    Frame,
};

use crate::{
    analysis::Analysis,
    app::App,
    model::{Tail, TailEvent},
    text,
};

use super::{fmt, section_block, theme};

impl super::View for Tail {
    fn draw(frame: &mut Frame, area: Rect, app: &App, _hits: &mut crate::app::Hits) {
        draw(frame, area, app);
    }
}

fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let Some(tail) = app.tail() else {
        frame.render_widget(
            Paragraph::new(
                "no --collector given: the live tail reads the collectors' admin listeners \
                 (start the monitor with --collector ADDRESS)",
            )
            .style(theme::dim())
            .wrap(ratatui::widgets::Wrap { trim: true })
            .block(section_block(app, Analysis::Tail, "Live tail".into())),
            area,
        );
        return;
    };
    // The analyses' filter prompt (`f`) is drawn by the frame, not here.
    let tail_input = app.input.as_ref().filter(|i| !i.filter);
    let input_height = u16::from(tail_input.is_some());
    let [info, table, input] = Layout::vertical([
        Constraint::Length(5),
        Constraint::Min(3),
        Constraint::Length(input_height),
    ])
    .areas(area);
    draw_info(frame, info, app, tail);
    draw_events(frame, table, app, tail);
    if let Some(i) = tail_input {
        let mut spans = vec![
            Span::styled("filter / ", theme::bold()),
            Span::raw(text::clean(&i.text).into_owned()),
            Span::styled("█", theme::dim()),
        ];
        match &i.error {
            Some(e) => spans.push(Span::styled(format!("  {e}"), theme::error())),
            None => spans.push(Span::styled(
                "  Enter applies · Esc cancels · name=X user=N key=value",
                theme::dim(),
            )),
        }
        frame.render_widget(Paragraph::new(Line::from(spans)), input);
    }
}

fn draw_info(frame: &mut Frame, area: Rect, app: &App, tail: &Tail) {
    let shown = tail
        .events
        .iter()
        .filter(|e| app.tail_filter.matches(e))
        .count();
    let mut rate = vec![Span::styled("Rate ", theme::dim())];
    match tail.rate(app.now) {
        Some(r) => {
            rate.push(Span::styled(
                format!("{} events/s", fmt_rate(r)),
                theme::bold(),
            ));
            rate.push(Span::styled(" (all, last 10 s)", theme::dim()));
            if !app.tail_filter.is_empty() {
                let m = tail.matching_rate(&app.tail_filter, app.now).unwrap_or(0.0);
                rate.push(Span::raw(" · "));
                rate.push(Span::styled(format!("{}/s", fmt_rate(m)), theme::bold()));
                rate.push(Span::styled(" matching", theme::dim()));
            }
        }
        None => rate.push(Span::styled("measuring…", theme::dim())),
    }
    rate.push(Span::raw(" · "));
    rate.push(Span::raw(format!(
        "{} held",
        fmt::int(tail.events.len() as i64)
    )));
    let missed = tail.missed();
    if missed > 0 {
        rate.push(Span::raw(" · "));
        rate.push(Span::styled(
            format!("{} missed", fmt::int(missed as i64)),
            theme::warn(),
        ));
    }
    if app.paused {
        rate.push(Span::raw(" · "));
        rate.push(Span::styled("PAUSED (p resumes)", theme::warn()));
    }
    let mut sources = vec![Span::styled("From ", theme::dim())];
    for (i, s) in tail.sources.iter().enumerate() {
        if i > 0 {
            sources.push(Span::styled(" · ", theme::dim()));
        }
        let name = s.collector_id.clone().unwrap_or_else(|| s.address.clone());
        match &s.error {
            Some(e) => {
                sources.push(Span::styled(text::fit(&name, 24), theme::error()));
                sources.push(Span::styled(
                    format!(" ✗ {}", text::fit(e, 60)),
                    theme::error(),
                ));
            }
            None if s.epoch.is_none() => {
                sources.push(Span::raw(text::fit(&name, 24)));
                sources.push(Span::styled(" not read yet", theme::dim()));
            }
            None => {
                sources.push(Span::styled(text::fit(&name, 24), theme::bold()));
                sources.push(Span::styled(" ✓", theme::good()));
            }
        }
    }
    let filter = if app.tail_filter.is_empty() {
        Line::from(vec![
            Span::styled("Filter ", theme::dim()),
            Span::styled("none · / to filter: name=X user=N key=value", theme::dim()),
        ])
    } else {
        Line::from(vec![
            Span::styled("Filter ", theme::dim()),
            Span::styled(
                text::clean(app.tail_filter.text()).into_owned(),
                theme::bold(),
            ),
            Span::styled(
                format!(
                    " · {} of {} held match",
                    fmt::int(shown as i64),
                    fmt::int(tail.events.len() as i64)
                ),
                theme::dim(),
            ),
        ])
    };
    frame.render_widget(
        Paragraph::new(vec![Line::from(rate), Line::from(sources), filter]).block(section_block(
            app,
            Analysis::Tail,
            "Live tail · from the collectors, works while the database is down".into(),
        )),
        area,
    );
}

fn fmt_rate(r: f64) -> String {
    if r < 100.0 {
        format!("{r:.1}")
    } else {
        fmt::int(r.round() as i64)
    }
}

/// `12:00:03.120` (UTC).
fn hms_millis(t: time::OffsetDateTime) -> String {
    format!("{}.{:03}", fmt::hms(t), t.millisecond())
}

/// What the last column shows: the properties, else the page.
fn details(e: &TailEvent) -> String {
    let props = e
        .properties
        .as_ref()
        .filter(|p| p.as_object().is_some_and(|o| !o.is_empty()))
        .map(|p| p.to_string());
    let mut s = match (props, &e.page_url) {
        (Some(p), Some(u)) => format!("{p} {u}"),
        (Some(p), None) => p,
        (None, Some(u)) => u.clone(),
        (None, None) => String::new(),
    };
    if e.truncated {
        s.push_str(" (cut by the collector)");
    }
    s
}

fn draw_events(frame: &mut Frame, area: Rect, app: &App, tail: &Tail) {
    let wide = area.width >= 120;
    let (collector_w, name_w) = if wide { (16, 30) } else { (11, 20) };
    let (user_w, cc_w) = (8, 2);
    let session_w = if wide { 14 } else { 0 };
    let mut fixed = 12 + collector_w + name_w + user_w + cc_w;
    let mut columns = 6;
    if wide {
        fixed += session_w;
        columns += 1;
    }
    let details_w = (area.width as usize)
        .saturating_sub(2 + fixed + (columns - 1))
        .max(4);
    let height = area.height.saturating_sub(3) as usize;
    let events: Vec<&TailEvent> = tail
        .events
        .iter()
        .filter(|e| app.tail_filter.matches(e))
        .take(height)
        .collect();
    let block = section_block(app, Analysis::Tail, "Events, newest first".into()).title_bottom(
        Line::from(Span::styled(" / filter · p pause ", theme::dim())),
    );
    if events.is_empty() {
        let why = if tail.events.is_empty() {
            "no event yet: waiting for the collectors to accept some"
        } else {
            "no held event matches the filter"
        };
        frame.render_widget(Paragraph::new(why).style(theme::dim()).block(block), area);
        return;
    }
    let rows = events.iter().map(|e| {
        let mut cells = vec![
            Cell::from(hms_millis(e.received_at)).style(theme::dim()),
            Cell::from(text::fit(&e.collector_id, collector_w)),
            Cell::from(text::fit(&e.event_name, name_w)).style(theme::bold()),
            Cell::from(text::right(
                &e.user_id
                    .clone()
                    .or_else(|| e.anonymous_id.clone())
                    .unwrap_or_default(),
                user_w,
            )),
            Cell::from(text::fit(e.country_code.as_deref().unwrap_or(""), cc_w)),
        ];
        if wide {
            cells.push(Cell::from(text::fit(
                e.session_id.as_deref().unwrap_or(""),
                session_w,
            )));
        }
        cells.push(Cell::from(text::fit(&details(e), details_w)).style(theme::dim()));
        Row::new(cells)
    });
    let mut widths = vec![
        Constraint::Length(12),
        Constraint::Length(collector_w as u16),
        Constraint::Length(name_w as u16),
        Constraint::Length(user_w as u16),
        Constraint::Length(cc_w as u16),
    ];
    let mut header = vec![
        "Received".to_string(),
        "Collector".into(),
        "Event".into(),
        text::right("User", user_w),
        "CC".into(),
    ];
    if wide {
        widths.push(Constraint::Length(session_w as u16));
        header.push("Session".into());
    }
    widths.push(Constraint::Length(details_w as u16));
    header.push("Properties / page".into());
    frame.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(theme::header()))
            .block(block),
        area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_prefer_properties() {
        let mut e = TailEvent {
            page_url: Some("/p".into()),
            ..TailEvent::default()
        };
        assert_eq!(details(&e), "/p");
        e.properties = Some(serde_json::json!({"plan": "pro"}));
        e.truncated = true;
        assert_eq!(details(&e), "{\"plan\":\"pro\"} /p (cut by the collector)");
    }
}
