//! The Overview view: events per minute for the last hour, events/s now, active users,
//! ingest lag, error counts, top events and a summary of the collectors.
//!
//! Invariant: a pure function of the state; numbers come from `Live` and the merged
//! collector rows only, and a section without data shows why instead of zeros; top events
//! keep the query's order unless `/` searches or `s` sorts them.

use ratatui::{
    layout::{Constraint, Layout, Rect},
    text::{Line, Span},
    widgets::{Paragraph, Sparkline},
    Frame,
};

use crate::{
    analysis::Analysis,
    app::{App, Hits, List},
    text,
};

use super::{draw_missing, fmt, list, section_block, stretch, theme};

impl super::View for crate::model::Live {
    fn draw(frame: &mut Frame, area: Rect, app: &App, _hits: &mut Hits) {
        draw(frame, area, app);
    }
}

fn draw(frame: &mut Frame, area: Rect, app: &App) {
    // The fleet summary below needs 8 rows; the chart takes what is left, up to 20.
    let chart_height = area.height.saturating_sub(4 + 8).clamp(5, 20);
    let [kpi, chart, bottom] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Length(chart_height),
        Constraint::Min(0),
    ])
    .areas(area);
    draw_kpis(frame, kpi, app);
    draw_chart(frame, chart, app);
    let [top, fleet] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(bottom);
    draw_top_events(frame, top, app);
    draw_fleet(frame, fleet, app);
}

fn kv<'a>(label: &'a str, value: String) -> [Span<'a>; 2] {
    [
        Span::styled(label, theme::dim()),
        Span::styled(value, theme::bold()),
    ]
}

fn draw_kpis(frame: &mut Frame, area: Rect, app: &App) {
    let Some(live) = &app.data.live else {
        draw_missing(frame, area, app, Analysis::Live, "Now");
        return;
    };
    let lines = app.collector_lines();
    let rejected: i64 = lines
        .iter()
        .filter_map(|l| l.health.as_ref())
        .map(|h| h.rejected_total)
        .sum();
    let quarantined: i64 = lines
        .iter()
        .filter_map(|l| l.health.as_ref())
        .map(|h| h.quarantined_total)
        .sum();
    let mut first: Vec<Span> = Vec::new();
    first.extend(kv("Events/s ", fmt_events_per_s(live.events_per_second)));
    first.push(Span::raw("   "));
    first.extend(kv("Active users  5m ", fmt::int(live.active_users_5m)));
    first.extend(kv("  1h ", fmt::int(live.active_users_1h)));
    first.extend(kv("  24h ", fmt::int(live.active_users_24h)));
    let lag = |v: Option<f64>| v.map_or("—".to_string(), fmt::secs);
    let mut second: Vec<Span> = Vec::new();
    second.extend(kv("Ingest lag  p50 ", lag(live.lag_p50_seconds)));
    second.extend(kv("  p99 ", lag(live.lag_p99_seconds)));
    second.push(Span::raw("   "));
    second.push(Span::styled("Errors  rejected ", theme::dim()));
    second.push(Span::styled(
        fmt::int(rejected),
        if rejected > 0 {
            theme::warn()
        } else {
            theme::bold()
        },
    ));
    second.push(Span::styled("  quarantined ", theme::dim()));
    second.push(Span::styled(
        fmt::int(quarantined),
        if quarantined > 0 {
            theme::warn()
        } else {
            theme::bold()
        },
    ));
    let failed = app.section_errors.len();
    if failed > 0 {
        second.push(Span::styled("  queries failed ", theme::dim()));
        second.push(Span::styled(failed.to_string(), theme::error()));
    }
    frame.render_widget(
        Paragraph::new(vec![Line::from(first), Line::from(second)]).block(section_block(
            app,
            Analysis::Live,
            "Now".into(),
        )),
        area,
    );
}

fn fmt_events_per_s(v: f64) -> String {
    if v.is_finite() && v < 100.0 {
        format!("{v:.1}")
    } else {
        fmt::int(v.round() as i64)
    }
}

