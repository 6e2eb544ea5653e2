//! The Retention view: a cohort × day-N heatmap (D0..D30) with rates and counts.
//!
//! Wide screens show every day's rate (or count, `c`) as a number; narrow ones show D1, D7
//! and D30 as numbers and all 31 days as one shaded glyph each, with a legend. The selected
//! cohort's counts are spelled out underneath.
//!
//! Invariant: a pure function of the state; a day that has not happened yet is blank, never
//! 0 %, and shading never stands alone (the legend and the numbers say the same).

use ratatui::{
    layout::Rect,
    style::Style,
    text::{Line, Span},
    widgets::Paragraph,
    Frame,
};
use time::Date;

use crate::{analysis::Analysis, app::App, model::Cohort};

use super::{draw_missing, fmt, range_of, section_block, theme};

const DAYS: usize = 31;

fn date(d: Date) -> String {
    format!("{}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn rate(c: &Cohort, n: usize) -> Option<f64> {
    let r = *c.retained.get(n)?;
    Some(if c.users > 0 {
        r as f64 / c.users as f64
    } else {
        0.0
    })
}

fn glyph(r: Option<f64>) -> char {
    match r {
        None => ' ',
        Some(r) if r >= 0.5 => '█',
        Some(r) if r >= 0.25 => '▓',
        Some(r) if r >= 0.10 => '▒',
        Some(r) if r >= 0.01 => '░',
        Some(_) => '·',
    }
}

fn band(r: Option<f64>) -> Style {
    match r {
        Some(r) if r >= 0.5 => theme::bold(),
        Some(r) if r >= 0.1 => theme::plain(),
        _ => theme::dim(),
    }
}

/// At most 4 characters: `999`, `1.2k`, `12k`, `123k`, `1.2M`, `12M`.
fn short(n: i64) -> String {
    let n = n.max(0);
    if n < 1_000 {
        n.to_string()
    } else if n < 9_950 {
        format!("{:.1}k", n as f64 / 1e3)
    } else if n < 1_000_000 {
        format!("{}k", n / 1_000)
    } else if n < 9_950_000 {
        format!("{:.1}M", n as f64 / 1e6)
    } else {
        format!("{}M", (n / 1_000_000).min(999))
    }
}

impl super::View for crate::model::Retention {
    fn draw(frame: &mut Frame, area: Rect, app: &App, _hits: &mut crate::app::Hits) {
        draw(frame, area, app);
    }
}

fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let mode = if app.retention_counts {
        "user counts"
    } else {
        "rates"
    };
    let title = format!(
        "Retention · first-seen cohorts · {} · {mode} (c toggles)",
        range_of(app, Analysis::Retention)
    );
    let Some(retention) = &app.data.retention else {
        draw_missing(frame, area, app, Analysis::Retention, &title);
        return;
    };
    let block = section_block(app, Analysis::Retention, title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let cohorts = &retention.cohorts;
    if cohorts.is_empty() {
        frame.render_widget(
            Paragraph::new("no users first seen in this range (→ widens it)").style(theme::dim()),
            inner,
        );
        return;
    }
    let width = inner.width as usize;
    let wide = width > 10 + 1 + 7 + DAYS * 4;
    let selected = app.selection(Analysis::Retention).min(cohorts.len() - 1);
    let footer = if wide { 2 } else { 3 };
    let visible = (inner.height as usize).saturating_sub(1 + footer).max(1);
    let offset = selected.saturating_sub(visible - 1);

    let rows = Rows {
        cohorts,
        offset,
        visible,
        selected,
        counts: app.retention_counts,
    };
    let mut lines = if wide { rows.wide() } else { rows.narrow() };
    // Pad so the footer sits at the bottom.
    while lines.len() < 1 + visible {
        lines.push(Line::raw(""));
    }
    if !wide {
        lines.push(Line::styled(
            "█ ≥50%  ▓ ≥25%  ▒ ≥10%  ░ ≥1%  · <1%  blank: day not reached yet",
            theme::dim(),
        ));
    }
    lines.extend(selected_detail(cohorts, selected));
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The visible cohort rows (with the header line), for the wide heatmap or the narrow list.
struct Rows<'a> {
    cohorts: &'a [Cohort],
    offset: usize,
    visible: usize,
    selected: usize,
    /// User counts instead of rates.
    counts: bool,
}

impl Rows<'_> {
    /// Day `n`'s cell of cohort `c`: blank when not reached yet.
    fn cell(&self, c: &Cohort, n: usize) -> String {
        match (c.retained.get(n), self.counts) {
            (None, _) => String::new(),
            (Some(v), true) => short(*v),
            (Some(_), false) => rate(c, n).map_or(String::new(), |r| format!("{:.0}", r * 100.0)),
        }
    }

    /// `line` highlighted when it is cohort `i` and `i` is selected.
    fn mark(&self, i: usize, line: Line<'static>) -> Line<'static> {
        if i == self.selected {
            line.style(theme::selected())
        } else {
            line
        }
    }

    fn shown(&self) -> impl Iterator<Item = (usize, &Cohort)> {
        self.cohorts
            .iter()
            .enumerate()
            .skip(self.offset)
            .take(self.visible)
    }

    /// Every day D0…D30 as a column.
    fn wide(&self) -> Vec<Line<'static>> {
        let mut header = format!("{:<10} {:>7}", "Cohort", "Users");
        for n in 0..DAYS {
            header.push_str(&format!("{:>4}", format!("D{n}")));
        }
        let mut lines = vec![Line::styled(header, theme::header())];
        for (i, c) in self.shown() {
            let mut spans = vec![Span::raw(format!(
                "{:<10} {:>7}",
                date(c.day),
                fmt::int(c.users)
            ))];
            for n in 0..DAYS {
                spans.push(Span::styled(
                    format!("{:>4}", self.cell(c, n)),
                    band(rate(c, n)),
                ));
            }
            lines.push(self.mark(i, Line::from(spans)));
        }
        lines
    }

    /// D1, D7, D30 as numbers and every day as one shaded glyph.
    fn narrow(&self) -> Vec<Line<'static>> {
        let unit = if self.counts { "users" } else { "%" };
        let header = format!(
            "{:<10} {:>7} {:>5} {:>5} {:>5}  D0 … D30 ({unit} / shading)",
            "Cohort", "Users", "D1", "D7", "D30"
        );
        let mut lines = vec![Line::styled(header, theme::header())];
        for (i, c) in self.shown() {
            let heat: String = (0..DAYS).map(|n| glyph(rate(c, n))).collect();
            let line = Line::from(vec![
                Span::raw(format!("{:<10} {:>7}", date(c.day), fmt::int(c.users))),
                Span::styled(format!(" {:>5}", self.cell(c, 1)), band(rate(c, 1))),
                Span::styled(format!(" {:>5}", self.cell(c, 7)), band(rate(c, 7))),
                Span::styled(format!(" {:>5}", self.cell(c, 30)), band(rate(c, 30))),
                Span::raw("  "),
                Span::raw(heat),
            ]);
            lines.push(self.mark(i, line));
        }
        lines
    }
}

