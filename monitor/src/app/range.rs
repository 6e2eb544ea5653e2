//! The time ranges the dashboard steps through with ←/→ (15m, 1h, 24h, 7d, 30d).
//!
//! Invariant: the ranges are ordered narrow to wide and stepping stops at both ends.

use std::time::Duration;

use time::OffsetDateTime;

use crate::model::Range;

/// The time ranges ←/→ step through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeRange {
    M15,
    H1,
    H24,
    D7,
    D30,
}

impl TimeRange {
    pub const ALL: [TimeRange; 5] = [
        TimeRange::M15,
        TimeRange::H1,
        TimeRange::H24,
        TimeRange::D7,
        TimeRange::D30,
    ];

    pub fn label(self) -> &'static str {
        match self {
            TimeRange::M15 => "15m",
            TimeRange::H1 => "1h",
            TimeRange::H24 => "24h",
            TimeRange::D7 => "7d",
            TimeRange::D30 => "30d",
        }
    }

    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            TimeRange::M15 => 15 * 60,
            TimeRange::H1 => 3600,
            TimeRange::H24 => 86_400,
            TimeRange::D7 => 7 * 86_400,
            TimeRange::D30 => 30 * 86_400,
        })
    }

    /// The query window ending at `now`.
    pub fn window(self, now: OffsetDateTime) -> Range {
        Range {
            from: now - self.duration(),
            to: now,
        }
    }

    fn position(self) -> usize {
        TimeRange::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    pub(crate) fn wider(self) -> TimeRange {
        TimeRange::ALL[(self.position() + 1).min(TimeRange::ALL.len() - 1)]
    }

    pub(crate) fn narrower(self) -> TimeRange {
        TimeRange::ALL[self.position().saturating_sub(1)]
    }
}
