//! Merging the collectors' tail pages into the live tail ([`Tail`]): one cursor per
//! `--collector` address, new events merged across collectors by the time they were
//! received, a bounded history newest first, and the arrival rate.
//!
//! Invariants: an event is taken once (a page only brings events after its source's cursor,
//! and a new collector epoch restarts the cursor instead of trusting old numbers); the
//! history holds at most [`MAX_EVENTS`]; time only comes in as an argument (no clock), so
//! the same pages always give the same state.

use std::time::Duration;

use time::OffsetDateTime;

use super::Filter;
use crate::model::{Tail, TailEvent, TailPage, TailSource};

/// Events the live tail keeps (newest first).
pub const MAX_EVENTS: usize = 2000;
/// The rate is measured over this window.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Events asked of a collector per poll.
pub const PAGE_LIMIT: usize = 500;

fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

impl Tail {
    /// A tail of `addresses`, nothing polled yet.
    pub fn for_addresses(addresses: &[String]) -> Tail {
        Tail {
            sources: addresses
                .iter()
                .map(|a| TailSource {
                    address: a.clone(),
                    ..TailSource::default()
                })
                .collect(),
            ..Tail::default()
        }
    }

    /// What to ask each source for: events after its cursor (None: the newest ones).
    pub fn afters(&self) -> Vec<Option<u64>> {
        self.sources.iter().map(|s| s.cursor).collect()
    }

    /// Applies one round of polls (one result per source, in order) answered at `now`;
    /// returns the new events, oldest first.
    pub fn apply(
        &mut self,
        results: Vec<Result<TailPage, String>>,
        now: OffsetDateTime,
    ) -> Vec<TailEvent> {
        let now_ms = millis(now);
        let mut fresh = Vec::new();
        let mut counting = false;
        for (source, result) in self.sources.iter_mut().zip(results) {
            let page = match result {
                Ok(p) => p,
                Err(e) => {
                    source.error = Some(e);
                    continue;
                }
            };
            source.error = None;
            source.collector_id = Some(page.collector_id.clone());
            if source.epoch.is_some_and(|e| e != page.epoch) {
                // The collector restarted: its numbers start again. Read its ring from the
                // start next time; this page was cut by an old cursor.
                source.epoch = Some(page.epoch);
                source.cursor = Some(0);
                continue;
            }
            // The first answer is history: shown, not counted as arrivals.
            let history = source.cursor.is_none();
            counting |= !history;
            source.epoch = Some(page.epoch);
            source.missed += page.missed;
            let after = source.cursor.unwrap_or(0);
            let mut cursor = source.cursor.unwrap_or(page.last_seq);
            for mut e in page.events.into_iter().filter(|e| e.seq > after) {
                cursor = cursor.max(e.seq);
                e.collector_id = page.collector_id.clone();
                e.arrived_ms = (!history).then_some(now_ms);
                fresh.push(e);
            }
            source.cursor = Some(cursor);
        }
        fresh.sort_by(|a, b| {
            (a.received_at, &a.collector_id, a.seq).cmp(&(b.received_at, &b.collector_id, b.seq))
        });
        let arrived = fresh.iter().filter(|e| e.arrived_ms.is_some()).count() as u64;
        if counting {
            self.counting_since_ms.get_or_insert(now_ms);
            self.arrivals.push((now_ms, arrived));
        }
        let window = RATE_WINDOW.as_millis() as i64;
        self.arrivals.retain(|(at, _)| *at > now_ms - window);
        let mut events: Vec<TailEvent> = fresh.iter().rev().cloned().collect();
        events.append(&mut self.events);
        events.truncate(MAX_EVENTS);
        self.events = events;
        fresh
    }

    /// Seconds the rate is averaged over at `now`: the window, or less just after start.
    fn rate_span(&self, now: OffsetDateTime) -> Option<f64> {
        let since = self.counting_since_ms?;
        let span = (millis(now) - since).clamp(1000, RATE_WINDOW.as_millis() as i64);
        Some(span as f64 / 1000.0)
    }

    /// Events per second arriving from every source over the last [`RATE_WINDOW`] (None
    /// before a second round of polls).
    pub fn rate(&self, now: OffsetDateTime) -> Option<f64> {
        let span = self.rate_span(now)?;
        let from = millis(now) - (span * 1000.0) as i64;
        let n: u64 = self
            .arrivals
            .iter()
            .filter(|(at, _)| *at >= from)
            .map(|(_, n)| n)
            .sum();
        Some(n as f64 / span)
    }

