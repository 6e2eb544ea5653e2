//! The Collectors view: one row per collector (heartbeats and direct polls merged) with
//! region, heartbeat age (stale highlighted), buffered events and bytes, a fill gauge
//! against the limit, oldest buffered age, forward rate, time to drain and last error; and
//! the detail view of one collector with its buffer history.
//!
//! Invariant: a pure function of the state; a collector that is stale, filling up, not
//! draining or failing says so in words as well as in colour; rows are sorted by id unless
//! `/` searches or `s` sorts them ([`crate::app::arrange`]).

use ratatui::{
    layout::{Constraint, Layout, Rect},
    text::{Line, Span},
    widgets::{Cell, Paragraph, Row, Sparkline, Table, TableState, Wrap},
    Frame,
};

use crate::{
    analysis::Analysis,
    app::{App, CollectorLine, Hits, List},
    model::{CollectorHealth, HistoryPoint, Source},
    text,
};

use super::{draw_missing, fmt, list, overview::fill_style, section_block, stretch, theme};

impl super::View for crate::model::Collectors {
    fn draw(frame: &mut Frame, area: Rect, app: &App, hits: &mut Hits) {
        draw(frame, area, app, hits);
    }
}

fn draw(frame: &mut Frame, area: Rect, app: &App, hits: &mut Hits) {
    let all = app.collector_lines();
    if all.is_empty() {
        draw_missing(frame, area, app, Analysis::Collectors, "Collectors");
        return;
    }
    let lines: Vec<CollectorLine> = app
        .arranged(List::Collectors)
        .into_iter()
        .filter_map(|i| all.get(i).cloned())
        .collect();
    let selected = app
        .selection(Analysis::Collectors)
        .min(lines.len().saturating_sub(1));
    if app.detail {
        if let Some(line) = lines.get(selected) {
            draw_detail(frame, area, app, line);
            return;
        }
    }
    let [table_area, info_area] =
        Layout::vertical([Constraint::Min(5), Constraint::Length(6)]).areas(area);
    let offset = draw_table(frame, table_area, app, (&lines, all.len()), selected);
    list::table_rows(hits, table_area, offset, lines.len());
    if let Some(line) = lines.get(selected) {
        draw_info(frame, info_area, app, line);
    }
}

fn age_cell(l: &CollectorLine) -> Cell<'static> {
    match l.age_seconds {
        None => Cell::from("never").style(theme::error()),
        Some(a) if l.stale() => Cell::from(format!("{}!", fmt::age(a))).style(theme::error()),
        Some(a) => Cell::from(fmt::age(a)),
    }
}

fn drain_text(l: &CollectorLine) -> (String, ratatui::style::Style) {
    match (&l.health, l.drain_seconds) {
        (None, _) => ("—".into(), theme::dim()),
        (Some(h), _) if h.buffered_events <= 0 => ("empty".into(), theme::good()),
        (Some(_), Some(s)) => (fmt::secs(s), theme::plain()),
        (Some(_), None) => ("stalled".into(), theme::error()),
    }
}

fn fill_cell(l: &CollectorLine, gauge_width: usize) -> Cell<'static> {
    match l.fill {
        Some(f) => Cell::from(format!(
            "{} {:>3.0}%",
            fmt::gauge(f, gauge_width),
            f * 100.0
        ))
        .style(fill_style(f)),
        None => Cell::from("—").style(theme::dim()),
    }
}

/// The fleet table; returns the first row shown (its scroll offset).
fn draw_table(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    (lines, all): (&[CollectorLine], usize),
    selected: usize,
) -> usize {
    let wide = area.width >= 140;
    let stale = lines.iter().filter(|l| l.stale()).count();
    let mut title = format!("Collectors ({all})");
    if stale > 0 {
        title.push_str(&format!(" · {stale} stale"));
    }
    let block = section_block(app, Analysis::Collectors, title);
    let gauge_width = if wide { 10 } else { 5 };
    let mut header = vec!["Collector", "Region"];
    if wide {
        header.push("Src");
    }
    header.extend(["Age", "Buffered"]);
    if wide {
        header.push("Bytes");
    }
    header.extend(["Fill", "Oldest", "Rate", "Drain"]);
    if wide {
        header.extend(["Database", "Last error"]);
    }
    let columns = List::Collectors.columns();
    let header: Vec<String> = header
        .into_iter()
        .map(|h| match columns.iter().position(|c| c.name == h) {
            Some(i) => format!("{h}{}", list::mark(app, List::Collectors, i)),
            None => h.to_string(),
        })
        .collect();
    let (id_w, region_w) = if wide { (18, 10) } else { (14, 9) };
    let rows = lines
        .iter()
        .map(|l| fleet_row(l, wide, (id_w, region_w), gauge_width));
    let widths = fleet_widths(wide, (id_w, region_w), gauge_width);
    let block = match list::footer(app, List::Collectors, lines.len(), all) {
        Some(f) => block.title_bottom(f),
        None => block.title_bottom(Line::from(Span::styled(
            " ↑↓ select · Enter buffer history ",
            theme::dim(),
        ))),
    };
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme::header()))
        .row_highlight_style(theme::selected())
        .block(block);
    let mut state = TableState::default().with_selected((!lines.is_empty()).then_some(selected));
    frame.render_stateful_widget(table, area, &mut state);
    state.offset()
}

