//! The dashboard's few styles, in one place.
//!
//! Invariant: readable on dark and light terminals alike — text keeps the terminal's own
//! foreground and background; emphasis is carried by modifiers (bold, dim, reversed,
//! underlined), and colour is kept for state only (red: failing, magenta: warning, green:
//! fine), always together with a word or symbol that says the same. With colour off
//! ([`set_color`], from `NO_COLOR` at start) no style carries a colour at all: failing is
//! bold and underlined, a warning bold.

use std::sync::atomic::{AtomicBool, Ordering};

use ratatui::style::{Color, Modifier, Style};

/// Whether states are coloured (off when `NO_COLOR` is set, <https://no-color.org>).
static COLOR: AtomicBool = AtomicBool::new(true);

/// Turns colour on or off for every later drawing (the runtime calls it once at start).
pub fn set_color(on: bool) {
    COLOR.store(on, Ordering::Relaxed);
}

/// `NO_COLOR`'s rule: colour unless the variable is set to a non-empty value.
pub fn color_from_env(no_color: Option<&str>) -> bool {
    no_color.is_none_or(str::is_empty)
}

/// `style` in `color`, or as it is when colour is off.
fn tint(style: Style, color: Color) -> Style {
    if COLOR.load(Ordering::Relaxed) {
        style.fg(color)
    } else {
        style
    }
}

pub fn plain() -> Style {
    Style::new()
}

pub fn bold() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

pub fn dim() -> Style {
    Style::new().add_modifier(Modifier::DIM)
}

/// Column headers.
pub fn header() -> Style {
    Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
}

/// The selected row or tab.
pub fn selected() -> Style {
    Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
}

pub fn error() -> Style {
    let s = tint(Style::new(), Color::Red).add_modifier(Modifier::BOLD);
    if COLOR.load(Ordering::Relaxed) {
        s
    } else {
        s.add_modifier(Modifier::UNDERLINED)
    }
}

pub fn warn() -> Style {
    tint(Style::new(), Color::Magenta).add_modifier(Modifier::BOLD)
}

pub fn good() -> Style {
    tint(Style::new(), Color::Green)
}

/// Block titles.
pub fn title() -> Style {
    bold()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_follows_the_convention() {
        assert!(color_from_env(None));
        assert!(color_from_env(Some("")));
        assert!(!color_from_env(Some("1")));
    }
}
