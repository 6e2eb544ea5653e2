//! The recent forwarding rate: events per second over the last ten seconds, for health,
//! heartbeats and metrics.

use std::time::Duration;

use crate::shutdown::Shutdown;

use super::Forwarder;

impl Forwarder {
    pub(super) async fn rate_meter(&self, mut stop: Shutdown) {
        let mut window = std::collections::VecDeque::from(vec![self.state.forwarded(); 11]);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            if stop.or(tick.tick()).await.is_none() {
                return;
            }
            window.pop_front();
            window.push_back(self.state.forwarded());
            let (first, last) = (
                window.front().copied().unwrap_or(0),
                window.back().copied().unwrap_or(0),
            );
            let rate = last.saturating_sub(first) as f64 / 10.0;
            self.state.set_rate(rate);
            self.metrics.forward_rate.set(rate);
        }
    }
}