/// One collector's row of the fleet table.
fn fleet_row(
    l: &CollectorLine,
    wide: bool,
    (id_w, region_w): (usize, usize),
    gauge_width: usize,
) -> Row<'static> {
    let h = l.health.as_ref();
    let id_style = if l.stale() {
        theme::error()
    } else {
        theme::bold()
    };
    let mut cells = vec![
        Cell::from(text::fit(&l.id, id_w)).style(id_style),
        Cell::from(h.map_or("—".into(), |h| text::fit(&h.region, region_w))),
    ];
    if wide {
        cells.push(Cell::from(match l.source {
            Some(Source::Heartbeat) => "hb",
            Some(Source::Poll) => "poll",
            None => "—",
        }));
    }
    cells.push(age_cell(l));
    cells.push(Cell::from(
        h.map_or("—".into(), |h| fmt::int(h.buffered_events)),
    ));
    if wide {
        cells.push(Cell::from(
            h.map_or("—".into(), |h| fmt::bytes(h.buffered_bytes)),
        ));
    }
    cells.push(fill_cell(l, gauge_width));
    cells.push(Cell::from(
        h.map_or("—".into(), |h| fmt::age(h.oldest_buffered_age_seconds)),
    ));
    cells.push(Cell::from(
        h.map_or("—".into(), |h| fmt::rate(h.forward_rate)),
    ));
    let (drain, drain_style) = drain_text(l);
    cells.push(Cell::from(drain).style(drain_style));
    if wide {
        let (state, style) = match h {
            Some(h) if h.forwarding_paused => ("paused".to_string(), theme::warn()),
            Some(h) if h.database_state == "up" => (h.database_state.clone(), theme::good()),
            Some(h) => (h.database_state.clone(), theme::warn()),
            None => ("—".to_string(), theme::dim()),
        };
        cells.push(Cell::from(state).style(style));
        let err = l
            .poll_error
            .as_ref()
            .map(|e| format!("poll: {e}"))
            .or_else(|| h.and_then(|h| h.last_error.clone()));
        cells.push(match err {
            Some(e) => Cell::from(e).style(theme::error()),
            None => Cell::from("—").style(theme::dim()),
        });
    }
    Row::new(cells)
}

/// The fleet table's column widths (the same columns as [`fleet_row`]).
fn fleet_widths(
    wide: bool,
    (id_w, region_w): (usize, usize),
    gauge_width: usize,
) -> Vec<Constraint> {
    let mut widths = vec![
        Constraint::Length(id_w as u16),
        Constraint::Length(region_w as u16),
    ];
    if wide {
        widths.push(Constraint::Length(4));
    }
    widths.extend([Constraint::Length(6), Constraint::Length(9)]);
    if wide {
        widths.push(Constraint::Length(9));
    }
    widths.extend([
        Constraint::Length(gauge_width as u16 + 5),
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Length(8),
    ]);
    if wide {
        widths.extend([Constraint::Length(11), Constraint::Min(10)]);
    }
    widths
}

fn draw_info(frame: &mut Frame, area: Rect, app: &App, l: &CollectorLine) {
    let via = match (l.source, &l.address) {
        (Some(Source::Poll), Some(a)) => format!("poll of {a}"),
        (Some(Source::Heartbeat), _) => "heartbeat".to_string(),
        (_, Some(a)) => format!("poll of {a}"),
        (_, None) => "—".to_string(),
    };
    let age = l
        .age_seconds
        .map_or(String::new(), |a| format!(", {} ago", fmt::age(a)));
    let block = section_block(app, Analysis::Collectors, l.id.clone()).title(Span::styled(
        format!(" {via}{age} "),
        if l.stale() {
            theme::error()
        } else {
            theme::dim()
        },
    ));
    let mut out: Vec<Line> = Vec::new();
    match &l.health {
        Some(h) => out.extend(health_lines(l, h)),
        None => out.push(Line::from(Span::styled("never answered", theme::error()))),
    }
    let error = l
        .poll_error
        .as_ref()
        .map(|e| format!("poll failed: {e}"))
        .or_else(|| {
            l.health
                .as_ref()
                .and_then(|h| h.last_error.as_ref())
                .map(|e| format!("last error: {e}"))
        });
    out.push(match error {
        Some(e) => Line::from(Span::styled(e, theme::error())),
        None => Line::from(Span::styled("last error: none", theme::dim())),
    });
    frame.render_widget(
        Paragraph::new(out).wrap(Wrap { trim: true }).block(block),
        area,
    );
}

