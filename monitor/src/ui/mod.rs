//! Drawing the dashboard: the tab bar, the status line, the database banner, the current
//! view (or the funnel drill-down over it), the search line and the help overlay; and,
//! while the analyses are filtered, the filter's chips under the status line ([`filter`]).
//!
//! Invariant: drawing is a pure function of [`App`]: it changes nothing, reads no clock
//! (the time shown is `app.now`) and does no I/O, so one state always draws the same screen
//! — which the snapshot tests pin at 80×24 and 160×48 — and any size, however small, draws
//! without panicking. What it returns besides the screen is where it drew the clickable
//! tabs and rows ([`Hits`]), for the runtime to resolve mouse clicks.

mod breakdown;
mod collectors;
mod database;
mod drill;
mod filter;
pub mod fmt;
mod funnel;
mod list;
mod overview;
mod pages;
mod paths;
mod retention;
mod tail;
pub mod theme;

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_drill;
#[cfg(test)]
mod tests_filter;
#[cfg(test)]
mod tests_habits;
#[cfg(test)]
mod tests_style;
#[cfg(test)]
mod tests_tail;
#[cfg(test)]
mod tests_unicode;

use ratatui::{
    layout::{Alignment, Constraint, Layout, Rect},
    style::Style,
    text::{Line, Span},
    widgets::{Block, Borders, Clear, Paragraph, Tabs, Wrap},
    Frame,
};

use crate::{
    analysis::{with_model, Analysis},
    app::{App, DbStatus, Hits, Target, SLOW_AFTER, STALE_AFTER},
    text,
};

/// A tab's drawing, implemented by each view module for its analysis' model type; a view
/// with clickable rows records them in `hits`.
pub(crate) trait View {
    fn draw(frame: &mut Frame, area: Rect, app: &App, hits: &mut Hits);
}

/// The smallest screen the layout is designed for.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

/// Draws the whole screen (the tests' entry; the runtime keeps the hits).
#[cfg(test)]
pub fn draw(frame: &mut Frame, app: &App) {
    draw_with_hits(frame, app);
}

/// Draws the whole screen; returns where the tabs and rows were drawn.
pub fn draw_with_hits(frame: &mut Frame, app: &App) -> Hits {
    let mut hits = Hits::default();
    let area = frame.area();
    if area.width < 40 || area.height < 10 {
        frame.render_widget(
            Paragraph::new(format!(
                "monitor: terminal too small ({}×{}); it needs {MIN_WIDTH}×{MIN_HEIGHT}. q quits.",
                area.width, area.height
            ))
            .wrap(Wrap { trim: true }),
            area,
        );
        return hits;
    }
    let banner = banner(app);
    let banner_height = banner.as_ref().map_or(0, |(_, text)| {
        if text::width(text) > area.width as usize {
            2
        } else {
            1
        }
    });
    let [tabs_area, status_area, chips_area, banner_area, body] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(filter::chips_height(app)),
        Constraint::Length(banner_height),
        Constraint::Min(0),
    ])
    .areas(area);
    draw_tabs(frame, tabs_area, app, &mut hits);
    draw_status(frame, status_area, app);
    filter::draw_chips(frame, chips_area, app);
    if let Some((style, text)) = banner {
        frame.render_widget(
            Paragraph::new(text).style(style).wrap(Wrap { trim: true }),
            banner_area,
        );
    }
    let searching = app.input.as_ref().and_then(|i| i.search);
    let prompting = filter::prompting(app);
    let [body, search_area] = Layout::vertical([
        Constraint::Min(0),
        Constraint::Length(u16::from(searching.is_some() || prompting)),
    ])
    .areas(body);
    if app.view == Analysis::Funnel && app.drill.is_some() {
        drill::draw(frame, body, app, &mut hits);
    } else {
        with_model!(app.view, M => <M as View>::draw(frame, body, app, &mut hits));
    }
    if let Some(list) = searching {
        list::draw_search(frame, search_area, app, list);
    }
    if prompting {
        filter::draw_prompt(frame, search_area, app);
    }
    if app.help {
        draw_help(frame, area, app);
        hits = Hits::default();
    }
    hits
}

