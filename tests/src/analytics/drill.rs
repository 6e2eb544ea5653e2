//! The funnel drill-down, computed independently: the sessions entering in `[from, to)`
//! (first step-1 event there, judged on all their events) that reached step k and not k+1, each with its last event and its person, newest first — the
//! README's funnel and person definitions applied to the generated events.
//!
//! Invariant: shares nothing with the monitor's SQL; ties are broken as the README states
//! (last event: latest time, then the larger event id; person: that of the latest event
//! with one, same ties; order: newest last event, then session id in byte order).

use std::collections::HashMap;

use serde::Deserialize;
use time::OffsetDateTime;

use super::{Dataset, Event};

/// `monitor query funnel --drop-off STEP --format json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DropOff {
    pub steps: Vec<String>,
    pub step: usize,
    pub total: i64,
    pub sessions: Vec<DropSession>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DropSession {
    pub session_id: String,
    pub person: Option<String>,
    pub last_event: String,
    /// RFC 3339 as printed (compare with [`crate::gen::rfc3339`] of the time).
    pub last_time: String,
}

/// One expected row: session id, person, last event name, its time.
pub type DropRow = (String, Option<String>, String, OffsetDateTime);

impl Dataset {
    /// Sessions of `[from, to)` that reached `steps[step]` (0-based) and not the next step;
    /// the newest `limit` of them, and how many there are.
    pub fn drop_off(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        steps: &[&str],
        step: usize,
        limit: usize,
    ) -> (i64, Vec<DropRow>) {
        let people = self.people();
        let mut by_session: HashMap<&str, Vec<&Event>> = HashMap::new();
        // Sessions are judged on all their events.
        for e in &self.events {
            if let Some(s) = e.session_id.as_deref() {
                by_session.entry(s).or_default().push(e);
            }
        }
        let mut out = Vec::new();
        for (sid, events) in &by_session {
            let first = |name: &str| {
                events
                    .iter()
                    .filter(|e| e.event_name == name)
                    .map(|e| e.event_time)
                    .min()
            };
            let times: Vec<Option<OffsetDateTime>> = steps.iter().map(|s| first(s)).collect();
            // The session belongs to the range where its first step-1 event lies.
            if !times[0].is_some_and(|t| t >= from && t < to) {
                continue;
            }
            // How far the session got: step 1 present, each next one strictly later.
            let mut reached = 0;
            let mut prev: Option<OffsetDateTime> = None;
            for t in &times {
                match (prev, *t) {
                    (None, Some(t)) if reached == 0 => prev = Some(t),
                    (Some(p), Some(t)) if t > p => prev = Some(t),
                    _ => break,
                }
                reached += 1;
            }
            if reached != step + 1 {
                continue;
            }
            let key = |e: &&&Event| (e.event_time, e.event_id);
            let Some(last) = events.iter().max_by_key(key) else {
                continue;
            };
            let person = events
                .iter()
                .filter(|e| people.of(e).is_some())
                .max_by_key(key)
                .and_then(|e| people.of(e));
            out.push((
                sid.to_string(),
                person,
                last.event_name.clone(),
                last.event_time,
            ));
        }
        out.sort_by(|a, b| {
            b.3.cmp(&a.3)
                .then_with(|| a.0.as_bytes().cmp(b.0.as_bytes()))
        });
        let total = out.len() as i64;
        out.truncate(limit);
        (total, out)
    }
}
