//! The dashboard's few styles, in one place.
//!
//! Invariant: readable on dark and light terminals alike — text keeps the terminal's own
//! foreground and background; emphasis is carried by modifiers (bold, dim, reversed,
//! underlined), and colour is kept for state only (red: failing, magenta: warning, green:
//! fine), always together with a word or symbol that says the same.

use ratatui::style::{Color, Modifier, Style};

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
    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
}

pub fn warn() -> Style {
    Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD)
}

pub fn good() -> Style {
    Style::new().fg(Color::Green)
}

/// Block titles.
pub fn title() -> Style {
    bold()
}
