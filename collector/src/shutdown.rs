//! One shutdown signal for every long-running task of a process (as in mini-redis).
//!
//! [`Shutdown::new`] returns a [`Trigger`], held by whoever decides to stop (`serve` on
//! SIGTERM, `drain` on Ctrl-C), and a [`Shutdown`], cloned into every task. A task either
//! checks [`Shutdown::is_shutdown`] between steps or races a step against the signal with
//! [`Shutdown::or`], which abandons the step (drops its future) as soon as the signal fires.
//!
//! Invariant: once triggered, a `Shutdown` stays triggered — [`Shutdown::recv`] returns at
//! once for every clone, however many times it is awaited, and a dropped `Trigger` counts as
//! a trigger. So no task can miss the signal by having observed it once before (the hang of
//! issue #18 was a task waiting on a channel without racing it against the stop signal).

use std::future::Future;

use tokio::sync::watch;

/// The side that fires the signal.
#[derive(Debug)]
pub struct Trigger {
    tx: watch::Sender<bool>,
}

/// The side every task holds. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// A new, not yet fired signal.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> (Trigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (Trigger { tx }, Shutdown { rx })
    }

    /// Whether the signal has fired (or its trigger was dropped).
    pub fn is_shutdown(&self) -> bool {
        *self.rx.borrow() || self.rx.has_changed().is_err()
    }

    /// Completes once the signal has fired; at once if it already has.
    pub async fn recv(&mut self) {
        // An error means the trigger is gone: nobody can keep us running, so stop too.
        let _ = self.rx.wait_for(|fired| *fired).await;
    }

    /// Runs `step` unless the signal fires first: `Some(output)` when the step finished,
    /// `None` when it was abandoned. A signal already fired wins over a ready step.
    pub async fn or<F: Future>(&mut self, step: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            _ = self.recv() => None,
            out = step => Some(out),
        }
    }
}

impl Trigger {
    /// Fires the signal for every clone of the [`Shutdown`].
    pub fn fire(&self) {
        self.tx.send_replace(true);
    }
}

/// Registers SIGINT and SIGTERM handlers now; the returned future completes on either.
pub fn signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn stays_fired_for_every_clone_and_every_wait() {
        let (trigger, mut a) = Shutdown::new();
        let mut b = a.clone();
        assert!(!a.is_shutdown());
        trigger.fire();
        a.recv().await;
        a.recv().await;
        b.recv().await;
        assert!(a.is_shutdown() && b.is_shutdown());
    }

    #[tokio::test]
    async fn abandons_a_step_that_never_ends() {
        let (trigger, mut s) = Shutdown::new();
        let fire = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            trigger.fire();
        });
        let out = s.or(std::future::pending::<()>()).await;
        assert!(out.is_none());
        let _ = fire.await;
    }

    #[tokio::test]
    async fn a_dropped_trigger_counts_as_fired() {
        let (trigger, mut s) = Shutdown::new();
        drop(trigger);
        assert!(s.is_shutdown());
        s.recv().await;
        assert_eq!(s.or(async { 1 }).await, None);
    }

    #[tokio::test]
    async fn finished_steps_return_their_output() {
        let (_trigger, mut s) = Shutdown::new();
        assert_eq!(s.or(async { 7 }).await, Some(7));
    }
}
