//! Scheduling the database side: what the next fetch asks for (visible tab first, then
//! the analyses whose registry policy or age makes them due), applying answers as they come,
//! and backing off while the database fails.
//!
//! Invariant: at most one fetch and one round of polls are in flight; an answer for a range
//! or a filter no longer shown is dropped; an analysis that fails keeps its previous data.

use std::time::Duration;

use time::OffsetDateTime;

use super::{seconds_between, App, Cmd, DbStatus, FetchOutcome, Fetched, TimeRange};
use super::{BACKGROUND_REFRESH, MAX_RETRY_DELAY};
use crate::analysis::{Analysis, Refresh};

/// How long to wait after `failures` failed attempts in a row: the refresh interval,
/// doubled per failure, capped at [`MAX_RETRY_DELAY`] (and at least one second).
pub fn retry_delay(refresh: Duration, failures: u32) -> Duration {
    let base = refresh.max(Duration::from_secs(1));
    let factor = 1u32 << failures.saturating_sub(1).min(10);
    base.saturating_mul(factor).min(MAX_RETRY_DELAY.max(base))
}

impl App {
    pub(super) fn on_fetched(&mut self, outcome: FetchOutcome) {
        if outcome.done {
            self.fetch_started = None;
            self.pending.clear();
            self.section_started = None;
        }
        if self.stale_fetch {
            // The filter changed while it ran: likewise.
            self.stale_fetch = !outcome.done;
            self.force_fetch = outcome.done;
            return;
        }
        if outcome.range != self.range {
            // The range changed while it ran: drop what it brings, fetch the one on screen.
            self.force_fetch = outcome.done;
            return;
        }
        match outcome.result {
            Ok(fetched) if !outcome.done => self.apply(fetched, outcome.range),
            Ok(fetched) => {
                self.db = DbStatus::Ok;
                self.last_took = Some(fetched.total);
                self.data_at = Some(self.now);
                self.data_range = Some(outcome.range);
                self.next_fetch = Some(self.now + self.refresh);
            }
            Err(error) => {
                let failures = match &self.db {
                    DbStatus::Failed { failures, .. } => failures.saturating_add(1),
                    _ => 1,
                };
                self.db = DbStatus::Failed { error, failures };
                self.next_fetch = Some(self.now + retry_delay(self.refresh, failures));
            }
        }
    }

    /// One section's answer (or error), as soon as it is in.
    fn apply(&mut self, fetched: Fetched, range: TimeRange) {
        let Fetched {
            snapshot,
            errors,
            timings,
            replica,
            ..
        } = fetched;
        if let Some(r) = replica {
            self.replica = Some(r);
        }
        // An analysis that failed keeps its previous data (its error is shown).
        for report in snapshot.into_reports() {
            self.section_errors.remove(&report.analysis());
            self.data.put(report);
        }
        for (section, error) in errors {
            self.section_errors.insert(section, error);
        }
        // The database answers: whatever failed before is over.
        if matches!(self.db, DbStatus::Failed { .. } | DbStatus::Connecting) {
            self.db = DbStatus::Ok;
        }
        for (section, _) in timings {
            self.section_at.insert(section, (self.now, range));
            self.pending.retain(|s| *s != section);
        }
        self.section_started = Some(self.now);
    }

    /// What the next fetch asks for: the visible view's section, the live numbers and the
    /// collectors (the overview and the banner need them), then every other section whose
    /// data is missing, from another range or older than [`BACKGROUND_REFRESH`].
    pub fn sections_due(&self) -> Vec<Analysis> {
        let mut out: Vec<Analysis> = Some(self.view)
            .filter(|v| v.is_query())
            .into_iter()
            .collect();
        for &s in &self.tabs {
            if s.refresh() == Refresh::Always && !out.contains(&s) {
                out.push(s);
            }
        }
        for &s in &self.tabs {
            if out.contains(&s) || !s.is_query() {
                continue;
            }
            let due = match self.section_at.get(&s) {
                None => true,
                Some((at, range)) => {
                    *range != self.range
                        || seconds_between(self.now, *at) >= BACKGROUND_REFRESH.as_secs_f64()
                }
            };
            if due {
                out.push(s);
            }
        }
        out
    }

    /// The section being fetched and for how long, when a fetch is running.
    pub fn running_section(&self) -> Option<(Analysis, Duration)> {
        let section = *self.pending.first()?;
        let since = self.section_started.or(self.fetch_started)?;
        Some((
            section,
            Duration::from_secs_f64(seconds_between(self.now, since)),
        ))
    }

    /// Starts what is due: a fetch when none is running and its time has come (or it was
    /// asked for), a round of polls likewise.
    pub(super) fn due(&mut self) -> Vec<Cmd> {
        let mut cmds = Vec::new();
        let now = self.now;
        let time_for = |next: Option<OffsetDateTime>| next.is_none_or(|t| now >= t);
        if self.has_database()
            && self.fetch_started.is_none()
            && (self.force_fetch || (!self.paused && time_for(self.next_fetch)))
        {
            self.force_fetch = false;
            self.fetch_started = Some(now);
            self.section_started = Some(now);
            self.pending = self.sections_due();
            cmds.push(Cmd::Fetch {
                range: self.range,
                window: self.range.window(now),
                steps: self.steps.clone(),
                filter: self.filter.clone(),
                sections: self.pending.clone(),
            });
        }
        if !self.polls.is_empty()
            && self.poll_started.is_none()
            && (self.force_poll || (!self.paused && time_for(self.next_poll)))
        {
            self.force_poll = false;
            self.poll_started = Some(now);
            cmds.push(Cmd::Poll);
        }
        cmds.extend(self.tail_due());
        cmds
    }
}