fn draw_chart(frame: &mut Frame, area: Rect, app: &App) {
    let title = "Events per minute, last 60 min";
    let Some(live) = &app.data.live else {
        draw_missing(frame, area, app, Analysis::Live, title);
        return;
    };
    let counts: Vec<u64> = live
        .per_minute
        .iter()
        .map(|m| m.events.max(0) as u64)
        .collect();
    let max = counts.iter().copied().max().unwrap_or(0);
    let last = counts.last().copied().unwrap_or(0);
    let block = section_block(app, Analysis::Live, title.into()).title(
        Line::from(Span::styled(
            format!(
                " max {}/min · last {}/min ",
                fmt::int(max as i64),
                fmt::int(last as i64)
            ),
            theme::dim(),
        ))
        .right_aligned(),
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height < 2 || inner.width < 10 {
        return;
    }
    if counts.is_empty() {
        frame.render_widget(Paragraph::new("no events").style(theme::dim()), inner);
        return;
    }
    let [spark, axis] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
    let values: Vec<f64> = counts.iter().map(|c| *c as f64).collect();
    let bars: Vec<u64> = stretch(&values, spark.width as usize)
        .into_iter()
        .map(|v| v.max(0.0) as u64)
        .collect();
    frame.render_widget(Sparkline::default().data(&bars).max(max.max(1)), spark);
    let left = format!("-{}m", counts.len());
    let right = "now";
    let pad = (axis.width as usize).saturating_sub(left.len() + right.len());
    frame.render_widget(
        Paragraph::new(format!("{left}{}{right}", " ".repeat(pad))).style(theme::dim()),
        axis,
    );
}

fn draw_top_events(frame: &mut Frame, area: Rect, app: &App) {
    let title = "Top events, last hour";
    let Some(live) = &app.data.live else {
        draw_missing(frame, area, app, Analysis::Live, title);
        return;
    };
    let order = app.arranged(List::TopEvents);
    let mut block = section_block(app, Analysis::Live, title.into());
    if let Some(f) = list::footer(app, List::TopEvents, order.len(), live.top_events.len()) {
        block = block.title_bottom(f);
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if live.top_events.is_empty() {
        frame.render_widget(Paragraph::new("no events").style(theme::dim()), inner);
        return;
    }
    let max = live
        .top_events
        .iter()
        .map(|e| e.count)
        .max()
        .unwrap_or(1)
        .max(1);
    let width = inner.width as usize;
    let name_w = (width / 2).clamp(8, 24);
    let count_w = 9;
    let bar_w = width.saturating_sub(name_w + count_w + 2);
    let lines: Vec<Line> = order
        .iter()
        .filter_map(|&i| live.top_events.get(i))
        .take(inner.height as usize)
        .map(|e| {
            Line::from(vec![
                Span::raw(text::left(&e.name, name_w)),
                Span::styled(
                    format!(" {} ", text::right(&fmt::int(e.count), count_w)),
                    theme::bold(),
                ),
                Span::raw(fmt::bar(e.count as f64 / max as f64, bar_w)),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

fn draw_fleet(frame: &mut Frame, area: Rect, app: &App) {
    let title = "Collectors";
    let lines = app.collector_lines();
    if lines.is_empty() {
        draw_missing(frame, area, app, Analysis::Collectors, title);
        return;
    }
    let block = section_block(app, Analysis::Collectors, title.into());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let healths: Vec<_> = lines.iter().filter_map(|l| l.health.as_ref()).collect();
    let stale = lines.iter().filter(|l| l.stale()).count();
    let events: i64 = healths.iter().map(|h| h.buffered_events).sum();
    let bytes: i64 = healths.iter().map(|h| h.buffered_bytes).sum();
    let rate: f64 = healths.iter().map(|h| h.forward_rate).sum();
    let fullest = lines
        .iter()
        .filter_map(|l| l.fill.map(|f| (f, l.id.as_str())))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let slowest = lines
        .iter()
        .filter(|l| l.health.as_ref().is_some_and(|h| h.buffered_events > 0))
        .map(|l| l.drain_seconds.unwrap_or(f64::INFINITY))
        .max_by(f64::total_cmp);
    let oldest = healths
        .iter()
        .map(|h| h.oldest_buffered_age_seconds)
        .max_by(f64::total_cmp)
        .unwrap_or(0.0);
    let label = |s: &'static str| Span::styled(text::left(s, 12), theme::dim());
    let mut out = vec![Line::from(vec![
        label("Collectors"),
        Span::styled(lines.len().to_string(), theme::bold()),
        if stale > 0 {
            Span::styled(format!("  {stale} stale"), theme::error())
        } else {
            Span::styled("  all fresh", theme::good())
        },
    ])];
    out.push(Line::from(vec![
        label("Buffered"),
        Span::styled(fmt::int(events), theme::bold()),
        Span::raw(format!(" events · {}", fmt::bytes(bytes))),
    ]));
    if let Some((f, id)) = fullest {
        out.push(Line::from(vec![
            label("Fullest"),
            Span::styled(fmt::pct(f), fill_style(f)),
            Span::raw(format!(" {id}")),
        ]));
    }
    out.push(Line::from(vec![
        label("Oldest"),
        Span::styled(fmt::secs(oldest), theme::bold()),
        Span::raw(" buffered"),
    ]));
    out.push(Line::from(vec![
        label("Forwarding"),
        Span::styled(fmt::rate(rate), theme::bold()),
    ]));
    out.push(Line::from(vec![
        label("Drain"),
        match slowest {
            None => Span::styled("empty", theme::good()),
            Some(s) if s.is_finite() => Span::styled(fmt::secs(s), theme::bold()),
            Some(_) => Span::styled("stalled (not forwarding)", theme::error()),
        },
    ]));
    frame.render_widget(Paragraph::new(out), inner);
}

/// Style of a buffer fill fraction: warning from 70 %, error from 90 %.
pub(crate) fn fill_style(f: f64) -> ratatui::style::Style {
    if f >= 0.9 {
        theme::error()
    } else if f >= 0.7 {
        theme::warn()
    } else {
        theme::bold()
    }
}
