//! The Tail view's state: polling the collectors' live tail while the view is on screen,
//! applying each round to [`crate::model::Tail`] (in `App::data.tail`), and the filter the
//! `/` input edits.
//!
//! Invariant: at most one round of tail polls is in flight; polls run only while the Tail
//! view is shown and the dashboard is not paused (`p`), so a paused tail keeps its screen
//! and its cursors, and on resume reads on from them (what the collectors' rings dropped
//! meanwhile is counted as missed).

use std::time::Duration;

use super::{App, Cmd};
use crate::{
    analysis::Analysis,
    model::{Tail, TailPage},
    tail::{feed::PAGE_LIMIT, Filter},
};

/// How often the live tail is polled while on screen.
pub const TAIL_INTERVAL: Duration = Duration::from_secs(1);

impl App {
    /// The live tail, when there are collectors to read it from.
    pub fn tail(&self) -> Option<&Tail> {
        self.data.tail.as_ref().filter(|t| !t.sources.is_empty())
    }

    /// A round of tail polls, when one is due.
    pub(super) fn tail_due(&mut self) -> Option<Cmd> {
        let tail = self.tail()?;
        let due = self.view == Analysis::Tail
            && !self.paused
            && self.tail_started.is_none()
            && self.next_tail.is_none_or(|t| self.now >= t);
        if !due {
            return None;
        }
        let afters = tail.afters();
        self.tail_started = Some(self.now);
        Some(Cmd::Tail {
            afters,
            limit: PAGE_LIMIT,
        })
    }

    pub(super) fn on_tailed(&mut self, results: Vec<Result<TailPage, String>>) {
        self.tail_started = None;
        self.next_tail = Some(self.now + TAIL_INTERVAL);
        let now = self.now;
        if let Some(t) = self.data.tail.as_mut() {
            t.apply(results, now);
        }
    }

    /// Sets the tail's filter from the `/` input's text; the parse error otherwise.
    pub(super) fn set_tail_filter(&mut self, text: &str) -> Result<(), String> {
        self.tail_filter = Filter::parse(text)?;
        Ok(())
    }
}
