//! The analyses' filter in the dashboard: `f` opens a one-line prompt (`field=value`, Enter
//! adds the term, Esc closes it), `F` clears the filter. A change of filter drops what was
//! fetched for the old one (the data of every filtered analysis, the fetch in flight, an
//! open drill-down) and fetches again at once.
//!
//! Invariant: the data on screen of a filtered analysis is always for [`App::filter`]: it
//! is cleared with each change, and an answer to a fetch asked for before the change is
//! dropped ([`App::stale_fetch`]).

use crossterm::event::{KeyCode, KeyEvent};

use super::{App, Input};
use crate::{analysis::Analysis, model::Filter};

/// The longest text the prompt takes, in bytes.
const PROMPT_BYTES: usize = 300;

impl App {
    /// `f`: the prompt, empty.
    pub(super) fn open_filter_prompt(&mut self) {
        self.input = Some(Input {
            filter: true,
            ..Input::default()
        });
    }

    /// `F`: every event again.
    pub(super) fn clear_filter(&mut self) {
        if !self.filter.is_empty() {
            self.set_filter(Filter::default());
        }
    }

    /// A key while the prompt is open.
    pub(super) fn on_filter_key(&mut self, key: KeyEvent) {
        let Some(input) = self.input.as_mut() else {
            return;
        };
        match key.code {
            KeyCode::Esc => self.input = None,
            KeyCode::Enter => {
                let mut next = self.filter.clone();
                match next.add(&input.text) {
                    Ok(()) => {
                        self.input = None;
                        if next != self.filter {
                            self.set_filter(next);
                        }
                    }
                    Err(e) => input.error = Some(e.to_string()),
                }
            }
            KeyCode::Backspace => {
                input.text.pop();
                input.error = None;
            }
            KeyCode::Char(c) if !c.is_control() => {
                if input.text.len() + c.len_utf8() <= PROMPT_BYTES {
                    input.text.push(c);
                }
                input.error = None;
            }
            _ => {}
        }
    }

    /// Applies `filter`: clears what the old one fetched and refetches now.
    pub fn set_filter(&mut self, filter: Filter) {
        self.filter = filter;
        for a in Analysis::queried().filter(|a| filtered(*a)) {
            self.section_at.remove(&a);
            self.section_errors.remove(&a);
            self.data.clear(a);
        }
        self.drill = None;
        self.stale_fetch = self.fetch_started.is_some();
        self.force_fetch = self.has_database();
    }
}

/// Whether the filter applies to `analysis` (the collectors and the database health are
/// not about events; the Tail has its own filter).
pub fn filtered(analysis: Analysis) -> bool {
    analysis.entry().filtered
}
