//! Where a collector's memory goes, read from `/proc/PID/smaps_rollup`: resident bytes
//! split into anonymous (heap, stacks: what the process allocated) and file-backed (its
//! binary and libraries), sampled on a thread so that the split at the peak is known, not
//! only the peak (VmHWM).
//!
//! Invariant: the sampler only reads `/proc`; a process that is gone ends it.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::Duration,
};

/// Resident memory of a process, KiB.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rollup {
    pub rss: u64,
    pub anon: u64,
    pub threads: u64,
}

impl Rollup {
    /// The process' resident memory now; `None` once it is gone.
    pub(crate) fn of(pid: u32) -> Option<Rollup> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| d.count() as u64)
            .unwrap_or(0);
        Some(Rollup {
            rss: field("Rss:"),
            anon: field("Anonymous:"),
            threads,
        })
    }

    /// "R MiB (A MiB anonymous, T threads)".
    pub(crate) fn describe(&self) -> String {
        format!(
            "{:.1} MiB ({:.1} MiB anonymous, {:.1} MiB file-backed; {} threads)",
            self.rss as f64 / 1024.0,
            self.anon as f64 / 1024.0,
            self.rss.saturating_sub(self.anon) as f64 / 1024.0,
            self.threads
        )
    }
}

/// Samples a process every 50 ms and keeps the sample with the largest RSS.
pub(crate) struct Sampler {
    stop: Arc<AtomicBool>,
    peak: Arc<Mutex<Rollup>>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    pub(crate) fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(Mutex::new(Rollup::default()));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Some(now) = Rollup::of(pid) else { return };
                if let Ok(mut peak) = p.lock() {
                    if now.rss > peak.rss {
                        *peak = now;
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Sampler {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    /// Stops sampling; the largest sample seen.
    pub(crate) fn finish(mut self) -> Rollup {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.lock().map(|p| *p).unwrap_or_default()
    }
}
