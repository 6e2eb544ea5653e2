//! The key map: what each key does to the state (views, range, selection, pause, help).
//!
//! Invariant: a key only changes the state; work it needs (a fetch, a poll) is asked for
//! by flags that [`super::update`] turns into commands; tab keys come from the registry
//! ([`crate::analysis`]) and only open the tabs the dashboard shows.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::{App, Input, TimeRange};
use crate::analysis::Analysis;

impl App {
    /// Rows the current view's selection moves over.
    fn row_count(&self, view: Analysis) -> usize {
        match view {
            Analysis::Collectors => self.collector_lines().len(),
            Analysis::Retention => self.data.retention.as_ref().map_or(0, |r| r.cohorts.len()),
            Analysis::Paths => self.data.paths.as_ref().map_or(0, |p| p.transitions.len()),
            Analysis::Database => self.data.database.as_ref().map_or(0, |d| d.jobs.len()),
            _ => 0,
        }
    }

    fn move_selection(&mut self, delta: isize) {
        let view = self.view;
        let n = self.row_count(view);
        let i = view.index();
        if n == 0 {
            self.selected[i] = 0;
            return;
        }
        let cur = self.selected[i].min(n - 1) as isize;
        self.selected[i] = (cur + delta).clamp(0, n as isize - 1) as usize;
    }

    fn set_range(&mut self, range: TimeRange) {
        if range != self.range {
            self.range = range;
            // A new range is loaded even when paused: the screen must match its label.
            self.force_fetch = self.has_database();
        }
    }

    fn refresh_now(&mut self) {
        self.force_fetch = self.has_database();
        self.force_poll = !self.polls.is_empty();
    }

    pub(super) fn on_key(&mut self, key: KeyEvent) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            self.quit = true;
            return;
        }
        if self.input.is_some() {
            self.on_input_key(key);
            return;
        }
        if key.code == KeyCode::Char('q') {
            self.quit = true;
            return;
        }
        if self.help {
            // Any other key closes the help overlay.
            self.help = false;
            return;
        }
        match key.code {
            KeyCode::Char('/') if self.view == Analysis::Tail => {
                self.input = Some(Input {
                    text: self.tail_filter.text().to_string(),
                    error: None,
                })
            }
            KeyCode::Char('?') => self.help = true,
            KeyCode::Esc => self.detail = false,
            KeyCode::Tab => self.open(self.tab_after(1)),
            KeyCode::BackTab => self.open(self.tab_after(-1)),
            KeyCode::Char(c) if self.tab_for_key(c).is_some() => self.open(self.tab_for_key(c)),
            KeyCode::Left => self.set_range(self.range.narrower()),
            KeyCode::Right => self.set_range(self.range.wider()),
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::PageUp => self.move_selection(-10),
            KeyCode::PageDown => self.move_selection(10),
            KeyCode::Home => self.move_selection(isize::MIN / 2),
            KeyCode::End => self.move_selection(isize::MAX / 2),
            KeyCode::Enter if self.view == Analysis::Collectors => {
                self.move_selection(0);
                self.detail = self.row_count(Analysis::Collectors) > 0;
            }
            KeyCode::Char('r') => self.refresh_now(),
            KeyCode::Char('p') => self.paused = !self.paused,
            KeyCode::Char('c') if self.view == Analysis::Retention => {
                self.retention_counts = !self.retention_counts
            }
            _ => {}
        }
    }

    /// A key while the `/` input is open: typing edits it, Enter applies it, Esc closes it.
    fn on_input_key(&mut self, key: KeyEvent) {
        let Some(input) = self.input.as_mut() else {
            return;
        };
        match key.code {
            KeyCode::Esc => self.input = None,
            KeyCode::Enter => {
                let text = input.text.clone();
                match self.set_tail_filter(&text) {
                    Ok(()) => self.input = None,
                    Err(e) => {
                        if let Some(i) = self.input.as_mut() {
                            i.error = Some(e);
                        }
                    }
                }
            }
            KeyCode::Backspace => {
                input.text.pop();
                input.error = None;
            }
            KeyCode::Char(c) if !c.is_control() => {
                if input.text.len() < 200 {
                    input.text.push(c);
                }
                input.error = None;
            }
            _ => {}
        }
    }

    /// The shown tab `step` tabs after the current one (wrapping).
    fn tab_after(&self, step: isize) -> Option<Analysis> {
        let n = self.tabs.len() as isize;
        if n == 0 {
            return None;
        }
        let cur = self.tabs.iter().position(|t| *t == self.view).unwrap_or(0) as isize;
        self.tabs.get((cur + step).rem_euclid(n) as usize).copied()
    }

    /// The shown tab whose key is `key`.
    fn tab_for_key(&self, key: char) -> Option<Analysis> {
        Analysis::from_key(key).filter(|a| self.tabs.contains(a))
    }

    /// Opens `tab` (closing the collector detail).
    fn open(&mut self, tab: Option<Analysis>) {
        if let Some(t) = tab {
            self.view = t;
            self.detail = false;
        }
    }
}