    /// Like [`Tail::rate`], counting only events `filter` matches (from the history kept,
    /// so at most [`MAX_EVENTS`] in the window).
    pub fn matching_rate(&self, filter: &Filter, now: OffsetDateTime) -> Option<f64> {
        let span = self.rate_span(now)?;
        let from = millis(now) - (span * 1000.0) as i64;
        let n = self
            .events
            .iter()
            .take_while(|e| e.arrived_ms.is_none_or(|a| a >= from))
            .filter(|e| e.arrived_ms.is_some_and(|a| a >= from) && filter.matches(e))
            .count();
        Some(n as f64 / span)
    }

    /// Events lost to the collectors' ring bounds since the tail started.
    pub fn missed(&self) -> u64 {
        self.sources.iter().map(|s| s.missed).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2025-03-01 12:00:00 UTC);

    fn ev(seq: u64, secs: i64, name: &str) -> TailEvent {
        TailEvent {
            seq,
            received_at: T0 + time::Duration::seconds(secs),
            event_name: name.into(),
            ..TailEvent::default()
        }
    }

    fn page(id: &str, epoch: i64, last: u64, events: Vec<TailEvent>) -> TailPage {
        TailPage {
            collector_id: id.into(),
            epoch,
            first_seq: events.first().map_or(0, |e| e.seq),
            last_seq: last,
            missed: 0,
            events,
        }
    }

    #[test]
    fn merges_collectors_newest_first_and_takes_each_event_once() {
        let mut t = Tail::for_addresses(&["a:1".into(), "b:1".into()]);
        assert_eq!(t.afters(), [None, None]);
        let fresh = t.apply(
            vec![
                Ok(page("edge-a", 1, 2, vec![ev(1, 0, "a1"), ev(2, 3, "a2")])),
                Ok(page("edge-b", 9, 1, vec![ev(1, 1, "b1")])),
            ],
            T0 + time::Duration::seconds(4),
        );
        assert_eq!(fresh.len(), 3);
        let names: Vec<&str> = t.events.iter().map(|e| e.event_name.as_str()).collect();
        assert_eq!(names, ["a2", "b1", "a1"]);
        assert_eq!(t.events[1].collector_id, "edge-b");
        assert_eq!(t.afters(), [Some(2), Some(1)]);
        assert_eq!(t.rate(T0), None, "history is not a rate");

        // The next round: b is down, a sends one new event (and a repeat is ignored).
        let now = T0 + time::Duration::seconds(5);
        t.apply(
            vec![
                Ok(page("edge-a", 1, 3, vec![ev(2, 3, "a2"), ev(3, 5, "a3")])),
                Err("cannot connect".into()),
            ],
            now,
        );
        assert_eq!(t.events[0].event_name, "a3");
        assert_eq!(t.events.len(), 4);
        assert_eq!(t.sources[1].error.as_deref(), Some("cannot connect"));
        assert_eq!(t.rate(now), Some(1.0));
        let f = Filter::parse("a3").unwrap_or_default();
        assert_eq!(t.matching_rate(&f, now), Some(1.0));

        // a restarted (new epoch): the cursor starts again from 0.
        t.apply(
            vec![
                Ok(page("edge-a", 2, 1, vec![ev(1, 6, "new")])),
                Err("x".into()),
            ],
            now,
        );
        assert_eq!(t.afters()[0], Some(0));
        t.apply(
            vec![
                Ok(page("edge-a", 2, 1, vec![ev(1, 6, "new")])),
                Err("x".into()),
            ],
            now,
        );
        assert_eq!(t.events[0].event_name, "new");
        assert_eq!(t.afters()[0], Some(1));
    }

    #[test]
    fn history_is_bounded() {
        let mut t = Tail::for_addresses(&["a:1".into()]);
        for round in 0..5u64 {
            let events = (0..1000)
                .map(|i| ev(round * 1000 + i + 1, 0, "x"))
                .collect();
            t.apply(vec![Ok(page("a", 1, (round + 1) * 1000, events))], T0);
        }
        assert_eq!(t.events.len(), MAX_EVENTS);
        assert_eq!(t.events[0].seq, 5000);
    }
}
