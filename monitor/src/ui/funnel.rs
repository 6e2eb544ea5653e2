//! The Funnel view: each step as a bar with its sessions, step conversion (from the
//! previous step) and overall conversion (from the first step).
//!
//! Invariant: a pure function of the state; bars are proportional to sessions against the
//! first step, so a step never looks larger than the ones before it unless the data says so.
//! The selected step (↑↓, a click) is the one Enter drills into ([`super::drill`]).

use ratatui::{
    layout::Rect,
    text::{Line, Span},
    widgets::Paragraph,
    Frame,
};

use crate::{
    analysis::Analysis,
    app::{App, Hits},
    model::{Funnel, FunnelStep},
    text,
};

use super::{draw_missing, fmt, list, range_of, section_block, theme};

impl super::View for Funnel {
    fn draw(frame: &mut Frame, area: Rect, app: &App, hits: &mut Hits) {
        draw(frame, area, app, hits);
    }
}

fn draw(frame: &mut Frame, area: Rect, app: &App, hits: &mut Hits) {
    let title = format!(
        "Funnel · {} · {}",
        app.steps.join(" → "),
        range_of(app, Analysis::Funnel)
    );
    let room = if app.section_errors.contains_key(&Analysis::Funnel) {
        area.width.saturating_sub(32)
    } else {
        area.width.saturating_sub(6)
    };
    let title = text::fit(&title, room as usize);
    let Some(funnel) = &app.data.funnel else {
        draw_missing(frame, area, app, Analysis::Funnel, &title);
        return;
    };
    let block = section_block(app, Analysis::Funnel, title).title_bottom(Line::from(Span::styled(
        " ↑↓ select a step · Enter who dropped off there ",
        theme::dim(),
    )));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if funnel.steps.is_empty() {
        frame.render_widget(
            Paragraph::new("no funnel steps (set them with --steps)").style(theme::dim()),
            inner,
        );
        return;
    }
    let cols = Columns::new(funnel, inner.width as usize);
    let mut lines = vec![cols.header()];
    // Two lines per step when there is room: a blank one between bars.
    let spaced = inner.height as usize >= funnel.steps.len() * 2 + 4;
    let mut previous: Option<i64> = None;
    let selected = app.selection(Analysis::Funnel).min(funnel.steps.len() - 1);
    for (i, step) in funnel.steps.iter().enumerate() {
        if spaced {
            lines.push(Line::raw(""));
        }
        let y = inner.y.saturating_add(lines.len() as u16);
        list::rows(hits, inner, y, i, 1);
        lines.push(cols.step(i, step, previous, i == selected));
        previous = Some(step.sessions);
    }
    lines.extend(overall(funnel));
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The widths of the funnel's columns for one drawing.
struct Columns {
    wide: bool,
    name_w: usize,
    num_w: usize,
    pct_w: usize,
    bar_w: usize,
    /// Sessions of the first step (the bars' full length), at least 1.
    first: i64,
}

impl Columns {
    fn new(funnel: &Funnel, width: usize) -> Columns {
        let wide = width >= 120;
        let name_w = funnel
            .steps
            .iter()
            .map(|s| text::width(&s.name))
            .max()
            .unwrap_or(8)
            .clamp(8, if wide { 28 } else { 18 });
        let (num_w, pct_w) = (10, 8);
        let extra = if wide { pct_w + 1 + 11 } else { 0 };
        let bar_w = width.saturating_sub(3 + name_w + 1 + num_w + 2 * (pct_w + 1) + extra + 2);
        let first = funnel.steps.first().map_or(0, |s| s.sessions).max(1);
        Columns {
            wide,
            name_w,
            num_w,
            pct_w,
            bar_w,
            first,
        }
    }

    fn header(&self) -> Line<'static> {
        let Columns {
            name_w,
            num_w,
            pct_w,
            bar_w,
            ..
        } = *self;
        let mut header = vec![
            Span::raw(format!("   {:<name_w$} {:bar_w$} ", "Step", "")),
            Span::raw(format!("{:>num_w$}", "Sessions")),
            Span::raw(format!(" {:>pct_w$}", "Step")),
            Span::raw(format!(" {:>pct_w$}", "Overall")),
        ];
        if self.wide {
            header.push(Span::raw(format!(" {:>pct_w$}", "Drop")));
            header.push(Span::raw(format!(" {:>11}", "Lost")));
        }
        Line::from(header).style(theme::header())
    }

    /// Step `i` (0-based); `previous` is the previous step's sessions; the selected step's
    /// number and name are reversed.
    fn step(
        &self,
        i: usize,
        step: &FunnelStep,
        previous: Option<i64>,
        selected: bool,
    ) -> Line<'static> {
        let Columns {
            name_w,
            num_w,
            pct_w,
            bar_w,
            first,
            ..
        } = *self;
        let step_style = if i > 0 && step.step_conversion < 0.1 {
            theme::warn()
        } else {
            theme::plain()
        };
        let (num_style, name_style) = if selected {
            (theme::selected(), theme::selected())
        } else {
            (theme::dim(), theme::bold())
        };
        let mut spans = vec![
            Span::styled(format!("{:>2} ", i + 1), num_style),
            Span::styled(text::left(&step.name, name_w), name_style),
            Span::raw(" "),
            Span::raw(format!(
                "{:<bar_w$}",
                fmt::bar(step.sessions as f64 / first as f64, bar_w)
            )),
            Span::raw(" "),
            Span::styled(
                format!("{:>num_w$}", fmt::int(step.sessions)),
                theme::bold(),
            ),
            Span::styled(
                format!(" {:>pct_w$}", fmt::pct(step.step_conversion)),
                step_style,
            ),
            Span::raw(format!(" {:>pct_w$}", fmt::pct(step.overall_conversion))),
        ];
        if self.wide {
            let (drop, lost) = match previous {
                Some(p) if p > 0 => (
                    fmt::pct(1.0 - step.sessions as f64 / p as f64),
                    fmt::int(p - step.sessions),
                ),
                _ => ("—".to_string(), "—".to_string()),
            };
            spans.push(Span::styled(format!(" {drop:>pct_w$}"), theme::dim()));
            spans.push(Span::styled(format!(" {lost:>11}"), theme::dim()));
        }
        Line::from(spans)
    }
}

/// The first-to-last summary under the steps (a blank line, then the line).
fn overall(funnel: &Funnel) -> Vec<Line<'static>> {
    let (Some(a), Some(z)) = (funnel.steps.first(), funnel.steps.last()) else {
        return Vec::new();
    };
    vec![
        Line::raw(""),
        Line::from(vec![
            Span::styled("Overall ", theme::dim()),
            Span::raw(format!("{} → {}: ", a.name, z.name)),
            Span::styled(fmt::pct(z.overall_conversion), theme::bold()),
            Span::styled(
                format!(
                    " ({} of {} sessions)",
                    fmt::int(z.sessions),
                    fmt::int(a.sessions)
                ),
                theme::dim(),
            ),
        ]),
    ]
}