fn draw_tabs(frame: &mut Frame, area: Rect, app: &App, hits: &mut Hits) {
    let wide = area.width >= 100;
    let selected = app.tabs.iter().position(|t| *t == app.view).unwrap_or(0);
    let titles = tab_labels(&app.tabs, selected, wide, area.width as usize);
    // Where each label lands, as ratatui's Tabs lays them out: padding, label, padding,
    // then a one-cell divider.
    let pad = if wide { 2 } else { 0 };
    let mut x = area.x;
    for (tab, label) in app.tabs.iter().zip(&titles) {
        let w = (text::width(label) + pad) as u16;
        let w = w.min((area.x + area.width).saturating_sub(x));
        hits.add(
            Rect {
                x,
                y: area.y,
                width: w,
                height: 1,
            },
            Target::Tab(*tab),
        );
        x = x.saturating_add(w + 1);
    }
    let tabs = Tabs::new(titles)
        .select(selected)
        .style(theme::plain())
        .highlight_style(theme::selected())
        .divider(if wide { "│" } else { " " })
        .padding(if wide { " " } else { "" }, if wide { " " } else { "" });
    frame.render_widget(tabs, area);
}

fn draw_status(frame: &mut Frame, area: Rect, app: &App) {
    let mut spans = vec![
        Span::styled(format!("◂ {} ▸", app.range.label()), theme::bold()),
        Span::raw(" "),
    ];
    if app.paused {
        spans.push(Span::styled(" PAUSED ", theme::selected()));
        spans.push(Span::raw(" "));
    }
    if let Some(n) = app.current_notice() {
        // An export's path or an error: the whole line, so a path is not cut.
        let style = if n.error {
            theme::error()
        } else {
            theme::good()
        };
        let room = (area.width as usize).saturating_sub(spans.iter().map(|s| s.width()).sum());
        spans.push(Span::styled(text::fit(&n.text, room), style));
        frame.render_widget(Paragraph::new(Line::from(spans)), area);
        return;
    }
    let loading_other = app.has_database() && app.data_range != Some(app.range);
    if loading_other && app.fetch_started.is_some() {
        spans.push(Span::styled(
            format!("loading {}…", app.range.label()),
            theme::warn(),
        ));
        if let Some(r) = app.data_range {
            spans.push(Span::styled(
                format!(" (showing {})", r.label()),
                theme::dim(),
            ));
        }
    } else if let Some(at) = app.data_at {
        let mut s = format!("updated {} UTC", fmt::hms(at));
        if let Some(t) = app.last_took {
            s.push_str(&format!(" in {}", fmt::secs(t.as_secs_f64())));
        }
        spans.push(Span::styled(s, theme::dim()));
    } else if app.has_database() {
        spans.push(Span::styled("waiting for the database…", theme::dim()));
    } else {
        spans.push(Span::styled("direct polls only", theme::dim()));
    }
    spans.push(Span::styled(
        format!(" · every {}", fmt::secs(app.refresh.as_secs_f64())),
        theme::dim(),
    ));
    if app.on_standby() {
        spans.push(Span::styled(" · ", theme::dim()));
        spans.push(Span::styled("standby", theme::warn()));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
    let right = "? help  q quit";
    let width = text::width(right) as u16;
    if area.width >= 60 + width {
        let r = Rect {
            x: area.x + area.width - width,
            width,
            ..area
        };
        frame.render_widget(Paragraph::new(right).style(theme::dim()), r);
    }
}

/// `key title` per tab; when they do not fit in `width`, tabs from the last one back (but
/// the selected one) shrink to their key.
fn tab_labels(tabs: &[Analysis], selected: usize, wide: bool, width: usize) -> Vec<String> {
    let mut labels: Vec<String> = tabs
        .iter()
        .map(|t| format!("{} {}", t.key(), t.title()))
        .collect();
    // Wide: " label " and "│" between; narrow: "label" and " " between.
    let pad = if wide { 2 } else { 0 };
    let total = |l: &[String]| {
        l.iter().map(|s| text::width(s) + pad).sum::<usize>() + l.len().saturating_sub(1)
    };
    for i in (0..tabs.len()).rev() {
        if total(&labels) <= width {
            break;
        }
        if i != selected {
            labels[i] = tabs[i].key().to_string();
        }
    }
    labels
}

/// The one-line (wrapped to two) notice under the status line: the database's trouble
/// first, then a standby lagging past `--max-replica-lag`, then a slow refresh, then failed
/// queries.
pub fn banner(app: &App) -> Option<(Style, String)> {
    let data_note = app
        .data_at
        .map(|t| format!(" · showing data from {} UTC", fmt::hms(t)))
        .unwrap_or_default();
    match &app.db {
        DbStatus::NotConfigured => Some((
            theme::warn(),
            "no database configured (--database-url): showing collectors' direct polls only".into(),
        )),
        DbStatus::Failed { error, failures } => {
            let when = match (app.fetch_running_for(), app.retry_in()) {
                (Some(_), _) => "retrying now…".to_string(),
                (None, Some(d)) => format!(
                    "retry in {}s (attempt {}) · r retries now",
                    d.as_secs_f64().ceil() as u64,
                    failures + 1
                ),
                (None, None) => String::new(),
            };
            Some((
                theme::error(),
                format!("database unreachable: {error} · {when}{data_note}"),
            ))
        }
        DbStatus::Connecting | DbStatus::Ok => {
            if let Some(lag) = app.replica_lagging() {
                return Some((theme::warn(), replica_banner(app, lag)));
            }
            let slow = if app.db == DbStatus::Connecting {
                app.fetch_running_for()
                    .filter(|d| *d >= SLOW_AFTER)
                    .map(|d| format!("waiting for the database for {}s", d.as_secs()))
            } else {
                app.running_section()
                    .filter(|(_, d)| *d >= SLOW_AFTER)
                    .map(|(s, d)| {
                        format!(
                            "database slow: the {} query has been running for {}s",
                            s.name(),
                            d.as_secs()
                        )
                    })
            };
            if let Some(text) = slow {
                return Some((theme::warn(), format!("{text}{data_note}")));
            }
            let (section, error) = app.section_errors.iter().next()?;
            Some((
                theme::warn(),
                format!(
                    "{} of {} queries failed · {}: {error}",
                    app.section_errors.len(),
                    app.tabs.iter().filter(|t| t.is_query()).count(),
                    section.name()
                ),
            ))
        }
    }
}

/// "replica lags 2m 10s: numbers are older than shown", with the time of the last
/// replayed transaction when known.
fn replica_banner(app: &App, lag: f64) -> String {
    let replayed = app
        .replica
        .as_ref()
        .and_then(|r| r.last_replay_at.as_deref())
        .and_then(crate::app::parse_time)
        .map(|t| format!(" · standby replayed up to {} UTC", fmt::hms(t)))
        .unwrap_or_default();
    format!(
        "replica lags {}: numbers are older than shown{replayed}",
        fmt::secs(lag)
    )
}

/// The range a section's data on screen is for: the selected one, or the one before it
/// while the new range loads (`1h, loading 30d…`).
pub(crate) fn range_of(app: &App, section: Analysis) -> String {
    match app.section_at.get(&section) {
        Some((_, shown)) if *shown != app.range => {
            format!("{}, loading {}…", shown.label(), app.range.label())
        }
        _ => app.range.label().to_string(),
    }
}

/// A bordered block titled `title`; when the section's last query failed while older data
/// is still shown, the right of the border says so.
pub(crate) fn section_block<'a>(app: &App, section: Analysis, title: String) -> Block<'a> {
    let mut block = Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(format!(" {title} "), theme::title()));
    if app.section_errors.contains_key(&section) {
        block = block.title(
            Line::from(Span::styled(" stale: last query failed ", theme::warn()))
                .alignment(Alignment::Right),
        );
    }
    block
}

