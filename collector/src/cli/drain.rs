//! `collector drain`: forwards a stopped collector's whole buffer with a progress bar and
//! exits when it is empty (in deferred maintenance, once the database's queue is applied
//! too).
//!
//! Invariant: as in the forwarder it runs ([`crate::forward`]), nothing leaves the buffer
//! before the database has committed it; an interrupt abandons the batches in flight, which
//! stay in the buffer.

use std::{sync::Arc, time::Duration};

use anyhow::{bail, Context as _};
use indicatif::ProgressBar;

use super::buffer::progress;
use crate::{
    buffer::Buffer,
    config::{Config, Maintenance},
    forward::{Forwarder, Until},
    metrics::Metrics,
    state::ForwardState,
};

/// `collector drain`: forwards the whole buffer with a progress bar, exits when it is empty.
pub async fn run(cfg: Config, show_progress: bool) -> anyhow::Result<()> {
    let url = cfg
        .database_url
        .clone()
        .context("no database URL: pass --database-url or set DATABASE_URL")?;
    let buffer = Buffer::open(&cfg.data_dir, &cfg.buffer)?;
    let start = buffer.stats();
    if start.events == 0 && start.pending_heartbeats == 0 {
        eprintln!("the buffer is empty");
        return Ok(());
    }
    let metrics = Metrics::new(buffer.flush_latency());
    let state = Arc::new(ForwardState::new(false));
    let forwarder = Forwarder::new(url, cfg.clone(), buffer.clone(), metrics, state.clone());
    let (trigger, stop) = crate::shutdown::Shutdown::new();
    let bar = if show_progress {
        progress(start.events, "draining events")
    } else {
        ProgressBar::hidden()
    };
    let deferred = cfg.forward.maintenance == Maintenance::Deferred;
    let mut run = tokio::spawn(forwarder.run_until(stop, Until::Empty));
    let watcher = {
        let bar = bar.clone();
        let state = state.clone();
        tokio::spawn(async move {
            loop {
                bar.set_position(state.forwarded());
                if deferred {
                    bar.set_message(format!(
                        "{} applied from the maintenance queue, ~{} queued",
                        state.applied(),
                        state.queued()
                    ));
                }
                if let Some(e) = state.last_error() {
                    if !state.database_up() {
                        bar.set_message(e);
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    tokio::select! {
        _ = crate::shutdown::signal()? => {
            trigger.fire();
            eprintln!("interrupted: batches in flight are abandoned and stay in the buffer");
            // Every database step races the signal, so this is prompt; the bound is a guard.
            if tokio::time::timeout(Duration::from_secs(5), &mut run).await.is_err() {
                run.abort();
            }
        }
        _ = &mut run => {}
    }
    watcher.abort();
    bar.finish_and_clear();
    buffer.flush()?;
    let end = buffer.stats();
    eprintln!(
        "forwarded {} events; {} left in the buffer; {} quarantined",
        state.forwarded(),
        end.events,
        state.quarantined()
    );
    if deferred {
        eprintln!(
            "deferred maintenance: applied {} queued events; ~{} still queued",
            state.applied(),
            state.queued()
        );
    }
    if end.events > 0 {
        bail!("the buffer is not empty ({} events left)", end.events);
    }
    Ok(())
}