/// The footer: which cohort is selected, and its D1/D7/D14/D30 in full.
fn selected_detail(cohorts: &[Cohort], selected: usize) -> Vec<Line<'static>> {
    let c = &cohorts[selected];
    let mut detail = vec![
        Span::styled(date(c.day), theme::bold()),
        Span::raw(format!(" · {} users", fmt::int(c.users))),
    ];
    for n in [1usize, 7, 14, 30] {
        let text = match (c.retained.get(n), rate(c, n)) {
            (Some(v), Some(r)) => format!(" · D{n} {} ({})", fmt::int(*v), fmt::pct(r)),
            _ => format!(" · D{n} —"),
        };
        detail.push(Span::raw(text));
    }
    vec![
        Line::from(Span::styled(
            format!("↑↓ cohort {} of {}", selected + 1, cohorts.len()),
            theme::dim(),
        )),
        Line::from(detail),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorts_fit_four_columns() {
        for n in [
            0,
            999,
            1_000,
            9_999,
            10_000,
            999_999,
            1_000_000,
            9_999_999,
            i64::MAX,
        ] {
            assert!(short(n).chars().count() <= 4, "{n} → {}", short(n));
        }
        assert_eq!(glyph(None), ' ');
        assert_eq!(glyph(Some(0.0)), '·');
        assert_eq!(glyph(Some(0.6)), '█');
    }
}