/// What to draw instead of a section that has no data: its error, or why it is empty.
pub(crate) fn draw_missing(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    section: Analysis,
    title: &str,
) {
    let (style, text) = if let Some(e) = app.section_errors.get(&section) {
        (theme::error(), format!("query failed: {e}"))
    } else if !app.has_database() {
        (
            theme::dim(),
            "no database configured: start the monitor with --database-url".to_string(),
        )
    } else if matches!(app.db, DbStatus::Failed { .. }) {
        (
            theme::dim(),
            "no data yet: the database is unreachable".to_string(),
        )
    } else {
        (theme::dim(), "loading…".to_string())
    };
    frame.render_widget(
        Paragraph::new(text)
            .style(style)
            .wrap(Wrap { trim: true })
            .block(section_block(app, section, title.to_string())),
        area,
    );
}

/// Maps `values` onto exactly `width` columns: several values per column keep their
/// largest, a value wider than a column is repeated; oldest left, newest right.
pub(crate) fn stretch(values: &[f64], width: usize) -> Vec<f64> {
    let n = values.len();
    if n == 0 || width == 0 {
        return Vec::new();
    }
    (0..width)
        .map(|i| {
            let a = i * n / width;
            let b = ((i + 1) * n / width).max(a + 1).min(n);
            values[a..b].iter().copied().fold(f64::MIN, f64::max)
        })
        .collect()
}

