//! Mouse clicks: the drawing records where it put each tab and each list row ([`Hits`]);
//! the runtime turns a crossterm mouse event into a message with what was under it
//! ([`resolve`]); the update selects (a click on the selected row opens it, like Enter).
//!
//! Invariant: the hit map is plain data the drawing returns (it never changes the state),
//! so the click logic is tested like the keys; a click where nothing was drawn does nothing
//! but close the help overlay.

use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::Rect;

use super::{App, Cmd, Msg};
use crate::analysis::Analysis;

/// What a click can land on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Tab(Analysis),
    /// Row `i` of the list on screen, in the order drawn (funnel steps, a list's arranged
    /// rows, the drill-down's sessions).
    Row(usize),
}

/// Where the last drawing put its clickable things.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hits {
    areas: Vec<(Rect, Target)>,
}

impl Hits {
    pub fn add(&mut self, area: Rect, target: Target) {
        if area.width > 0 && area.height > 0 {
            self.areas.push((area, target));
        }
    }

    /// The target under cell (`x`, `y`); the last one drawn wins.
    pub fn at(&self, x: u16, y: u16) -> Option<Target> {
        self.areas
            .iter()
            .rev()
            .find(|(r, _)| x >= r.x && x < r.x + r.width && y >= r.y && y < r.y + r.height)
            .map(|(_, t)| *t)
    }

    pub fn is_empty(&self) -> bool {
        self.areas.is_empty()
    }
}

/// The message a mouse event means, given the last drawing's hits: a left click, or the
/// wheel moving the selection.
pub fn resolve(event: MouseEvent, hits: &Hits) -> Option<Msg> {
    match event.kind {
        MouseEventKind::Down(MouseButton::Left) => {
            Some(Msg::Click(hits.at(event.column, event.row)))
        }
        MouseEventKind::ScrollDown => Some(Msg::Scroll(1)),
        MouseEventKind::ScrollUp => Some(Msg::Scroll(-1)),
        _ => None,
    }
}

impl App {
    pub(super) fn on_click(&mut self, target: Option<Target>) -> Vec<Cmd> {
        if self.help {
            self.help = false;
            return Vec::new();
        }
        match target {
            None => Vec::new(),
            Some(Target::Tab(t)) => {
                self.open(Some(t));
                Vec::new()
            }
            Some(Target::Row(i)) => {
                if let Some(d) = self.drill.as_mut() {
                    if d.person.is_some() {
                        return Vec::new();
                    }
                    if d.selected == i {
                        return self.open_person().into_iter().collect();
                    }
                    d.selected = i;
                    return Vec::new();
                }
                let view = self.view;
                if self.selection(view) == i && !self.detail {
                    return self.activate();
                }
                self.selected[view.index()] = i;
                self.move_selection(0);
                Vec::new()
            }
        }
    }

    pub(super) fn on_scroll(&mut self, delta: isize) {
        if self.help || self.input.is_some() {
            return;
        }
        if self.drill.as_ref().is_some_and(|d| d.person.is_none()) {
            self.move_drill_selection(delta);
        } else if self.drill.is_none() {
            self.move_selection(delta);
        }
    }
}
