//! The seed's own format: events already in the shape of `user_events` (`event_name`,
//! `user_id`, `session_id`, …), posted to `/track` and `/v1/validate` (and to `/batch`,
//! `/v1/track`, `/v1/batch`, whose PostHog and Segment protocols leave seed-shaped events
//! untouched).
//!
//! Invariant: nothing to translate; validation is the whole protocol.

use serde_json::Value;

use super::{Protocol, Request};

pub struct Seed;

impl Protocol for Seed {
    fn name(&self) -> &'static str {
        "seed"
    }
    fn translate(&self, _messages: &mut [Value], _request: &Request<'_>) {}
}
