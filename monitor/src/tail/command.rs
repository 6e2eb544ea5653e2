//! `monitor tail`: the collectors' live tail as NDJSON on stdout, one event per line, oldest
//! first and the newest appended as they arrive (`--follow`); problems on stderr.
//!
//! Invariant: stdout carries only event lines (so it pipes into `jq`); every error is one
//! line on stderr naming the collector; a closed stdout (`| head`) ends the command with
//! success; it never touches the database.

use std::{
    io::{self, Write},
    time::Duration,
};

use thiserror::Error;
use time::OffsetDateTime;

use super::{feed::PAGE_LIMIT, Filter};
use crate::{
    model::{Tail, TailEvent},
    poll,
};

/// What `monitor tail` was given.
#[derive(Debug, Clone)]
pub struct Options {
    pub collectors: Vec<String>,
    pub admin_token: Option<String>,
    pub filter: String,
    /// Events printed first (the newest that match).
    pub limit: usize,
    pub follow: bool,
    pub interval: Duration,
}

/// Why `monitor tail` stopped with an error (usage errors and unreachable collectors are
/// exit codes, said on stderr, not errors).
#[derive(Debug, Error)]
pub enum TailError {
    #[error(transparent)]
    Collector(#[from] poll::BadCollector),
    /// An event that would not serialize.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// Writing to stdout failed (other than its reader going away).
    #[error(transparent)]
    Stdout(#[from] io::Error),
}

/// Exit code when nothing could be read.
const UNREACHABLE: i32 = 1;
/// Exit code for a usage error.
const USAGE: i32 = 2;

/// Runs `monitor tail`; returns the exit code.
pub async fn run(opts: Options) -> Result<i32, TailError> {
    if opts.collectors.is_empty() {
        eprintln!(
            "monitor tail: give at least one --collector ADDRESS (a collector's admin \
             listener, e.g. 127.0.0.1:9100)"
        );
        return Ok(USAGE);
    }
    poll::check_addresses(&opts.collectors)?;
    let filter = match Filter::parse(&opts.filter) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("monitor tail: --filter: {e}");
            return Ok(USAGE);
        }
    };
    let timeout = opts
        .interval
        .clamp(Duration::from_secs(2), Duration::from_secs(5));
    let token = opts.admin_token.as_deref();
    let mut tail = Tail::for_addresses(&opts.collectors);
    // The first page: with a filter, the whole ring, so that `limit` matches can be found.
    let first = if filter.is_empty() {
        opts.limit.clamp(1, PAGE_LIMIT)
    } else {
        PAGE_LIMIT
    };
    let results = poll::tail_all(&opts.collectors, &tail.afters(), token, first, timeout).await;
    let all_failed = results.iter().all(Result::is_err);
    let fresh = tail.apply(results, OffsetDateTime::now_utc());
    let mut reported = Reported::default();
    reported.report(&tail);
    let matching: Vec<&TailEvent> = fresh.iter().filter(|e| filter.matches(e)).collect();
    let skip = matching.len().saturating_sub(opts.limit);
    if !print(matching.into_iter().skip(skip))? {
        return Ok(0);
    }
    if !opts.follow {
        return Ok(if all_failed { UNREACHABLE } else { 0 });
    }
    let mut ticker = tokio::time::interval(opts.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => return Ok(0),
        }
        let results =
            poll::tail_all(&opts.collectors, &tail.afters(), token, PAGE_LIMIT, timeout).await;
        let fresh = tail.apply(results, OffsetDateTime::now_utc());
        reported.report(&tail);
        if !print(fresh.iter().filter(|e| filter.matches(e)))? {
            return Ok(0);
        }
    }
}

/// Writes one JSON line per event; `false` once stdout is closed.
fn print<'a>(events: impl Iterator<Item = &'a TailEvent>) -> Result<bool, TailError> {
    let mut out = io::stdout().lock();
    for e in events {
        let line = serde_json::to_string(e)?;
        let written = writeln!(out, "{line}").and_then(|()| out.flush());
        match written {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// What was last said on stderr about each source, so each change is said once.
#[derive(Default)]
struct Reported {
    errors: Vec<Option<String>>,
    missed: Vec<u64>,
}

impl Reported {
    fn report(&mut self, tail: &Tail) {
        let n = tail.sources.len();
        self.errors.resize(n, None);
        self.missed.resize(n, 0);
        for (i, s) in tail.sources.iter().enumerate() {
            if s.error != self.errors[i] {
                match &s.error {
                    Some(e) => eprintln!("monitor tail: {e}"),
                    None if self.errors[i].is_some() => {
                        eprintln!("monitor tail: {} answers again", s.address)
                    }
                    None => {}
                }
                self.errors[i] = s.error.clone();
            }
            if s.missed > self.missed[i] {
                eprintln!(
                    "monitor tail: {} events from {} were gone from its ring before they \
                     were read",
                    s.missed - self.missed[i],
                    s.collector_id.as_deref().unwrap_or(&s.address)
                );
                self.missed[i] = s.missed;
            }
        }
    }
}
