//! The key map: what each key does to the state (views, range, selection, pause, help,
//! the drill-down, search, sort, export).
//!
//! Invariant: a key only changes the state; work it needs is asked for by flags that
//! [`super::update`] turns into commands (a fetch, a poll) or returned as commands (a
//! lookup, an export); tab keys come from the registry ([`crate::analysis`]) and only open
//! the tabs the dashboard shows.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::{App, Cmd, Input, List, TimeRange};
use crate::analysis::Analysis;

impl App {
    /// Rows the current view's selection moves over: its list's arranged rows when the
    /// list selects ([`super::lists::LISTS`]; the Collectors list even under the detail,
    /// where ↑↓ steps through the collectors); else one count each for the views that
    /// select something not a list. These stay a match, not a table: they have no search,
    /// sort or name, each is one field of its model, and this is the one place they are
    /// counted; a view with nothing to select has no rows.
    fn row_count(&self, view: Analysis) -> usize {
        if let Some(list) = List::of_view(view) {
            return if list.entry().selects {
                self.arranged(list).len()
            } else {
                0
            };
        }
        match view {
            Analysis::Funnel => self.data.funnel.as_ref().map_or(0, |f| f.steps.len()),
            Analysis::Retention => self.data.retention.as_ref().map_or(0, |r| r.cohorts.len()),
            Analysis::Database => self.data.database.as_ref().map_or(0, |d| d.jobs.len()),
            _ => 0,
        }
    }

    pub(super) fn move_selection(&mut self, delta: isize) {
        if self.drill.is_some() {
            self.move_drill_selection(delta);
            return;
        }
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

    fn set_range(&mut self, range: TimeRange) -> Option<Cmd> {
        if range == self.range {
            return None;
        }
        self.range = range;
        // A new range is loaded even when paused: the screen must match its label.
        self.force_fetch = self.has_database();
        self.reload_drill()
    }

    fn refresh_now(&mut self) -> Option<Cmd> {
        self.force_fetch = self.has_database();
        self.force_poll = !self.polls.is_empty();
        if self.drill.as_ref().is_some_and(|d| d.person.is_none()) {
            return self.reload_drill();
        }
        None
    }

    /// Enter (and a click on the selected row): open what the selection names.
    pub(super) fn activate(&mut self) -> Vec<Cmd> {
        if self.drill.as_ref().is_some_and(|d| d.person.is_none()) {
            return self.open_person().into_iter().collect();
        }
        if self.drill.is_some() {
            return Vec::new();
        }
        match self.view {
            Analysis::Collectors => {
                self.move_selection(0);
                self.detail = self.row_count(Analysis::Collectors) > 0;
                Vec::new()
            }
            Analysis::Funnel => self.open_drill().into_iter().collect(),
            _ => Vec::new(),
        }
    }

    /// Esc: clears the list's search, else goes back a level (person → drill-down →
    /// funnel; collector detail → collectors).
    fn back(&mut self) {
        if let Some(list) = self.current_list() {
            if !self.list_state(list).search.is_empty() {
                self.set_search(list, "");
                return;
            }
        }
        if !self.drill_back() {
            self.detail = false;
        }
    }

    pub(super) fn on_key(&mut self, key: KeyEvent) -> Vec<Cmd> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            self.quit = true;
            return Vec::new();
        }
        if self.input.is_some() {
            self.on_input_key(key);
            return Vec::new();
        }
        if key.code == KeyCode::Char('q') {
            self.quit = true;
            return Vec::new();
        }
        if self.help {
            // Any other key closes the help overlay.
            self.help = false;
            return Vec::new();
        }
        let mut cmds = Vec::new();
        match key.code {
            KeyCode::Char('/') if self.view == Analysis::Tail && self.drill.is_none() => {
                self.input = Some(Input {
                    text: self.tail_filter.text().to_string(),
                    error: None,
                    search: None,
                    filter: false,
                })
            }
            KeyCode::Char('/') if self.current_list().is_some() => {
                if let Some(list) = self.current_list() {
                    self.input = Some(Input {
                        text: self.list_state(list).search.clone(),
                        error: None,
                        search: Some(list),
                        filter: false,
                    })
                }
            }
            KeyCode::Char('s') if self.current_list().is_some() => {
                if let Some(list) = self.current_list() {
                    self.cycle_sort(list);
                }
            }
            KeyCode::Char('S') if self.current_list().is_some() => {
                if let Some(list) = self.current_list() {
                    self.reverse_sort(list);
                }
            }
            KeyCode::Char('e') => cmds.extend(self.export()),
            KeyCode::Char('f') => self.open_filter_prompt(),
            KeyCode::Char('F') => self.clear_filter(),
            KeyCode::Char('?') => self.help = true,
            KeyCode::Esc => self.back(),
            KeyCode::Tab => self.open(self.tab_after(1)),
            KeyCode::BackTab => self.open(self.tab_after(-1)),
            KeyCode::Char(c) if self.tab_for_key(c).is_some() => self.open(self.tab_for_key(c)),
            KeyCode::Left => cmds.extend(self.set_range(self.range.narrower())),
            KeyCode::Right => cmds.extend(self.set_range(self.range.wider())),
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::PageUp => self.move_selection(-10),
            KeyCode::PageDown => self.move_selection(10),
            KeyCode::Home => self.move_selection(isize::MIN / 2),
            KeyCode::End => self.move_selection(isize::MAX / 2),
            KeyCode::Enter => cmds.extend(self.activate()),
            KeyCode::Char('r') => cmds.extend(self.refresh_now()),
            KeyCode::Char('p') => self.paused = !self.paused,
            KeyCode::Char('c') if self.view == Analysis::Retention => {
                self.retention_counts = !self.retention_counts
            }
            _ => {}
        }
        cmds
    }

    /// A key while the `/` input is open: typing edits it, Enter applies it, Esc closes it.
    /// A list's search follows the text as it is typed; Esc clears it.
    fn on_input_key(&mut self, key: KeyEvent) {
        let Some(input) = self.input.as_mut() else {
            return;
        };
        if input.filter {
            self.on_filter_key(key);
            return;
        }
        if let Some(list) = input.search {
            match key.code {
                KeyCode::Esc => {
                    self.input = None;
                    self.set_search(list, "");
                    return;
                }
                KeyCode::Enter => {
                    self.input = None;
                    return;
                }
                KeyCode::Backspace => {
                    input.text.pop();
                }
                KeyCode::Char(c) if !c.is_control() && input.text.len() < 200 => input.text.push(c),
                _ => return,
            }
            let text = input.text.clone();
            self.set_search(list, &text);
            return;
        }
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

    /// Opens `tab` (closing the collector detail and the drill-down).
    pub(super) fn open(&mut self, tab: Option<Analysis>) {
        if let Some(t) = tab {
            self.view = t;
            self.detail = false;
            self.drill = None;
        }
    }
}
