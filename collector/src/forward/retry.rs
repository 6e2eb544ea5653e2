//! How long the forward stage waits before trying the database again.
//!
//! The delays come from `backon`'s exponential backoff; what is ours is the policy per
//! class of error ([`ErrorClass`], from the SQLSTATE): a transient error steps up from
//! `forward.retry_initial_ms`, a configuration error waits the maximum at once (an operator
//! must act; hammering the server helps nobody). Data errors are not retried here: the
//! batch is split instead (see [`super`]).
//!
//! Invariant: every delay lies in [step/2, step) for a step that doubles from the initial
//! delay up to `forward.retry_max_ms`, so a fleet that lost its database together does not
//! reconnect in lockstep.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

use crate::database::ErrorClass;

/// Capped exponential backoff with jitter, reset after every success.
pub struct RetryLogic {
    builder: ExponentialBuilder,
    steps: ExponentialBackoff,
    max: Duration,
}

impl RetryLogic {
    pub fn new(initial: Duration, max: Duration) -> RetryLogic {
        // backon adds a jitter in [0, d) to a delay d: half steps give [step/2, step).
        let builder = ExponentialBuilder::default()
            .with_min_delay(initial / 2)
            .with_max_delay(max / 2)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        RetryLogic {
            steps: builder.build(),
            builder,
            max,
        }
    }

    /// Back to the initial delay (after a success).
    pub fn reset(&mut self) {
        self.steps = self.builder.build();
    }

    /// The delay before the next attempt after an error of `class`.
    pub fn delay(&mut self, class: ErrorClass) -> Duration {
        if class == ErrorClass::Config {
            // Jump to the cap and stay there until a success resets.
            while self.steps.next().is_some_and(|d| d < self.max / 2) {}
        }
        self.steps.next().unwrap_or(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_double_up_to_the_cap_with_jitter_below_each_step() {
        let (initial, max) = (Duration::from_millis(100), Duration::from_millis(1600));
        let mut r = RetryLogic::new(initial, max);
        let mut step = initial;
        for _ in 0..8 {
            let d = r.delay(ErrorClass::Transient);
            assert!(
                d >= step / 2 && d < step,
                "{d:?} outside [{:?}, {step:?})",
                step / 2
            );
            step = (step * 2).min(max);
        }
        r.reset();
        let d = r.delay(ErrorClass::Transient);
        assert!(d < initial, "reset: {d:?}");
    }

    #[test]
    fn a_configuration_error_waits_near_the_cap_at_once() {
        let max = Duration::from_secs(30);
        let mut r = RetryLogic::new(Duration::from_millis(200), max);
        let d = r.delay(ErrorClass::Config);
        assert!(d >= max / 2 && d < max, "{d:?}");
    }
}
