//! Logging that can never cost a client its answer.
//!
//! - **Non-blocking and lossy.** Log lines go to a bounded in-memory queue that one thread
//!   writes out (`tracing-appender`); when the queue is full a line is dropped and counted,
//!   so a slow or stuck log sink never stalls a request.
//! - **Write errors are swallowed and counted.** A log on a full disk fails with `ENOSPC`.
//!   tracing-subscriber reports a failed write with `eprintln!`, which *panics* when stderr
//!   itself is what fails; the panic unwound through the request's task and the client got
//!   an empty reply instead of its 503 (issue #18). [`LossySink`] never returns an error.
//! - **Repeated errors are summarised.** [`Throttle`] lets the first occurrence of an error
//!   through, then at most one line per interval carrying the count of the ones it held
//!   back, so a failing disk under load writes a few lines a minute, not 93,000.
//!
//! Both counts are exported as metrics (`collector_log_lines_dropped_total`,
//! `collector_log_lines_suppressed_total`).
//!
//! Invariant: nothing in this module blocks or panics on the request path.

use std::{
    io::{IsTerminal, Write},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, OnceLock,
    },
    time::{Duration, Instant},
};

use prometheus_client::metrics::counter::Counter;
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines the log queue holds before it drops new ones.
const QUEUE_LINES: usize = 16_384;

/// Keeps the log writer thread alive; dropping it flushes the queue (at most about 1 s).
pub struct Guard(#[allow(dead_code)] WorkerGuard);

/// Installs the global subscriber writing to stderr, as `text` or `json`, filtered by
/// `RUST_LOG` (default `info`).
pub fn init(format: &str) -> Guard {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUE_LINES)
        .thread_name("collector-log")
        .finish(LossySink);
    let _ = QUEUE_DROPS.set(writer.error_counter());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .log_internal_errors(false);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    Guard(guard)
}

/// stderr, with every failed write counted and reported as written.
pub struct LossySink;

impl Write for LossySink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if std::io::stderr().write_all(buf).is_err() {
            SINK_DROPS.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

static SINK_DROPS: AtomicU64 = AtomicU64::new(0);
static QUEUE_DROPS: OnceLock<ErrorCounter> = OnceLock::new();

/// Log lines lost so far: the sink failed (full disk) or the queue was full.
pub fn dropped_lines() -> u64 {
    SINK_DROPS.load(Ordering::Relaxed)
        + QUEUE_DROPS
            .get()
            .map(|c| c.dropped_lines() as u64)
            .unwrap_or(0)
}

/// Log lines held back by a [`Throttle`] so far.
pub fn suppressed_lines() -> &'static Counter {
    static C: OnceLock<Counter> = OnceLock::new();
    C.get_or_init(Counter::default)
}

/// Lets one line of a kind through per interval (10 s).
///
/// ```
/// static APPEND_FAILED: collector::logging::Throttle = collector::logging::Throttle::new();
/// if let Some(suppressed) = APPEND_FAILED.check() {
///     tracing::error!(suppressed, "buffer append failed");
/// }
/// ```
pub struct Throttle {
    state: Mutex<ThrottleState>,
}

struct ThrottleState {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    const INTERVAL: Duration = Duration::from_secs(10);

    pub const fn new() -> Throttle {
        Throttle {
            state: Mutex::new(ThrottleState {
                last: None,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)` when this occurrence should be logged, `n` being how many were held back
    /// since the last line; `None` when it is held back (and counted).
    pub fn check(&self) -> Option<u64> {
        let now = Instant::now();
        let Ok(mut s) = self.state.lock() else {
            return Some(0);
        };
        match s.last {
            Some(t) if now.duration_since(t) < Self::INTERVAL => {
                s.suppressed += 1;
                suppressed_lines().inc();
                None
            }
            _ => {
                s.last = Some(now);
                Some(std::mem::take(&mut s.suppressed))
            }
        }
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_the_first_through_then_counts_the_rest() {
        let t = Throttle::new();
        assert_eq!(t.check(), Some(0));
        let before = suppressed_lines().get();
        for _ in 0..5 {
            assert_eq!(t.check(), None);
        }
        assert!(suppressed_lines().get() >= before + 5);
        if let Ok(mut s) = t.state.lock() {
            s.last = Instant::now().checked_sub(Throttle::INTERVAL);
        }
        assert_eq!(t.check(), Some(5), "the next line carries the count");
    }
}
