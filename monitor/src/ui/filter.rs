//! The analyses' filter on screen: one line of chips under the status line while a filter
//! is set (on every tab; on the tabs it does not apply to, it says so), and the `f` prompt
//! at the bottom.
//!
//! Invariant: with no filter and no prompt nothing is drawn and no line is taken, so every
//! unfiltered screen is exactly as before; chips are cut by display width (a CJK or emoji
//! value is never split) and the line never overflows its width.

use ratatui::{
    layout::Rect,
    text::{Line, Span},
    widgets::Paragraph,
    Frame,
};

use super::theme;
use crate::{app::App, model::FILTER_FIELDS, text};

/// The widest a single chip's text may be, in columns.
const CHIP_MAX: usize = 40;

/// Lines the chips take: 1 while a filter is set.
pub(super) fn chips_height(app: &App) -> u16 {
    u16::from(!app.filter.is_empty())
}

/// Whether the `f` prompt is open.
pub(super) fn prompting(app: &App) -> bool {
    app.input.as_ref().is_some_and(|i| i.filter)
}

pub(super) fn draw_chips(frame: &mut Frame, area: Rect, app: &App) {
    if app.filter.is_empty() {
        return;
    }
    let width = area.width as usize;
    let lead = "filter ";
    let note = if crate::app::filtered(app.view) {
        "  f adds · F clears".to_string()
    } else {
        format!("  not applied to {} · F clears", app.view.title())
    };
    let mut spans = vec![Span::styled(lead, theme::bold())];
    let mut used = text::width(lead);
    let terms = app.filter.terms();
    let note_w = text::width(&note);
    for (i, term) in terms.iter().enumerate() {
        let chip = format!(" {} ", text::fit(&text::clean(term), CHIP_MAX));
        let rest = terms.len() - i - 1;
        // Room for this chip, the "+N" of the rest and the note.
        let more = if rest > 0 { 4 } else { 0 };
        if used + text::width(&chip) + 1 + more + note_w > width && i > 0 {
            let more = format!("+{} ", terms.len() - i);
            used += text::width(&more);
            spans.push(Span::styled(more, theme::dim()));
            break;
        }
        let room = width.saturating_sub(used + note_w);
        let chip = text::fit(&chip, room);
        used += text::width(&chip) + 1;
        spans.push(Span::styled(chip, theme::selected()));
        spans.push(Span::raw(" "));
    }
    let room = width.saturating_sub(used);
    spans.push(Span::styled(
        text::fit(note.trim_start(), room),
        theme::dim(),
    ));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

pub(super) fn draw_prompt(frame: &mut Frame, area: Rect, app: &App) {
    let Some(input) = app.input.as_ref().filter(|i| i.filter) else {
        return;
    };
    let lead = "filter + ";
    let width = area.width as usize;
    let typed = text::clean(&input.text);
    let typed = text::fit(&typed, width.saturating_sub(text::width(lead) + 2) / 2);
    let mut spans = vec![
        Span::styled(lead, theme::bold()),
        Span::raw(typed.clone()),
        Span::styled("█", theme::dim()),
    ];
    let used = text::width(lead) + text::width(&typed) + 1;
    let room = width.saturating_sub(used + 2);
    match &input.error {
        Some(e) => spans.push(Span::styled(
            format!("  {}", text::fit(e, room)),
            theme::error(),
        )),
        None => spans.push(Span::styled(
            format!(
                "  {}",
                text::fit(
                    &format!("Enter adds · Esc cancels · FIELD=VALUE: {FILTER_FIELDS}"),
                    room
                )
            ),
            theme::dim(),
        )),
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