/// Every key, one line each.
pub const HELP: [(&str, &str); 17] = [
    ("Tab / Shift-Tab", "next / previous view"),
    ("1 … 7", "go to a view (numbered on the tab bar)"),
    ("← / →", "time range: 15m 1h 24h 7d 30d"),
    ("↑ ↓  j k", "select a row (PgUp PgDn Home End)"),
    (
        "Enter",
        "Collectors: buffer history · Funnel: who dropped off",
    ),
    ("", "at the step · drill-down: that session's person"),
    ("Esc", "back (clears a search first)"),
    ("/", "search the list · Tail: filter (name=X user=N k=v)"),
    ("s / S", "sort by the next column / reverse the order"),
    ("e", "export the view as CSV (same as monitor query)"),
    ("f / F", "filter the analyses (event=X prop.k=v …) / clear"),
    ("mouse", "click a tab or a row; click it again to open it"),
    ("c", "Retention: rates ↔ user counts"),
    ("r", "refresh now (and retry a failing database now)"),
    ("p", "pause / resume refreshing (and the Tail)"),
    ("?", "this help (any key closes it)"),
    ("q / Ctrl-C", "quit"),
];

fn draw_help(frame: &mut Frame, area: Rect, app: &App) {
    // The tab keys as the registry gives them.
    let tab_keys = match (app.tabs.first(), app.tabs.last()) {
        (Some(a), Some(b)) => format!("{} … {}", a.key(), b.key()),
        _ => HELP[1].0.to_string(),
    };
    let mut lines: Vec<Line> = HELP
        .iter()
        .enumerate()
        .map(|(i, (k, what))| {
            let k = if i == 1 { tab_keys.as_str() } else { k };
            Line::from(vec![
                Span::styled(format!(" {}", text::left(k, 16)), theme::bold()),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::from(Span::styled(
        format!(
            " Stale (highlighted): no heartbeat or poll for {}s, 3 heartbeats.",
            STALE_AFTER.as_secs()
        ),
        theme::dim(),
    )));
    lines.push(Line::from(Span::styled(
        " Times are UTC. Data refreshes in the background; keys never wait.",
        theme::dim(),
    )));
    let width = area.width.saturating_sub(4).min(74);
    let height = (lines.len() as u16 + 2).min(area.height.saturating_sub(2));
    let popup = Rect {
        x: area.x + (area.width.saturating_sub(width)) / 2,
        y: area.y + (area.height.saturating_sub(height)) / 2,
        width,
        height,
    };
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(Span::styled(" Keys ", theme::title()))
                .title(
                    Line::from(Span::styled(" any key closes ", theme::dim()))
                        .alignment(Alignment::Right),
                ),
        ),
        popup,
    );
}
