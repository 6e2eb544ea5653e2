//! The funnel drill-down's state: Enter on a step opens the sessions that reached it and
//! not the next step; Enter on a session opens its person's timeline; Esc goes back one
//! level. Both are looked up through the runtime ([`Cmd::Lookup`]) and answered with
//! [`Msg::Looked`](super::Msg::Looked).
//!
//! Invariant: an answer is applied only while it is still the one asked for (same step,
//! steps and window; same person id); anything else is dropped, so a late answer never
//! replaces what is on screen. At most one lookup of each kind is wanted at a time.

use super::{App, Cmd, TimeRange};
use crate::model::{DropOff, Filter, Person, Range};

/// Something fetched on demand: asked for, there, or failed with the error.
#[derive(Debug, Clone, PartialEq)]
pub enum Loadable<T> {
    Loading,
    Ready(T),
    Failed(String),
}

impl<T> Loadable<T> {
    pub fn ready(&self) -> Option<&T> {
        match self {
            Loadable::Ready(v) => Some(v),
            _ => None,
        }
    }
}

/// The drill-down over the Funnel view.
#[derive(Debug, Clone, PartialEq)]
pub struct Drill {
    /// The step (0-based) of `steps` whose drop-off is listed.
    pub step: usize,
    pub steps: Vec<String>,
    /// The range label it was asked for, and its window.
    pub range: TimeRange,
    pub window: Range,
    pub list: Loadable<DropOff>,
    /// The selected row, an index into the arranged list.
    pub selected: usize,
    /// The person opened from a row, drawn over the list.
    pub person: Option<PersonPane>,
}

/// One person's timeline, opened from the drill-down.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonPane {
    pub id: String,
    /// `Ready(None)`: no event was ever sent with the id.
    pub data: Loadable<Option<Person>>,
}

/// An on-demand query the runtime runs off the UI task.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    DropOff {
        window: Range,
        steps: Vec<String>,
        step: usize,
        /// The analyses' filter (a change of filter closes the drill-down).
        filter: Filter,
    },
    Person {
        id: String,
    },
}

/// A lookup's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Looked {
    DropOff {
        window: Range,
        steps: Vec<String>,
        step: usize,
        result: Result<DropOff, String>,
    },
    Person {
        id: String,
        result: Result<Option<Person>, String>,
    },
}

impl App {
    /// Enter on the Funnel view: the selected step's drop-off.
    pub(super) fn open_drill(&mut self) -> Option<Cmd> {
        let n = self.data.funnel.as_ref().map_or(0, |f| f.steps.len());
        if n == 0 {
            return None;
        }
        if !self.has_database() {
            self.notice(
                "no database configured: the drill-down needs --database-url",
                true,
            );
            return None;
        }
        let step = self.selection(crate::analysis::Analysis::Funnel).min(n - 1);
        let window = self.range.window(self.now);
        self.drill = Some(Drill {
            step,
            steps: self.steps.clone(),
            range: self.range,
            window,
            list: Loadable::Loading,
            selected: 0,
            person: None,
        });
        Some(Cmd::Lookup(Lookup::DropOff {
            window,
            steps: self.steps.clone(),
            step,
            filter: self.filter.clone(),
        }))
    }

    /// The drill-down again for the range on screen (after `r` or a range change).
    pub(super) fn reload_drill(&mut self) -> Option<Cmd> {
        let (range, now) = (self.range, self.now);
        let d = self.drill.as_mut()?;
        d.range = range;
        d.window = range.window(now);
        d.list = Loadable::Loading;
        d.selected = 0;
        Some(Cmd::Lookup(Lookup::DropOff {
            window: d.window,
            steps: d.steps.clone(),
            step: d.step,
            filter: self.filter.clone(),
        }))
    }

    /// Enter on a drill-down row: that session's person.
    pub(super) fn open_person(&mut self) -> Option<Cmd> {
        let rows = self.arranged(super::List::DropOff);
        let d = self.drill.as_ref()?;
        let list = d.list.ready()?;
        let i = *rows.get(d.selected.min(rows.len().checked_sub(1)?))?;
        let Some(id) = list.sessions.get(i).and_then(|s| s.person.clone()) else {
            self.notice("this session was sent without a user or anonymous id", true);
            return None;
        };
        if let Some(d) = self.drill.as_mut() {
            d.person = Some(PersonPane {
                id: id.clone(),
                data: Loadable::Loading,
            });
        }
        Some(Cmd::Lookup(Lookup::Person { id }))
    }

    /// Esc: the person back to the list, the list back to the funnel.
    pub(super) fn drill_back(&mut self) -> bool {
        let Some(d) = self.drill.as_mut() else {
            return false;
        };
        if d.person.take().is_none() {
            self.drill = None;
        }
        true
    }

    pub(super) fn on_looked(&mut self, looked: Looked) {
        let Some(d) = self.drill.as_mut() else {
            return;
        };
        match looked {
            Looked::DropOff {
                window,
                steps,
                step,
                result,
            } => {
                if window != d.window || steps != d.steps || step != d.step {
                    return;
                }
                d.list = match result {
                    Ok(v) => Loadable::Ready(v),
                    Err(e) => Loadable::Failed(e),
                };
            }
            Looked::Person { id, result } => {
                if let Some(p) = d.person.as_mut().filter(|p| p.id == id) {
                    p.data = match result {
                        Ok(v) => Loadable::Ready(v),
                        Err(e) => Loadable::Failed(e),
                    };
                }
            }
        }
    }

    /// Moves the drill-down's selection by `delta` rows.
    pub(super) fn move_drill_selection(&mut self, delta: isize) {
        let n = self.arranged(super::List::DropOff).len();
        if let Some(d) = self.drill.as_mut() {
            if n == 0 {
                d.selected = 0;
                return;
            }
            let cur = d.selected.min(n - 1) as isize;
            d.selected = (cur + delta).clamp(0, n as isize - 1) as usize;
        }
    }
}
