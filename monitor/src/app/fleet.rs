//! The Collectors view's data: direct polls of `--collector` addresses with their history,
//! merged with the heartbeats from the database into one row per collector.
//!
//! Invariant: merging reads only the state (`App::now` is the clock); a working poll wins
//! over a heartbeat, otherwise the fresher one does; a poll's history is bounded by
//! [`POLL_HISTORY`].

use std::collections::VecDeque;

use super::{parse_time, seconds_between, App, POLL_HISTORY, STALE_AFTER};
use crate::model::{CollectorHealth, HistoryPoint, Source};

/// One `--collector` address and what its polls said.
#[derive(Debug, Clone, PartialEq)]
pub struct PollSlot {
    pub address: String,
    /// The last successful answer.
    pub last: Option<CollectorHealth>,
    /// The error of the last poll, when it failed.
    pub error: Option<String>,
    /// Buffered events and rate from successive polls, oldest first.
    pub history: VecDeque<HistoryPoint>,
}

/// One row of the Collectors view: heartbeats (database) and direct polls merged by
/// collector id, the freshest winning.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorLine {
    pub id: String,
    /// The `--collector` address, when it is polled directly.
    pub address: Option<String>,
    /// None when a polled collector never answered.
    pub health: Option<CollectorHealth>,
    pub source: Option<Source>,
    /// Age of `health` at `App::now`.
    pub age_seconds: Option<f64>,
    pub fill: Option<f64>,
    /// Time to drain at the current forward rate; None when it does not drain (rate 0).
    pub drain_seconds: Option<f64>,
    /// The latest poll's error.
    pub poll_error: Option<String>,
}

impl CollectorLine {
    /// No heartbeat or poll within [`STALE_AFTER`] (or never an answer).
    pub fn stale(&self) -> bool {
        self.age_seconds
            .is_none_or(|age| age > STALE_AFTER.as_secs_f64())
    }
}

/// Fill and drain time of a health record.
fn fill_and_drain(h: &CollectorHealth) -> (Option<f64>, Option<f64>) {
    let fill = (h.buffer_limit_bytes > 0)
        .then(|| (h.buffered_bytes as f64 / h.buffer_limit_bytes as f64).clamp(0.0, 1.0));
    let drain = if h.buffered_events <= 0 {
        Some(0.0)
    } else if h.forward_rate > 0.0 {
        Some(h.buffered_events as f64 / h.forward_rate)
    } else {
        None
    };
    (fill, drain)
}

impl App {
    /// The Collectors view's rows: heartbeat rows from the database, replaced by a direct
    /// poll of the same collector when that is fresher, then collectors only polled, then
    /// addresses that never answered. Sorted by id for a stable screen.
    pub fn collector_lines(&self) -> Vec<CollectorLine> {
        let mut lines = self.heartbeat_lines();
        let mut unanswered = Vec::new();
        for slot in &self.polls {
            let Some(h) = &slot.last else {
                unanswered.push(CollectorLine {
                    id: slot.address.clone(),
                    address: Some(slot.address.clone()),
                    health: None,
                    source: None,
                    age_seconds: None,
                    fill: None,
                    drain_seconds: None,
                    poll_error: Some(
                        slot.error
                            .clone()
                            .unwrap_or_else(|| "not polled yet".to_string()),
                    ),
                });
                continue;
            };
            let polled_at = parse_time(&h.at);
            let age = polled_at.map(|at| seconds_between(self.now, at));
            let (fill, drain) = fill_and_drain(h);
            let polled = CollectorLine {
                id: h.collector_id.clone(),
                address: Some(slot.address.clone()),
                health: Some(h.clone()),
                source: Some(Source::Poll),
                age_seconds: age,
                fill,
                drain_seconds: drain,
                poll_error: slot.error.clone(),
            };
            match lines.iter_mut().find(|l| l.id == h.collector_id) {
                Some(existing) => {
                    let heartbeat_at = existing.health.as_ref().and_then(|e| parse_time(&e.at));
                    // A working poll is live and wins; after a failed poll, the fresher.
                    let poll_wins = match (polled_at, heartbeat_at) {
                        _ if slot.error.is_none() => true,
                        (Some(p), Some(b)) => p >= b,
                        (Some(_), None) => true,
                        (None, _) => false,
                    };
                    if poll_wins {
                        *existing = polled;
                    } else {
                        existing.address = Some(slot.address.clone());
                        existing.poll_error = slot.error.clone();
                    }
                }
                None => lines.push(polled),
            }
        }
        lines.sort_by(|a, b| a.id.cmp(&b.id));
        lines.extend(unanswered);
        lines
    }

    /// One line per heartbeat row from the database, aged at `App::now`.
    fn heartbeat_lines(&self) -> Vec<CollectorLine> {
        let Some(c) = &self.data.collectors else {
            return Vec::new();
        };
        c.collectors
            .iter()
            .map(|row| {
                let h = &row.health;
                let age = match parse_time(&h.at) {
                    Some(at) => Some(seconds_between(self.now, at)),
                    None => Some(
                        row.age_seconds
                            + self
                                .data_at
                                .map(|d| seconds_between(self.now, d))
                                .unwrap_or(0.0),
                    ),
                };
                let (fill, drain) = fill_and_drain(h);
                CollectorLine {
                    id: h.collector_id.clone(),
                    address: None,
                    health: Some(h.clone()),
                    source: Some(row.source),
                    age_seconds: age,
                    fill: fill.or(Some(row.fill)),
                    drain_seconds: drain.or(row.drain_seconds),
                    poll_error: None,
                }
            })
            .collect()
    }

    /// The buffer history of one collector: heartbeats from the database and samples of
    /// direct polls, oldest first.
    pub fn history_for(&self, line: &CollectorLine) -> Vec<HistoryPoint> {
        let mut points: Vec<HistoryPoint> = self
            .data
            .collectors
            .as_ref()
            .map(|c| {
                c.history
                    .iter()
                    .filter(|p| p.collector_id == line.id)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if let Some(slot) = line
            .address
            .as_ref()
            .and_then(|a| self.polls.iter().find(|s| &s.address == a))
        {
            points.extend(slot.history.iter().cloned());
        }
        points.sort_by_key(|p| p.at);
        points.dedup_by_key(|p| p.at);
        points
    }

    pub(super) fn on_polled(&mut self, results: Vec<Result<CollectorHealth, String>>) {
        self.poll_started = None;
        self.next_poll = Some(self.now + self.refresh);
        let now = self.now;
        for (slot, result) in self.polls.iter_mut().zip(results) {
            match result {
                Ok(h) => {
                    slot.history.push_back(HistoryPoint {
                        at: parse_time(&h.at).unwrap_or(now),
                        collector_id: h.collector_id.clone(),
                        buffered_events: h.buffered_events,
                        forward_rate: h.forward_rate,
                        database_state: h.database_state.clone(),
                    });
                    while slot.history.len() > POLL_HISTORY {
                        slot.history.pop_front();
                    }
                    slot.last = Some(h);
                    slot.error = None;
                }
                Err(e) => slot.error = Some(e),
            }
        }
    }
}
