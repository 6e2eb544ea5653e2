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
    fn draw(frame: &mut Frame, area: Rect, app: &App) {
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

    let mut lines: Vec<Line> = Vec::new();
    let counts = app.retention_counts;
    let cell = |c: &Cohort, n: usize| -> String {
        match (c.retained.get(n), counts) {
            (None, _) => String::new(),
            (Some(v), true) => short(*v),
            (Some(_), false) => rate(c, n).map_or(String::new(), |r| format!("{:.0}", r * 100.0)),
        }
    };
    if wide {
        let mut header = format!("{:<10} {:>7}", "Cohort", "Users");
        for n in 0..DAYS {
            header.push_str(&format!("{:>4}", format!("D{n}")));
        }
        lines.push(Line::styled(header, theme::header()));
        for (i, c) in cohorts.iter().enumerate().skip(offset).take(visible) {
            let mut spans = vec![Span::raw(format!(
                "{:<10} {:>7}",
                date(c.day),
                fmt::int(c.users)
            ))];
            for n in 0..DAYS {
                spans.push(Span::styled(format!("{:>4}", cell(c, n)), band(rate(c, n))));
            }
            let line = Line::from(spans);
            lines.push(if i == selected {
                line.style(theme::selected())
            } else {
                line
            });
        }
    } else {
        let unit = if counts { "users" } else { "%" };
        let header = format!(
            "{:<10} {:>7} {:>5} {:>5} {:>5}  D0 … D30 ({unit} / shading)",
            "Cohort", "Users", "D1", "D7", "D30"
        );
        lines.push(Line::styled(header, theme::header()));
        for (i, c) in cohorts.iter().enumerate().skip(offset).take(visible) {
            let heat: String = (0..DAYS).map(|n| glyph(rate(c, n))).collect();
            let line = Line::from(vec![
                Span::raw(format!("{:<10} {:>7}", date(c.day), fmt::int(c.users))),
                Span::styled(format!(" {:>5}", cell(c, 1)), band(rate(c, 1))),
                Span::styled(format!(" {:>5}", cell(c, 7)), band(rate(c, 7))),
                Span::styled(format!(" {:>5}", cell(c, 30)), band(rate(c, 30))),
                Span::raw("  "),
                Span::raw(heat),
            ]);
            lines.push(if i == selected {
                line.style(theme::selected())
            } else {
                line
            });
        }
    }
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
    lines.push(Line::from(Span::styled(
        format!("↑↓ cohort {} of {}", selected + 1, cohorts.len()),
        theme::dim(),
    )));
    lines.push(Line::from(detail));
    frame.render_widget(Paragraph::new(lines), inner);
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