/// The detail's health lines: region, version, state; buffer; totals.
fn health_lines(l: &CollectorLine, h: &CollectorHealth) -> Vec<Line<'static>> {
    let sep = || Span::styled(" · ", theme::dim());
    let mut out = Vec::new();
    let (state, state_style) = if h.forwarding_paused {
        ("forwarding paused".to_string(), theme::warn())
    } else if h.database_state == "up" {
        ("database up".to_string(), theme::good())
    } else {
        (format!("database {}", h.database_state), theme::warn())
    };
    out.push(Line::from(vec![
        Span::styled(h.region.clone(), theme::bold()),
        sep(),
        Span::raw(format!("v{}", h.version)),
        sep(),
        Span::styled(state, state_style),
        sep(),
        Span::raw(format!("forwarding {}", fmt::rate(h.forward_rate))),
    ]));
    let limit = if h.buffer_limit_bytes > 0 {
        fmt::bytes(h.buffer_limit_bytes)
    } else {
        "no limit".into()
    };
    let (drain, drain_style) = drain_text(l);
    out.push(Line::from(vec![
        Span::styled(fmt::int(h.buffered_events), theme::bold()),
        Span::raw(" events"),
        sep(),
        Span::raw(format!("{} of {limit}", fmt::bytes(h.buffered_bytes))),
        sep(),
        Span::raw(format!(
            "oldest {}",
            fmt::secs(h.oldest_buffered_age_seconds)
        )),
        sep(),
        Span::raw("drain "),
        Span::styled(drain, drain_style),
    ]));
    out.push(Line::from(vec![
        Span::styled("accepted ", theme::dim()),
        Span::raw(fmt::int(h.accepted_total)),
        Span::styled(" · forwarded ", theme::dim()),
        Span::raw(fmt::int(h.forwarded_total)),
        Span::styled(" · rejected ", theme::dim()),
        Span::raw(fmt::int(h.rejected_total)),
        Span::styled(" · quarantined ", theme::dim()),
        Span::raw(fmt::int(h.quarantined_total)),
    ]));
    out
}

fn draw_series(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    title: &str,
    points: &[HistoryPoint],
    value: impl Fn(&HistoryPoint) -> f64,
    label: impl Fn(f64) -> String,
) {
    let values: Vec<f64> = points.iter().map(&value).collect();
    let max = values.iter().copied().fold(0.0, f64::max);
    let last = values.last().copied().unwrap_or(0.0);
    let block = section_block(app, Analysis::Collectors, title.to_string()).title(
        Line::from(Span::styled(
            format!(" max {} · now {} ", label(max), label(last)),
            theme::dim(),
        ))
        .right_aligned(),
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height < 2 || inner.width < 10 {
        return;
    }
    if points.is_empty() {
        frame.render_widget(
            Paragraph::new("no history yet (heartbeats in range, or polls)").style(theme::dim()),
            inner,
        );
        return;
    }
    let [spark, axis] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
    let bars = stretch(&values, spark.width as usize);
    // Sparklines draw integers: scale so that the largest value keeps its resolution.
    let scale = if max > 0.0 { 1000.0 / max } else { 1.0 };
    let data: Vec<u64> = bars.iter().map(|v| (v * scale).round() as u64).collect();
    frame.render_widget(Sparkline::default().data(&data).max(1000), spark);
    let from = points.first().map(|p| fmt::hms(p.at)).unwrap_or_default();
    let to = points.last().map(|p| fmt::hms(p.at)).unwrap_or_default();
    let pad = (axis.width as usize).saturating_sub(from.len() + to.len());
    frame.render_widget(
        Paragraph::new(format!("{from}{}{to}", " ".repeat(pad))).style(theme::dim()),
        axis,
    );
}

fn draw_detail(frame: &mut Frame, area: Rect, app: &App, l: &CollectorLine) {
    let points = app.history_for(l);
    let transitions: Vec<Line> = points
        .windows(2)
        .filter(|w| w[0].database_state != w[1].database_state)
        .map(|w| {
            Line::from(vec![
                Span::styled(format!("{} UTC ", fmt::hms(w[1].at)), theme::dim()),
                Span::raw(format!(
                    "database {} → {}",
                    w[0].database_state, w[1].database_state
                )),
            ])
        })
        .collect();
    let states_height = if area.height >= 30 { 6 } else { 3 };
    let [info, buffered, rate, states] = Layout::vertical([
        Constraint::Length(6),
        Constraint::Min(4),
        Constraint::Length(if area.height >= 30 { 10 } else { 5 }),
        Constraint::Length(states_height),
    ])
    .areas(area);
    draw_info(frame, info, app, l);
    draw_series(
        frame,
        buffered,
        app,
        &format!("Buffered events · {} points · Esc back", points.len()),
        &points,
        |p| p.buffered_events as f64,
        |v| fmt::int(v.round() as i64),
    );
    draw_series(
        frame,
        rate,
        app,
        "Forward rate",
        &points,
        |p| p.forward_rate,
        fmt::rate,
    );
    let shown = (states_height as usize).saturating_sub(2);
    let lines: Vec<Line> = if transitions.is_empty() {
        vec![Line::from(Span::styled(
            "no database state change in this history",
            theme::dim(),
        ))]
    } else {
        transitions
            .iter()
            .rev()
            .take(shown)
            .rev()
            .cloned()
            .collect()
    };
    frame.render_widget(
        Paragraph::new(lines).block(section_block(
            app,
            Analysis::Collectors,
            "Database state changes".into(),
        )),
        states,
    );
}
