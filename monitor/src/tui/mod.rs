//! The dashboard's runtime, above the state ([`crate::app`]) and the drawing
//! ([`crate::ui`]): the event loop draws the state, feeds it messages (keys, ticks, finished
//! fetches and polls, signals) and runs the work it asks for on other tasks ([`fetch`] for
//! the database, [`crate::poll`] for collectors); [`terminal`] owns the terminal;
//! [`bench`](mod@bench) runs the same fetch without a terminal.
//!
//! Invariant: the loop only awaits its message channel and a 250 ms ticker — never a query
//! or a poll — so keys, resizes and the clock are handled within a tick whatever the
//! database and the collectors do; and it always returns through the terminal guard.

mod bench;
mod fetch;
mod lookup;
mod terminal;

use std::{io, time::Duration};

use thiserror::Error;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::{
    analysis::Analysis,
    app::{resolve, update, App, Cmd, Config, FetchOutcome, Hits, Lookup, Msg, TimeRange},
    poll, ui,
};

pub use bench::{bench, bench_main, peak_rss_kib, BenchError};
use fetch::FetchRequest;

/// What the dashboard is started with (from the command line).
#[derive(Debug, Clone)]
pub struct Options {
    pub database_url: Option<String>,
    /// Collectors' admin addresses, polled directly.
    pub collectors: Vec<String>,
    pub admin_token: Option<String>,
    pub refresh: Duration,
    pub steps: Vec<String>,
    /// On a standby, a replay lag above this gets a banner.
    pub max_replica_lag: Duration,
    /// The analyses' filter to start with (`--where`).
    pub filter: crate::model::Filter,
}

/// Why the dashboard stopped with an error (or never started).
#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Collector(#[from] poll::BadCollector),
    #[error("cannot set up the terminal")]
    Terminal(#[source] io::Error),
    /// Drawing a frame failed (the terminal went away).
    #[error(transparent)]
    Draw(io::Error),
}

/// How often the clock ticks (countdowns, ages, slow-query notices).
const TICK: Duration = Duration::from_millis(250);

/// Runs the dashboard until `q`, Ctrl-C or a terminating signal; returns the exit code.
pub async fn run(source: Options) -> Result<i32, RunError> {
    let (refresh, steps) = (source.refresh, source.steps.clone());
    if source.database_url.is_none() && source.collectors.is_empty() {
        eprintln!(
            "monitor: nothing to show: give --database-url (or DATABASE_URL) and/or \
             --collector ADDRESS"
        );
        return Ok(2);
    }
    poll::check_addresses(&source.collectors)?;

    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let fetcher = source
        .database_url
        .clone()
        .map(|url| fetch::spawn_worker(url, tx.clone()));
    let lookups = source
        .database_url
        .clone()
        .map(|url| lookup::spawn_worker(url, tx.clone()));
    let workers = Workers {
        fetcher,
        lookups,
        to_ui: tx.clone(),
        collectors: source.collectors.clone(),
        admin_token: source.admin_token.clone(),
        poll_timeout: poll_timeout(refresh),
    };
    let mut app = App::new(
        Config {
            refresh,
            steps,
            collectors: source.collectors.clone(),
            has_database: workers.fetcher.is_some(),
            range: TimeRange::H1,
            tabs: Analysis::ALL.to_vec(),
            max_replica_lag: source.max_replica_lag,
        },
        OffsetDateTime::now_utc(),
    );
    app.filter = source.filter.clone();

    ui::theme::set_color(ui::theme::color_from_env(
        std::env::var("NO_COLOR").ok().as_deref(),
    ));
    let mut guard = terminal::enter().map_err(RunError::Terminal)?;
    let input = terminal::Input::spawn(tx.clone());
    let mut signals = Signals::new();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

    let result: Result<(), RunError> = async {
        let mut hits = Hits::default();
        loop {
            guard
                .terminal
                .draw(|frame| hits = ui::draw_with_hits(frame, &app))
                .map_err(RunError::Draw)?;
            let first = tokio::select! {
                Some(msg) = rx.recv() => msg,
                _ = ticker.tick() => Msg::Tick(OffsetDateTime::now_utc()),
                _ = signals.recv() => Msg::Quit,
            };
            let mut pending = vec![first];
            while let Ok(msg) = rx.try_recv() {
                pending.push(msg);
            }
            for msg in pending {
                let msg = match msg {
                    Msg::Mouse(event) => match resolve(event, &hits) {
                        Some(m) => m,
                        None => continue,
                    },
                    other => other,
                };
                for cmd in update(&mut app, msg) {
                    workers.perform(cmd);
                }
                if app.quit {
                    return Ok(());
                }
            }
        }
    }
    .await;

    input.stop();
    drop(guard);
    result.map(|()| 0)
}

/// Where the state's commands are performed, off the UI task.
struct Workers {
    fetcher: Option<mpsc::Sender<FetchRequest>>,
    lookups: Option<mpsc::Sender<Lookup>>,
    to_ui: mpsc::UnboundedSender<Msg>,
    collectors: Vec<String>,
    admin_token: Option<String>,
    poll_timeout: Duration,
}

impl Workers {
    /// Starts `cmd` without waiting for it; its answer comes back as a message.
    fn perform(&self, cmd: Cmd) {
        match cmd {
            Cmd::Fetch {
                range,
                window,
                steps,
                filter,
                sections,
            } => {
                let sent = self.fetcher.as_ref().is_some_and(|f| {
                    f.try_send(FetchRequest {
                        range,
                        window,
                        steps,
                        filter,
                        sections,
                    })
                    .is_ok()
                });
                if !sent {
                    let _ = self.to_ui.send(Msg::Fetched(Box::new(FetchOutcome {
                        range,
                        result: Err("the fetch worker stopped".into()),
                        done: true,
                    })));
                }
            }
            Cmd::Lookup(l) => {
                let refused = match self.lookups.as_ref() {
                    Some(w) => w.try_send(l).err().map(|e| match e {
                        mpsc::error::TrySendError::Full(l) => (l, "busy: try again"),
                        mpsc::error::TrySendError::Closed(l) => (l, "the lookup worker stopped"),
                    }),
                    None => Some((l, "no database configured")),
                };
                if let Some((l, why)) = refused {
                    let answer = lookup::failed(l, why.to_string());
                    let _ = self.to_ui.send(Msg::Looked(Box::new(answer)));
                }
            }
            Cmd::Export { file_name, csv } => {
                lookup::spawn_export(file_name, csv, self.to_ui.clone())
            }
            Cmd::Poll => spawn_polls(
                self.collectors.clone(),
                self.admin_token.clone(),
                self.poll_timeout,
                self.to_ui.clone(),
            ),
            Cmd::Tail { afters, limit } => {
                let (addresses, token) = (self.collectors.clone(), self.admin_token.clone());
                let (timeout, to_ui) = (self.poll_timeout, self.to_ui.clone());
                let n = addresses.len();
                tokio::spawn(async move {
                    let polls = tokio::spawn(terminal::isolated(async move {
                        poll::tail_all(&addresses, &afters, token.as_deref(), limit, timeout).await
                    }));
                    let results = polls.await.unwrap_or_else(|_| {
                        vec![Err("internal error while reading the tail".to_string()); n]
                    });
                    let _ = to_ui.send(Msg::Tailed(results));
                });
            }
        }
    }
}

/// A poll must answer well within a refresh: 1 to 5 seconds.
fn poll_timeout(refresh: Duration) -> Duration {
    refresh.clamp(Duration::from_secs(1), Duration::from_secs(5))
}

fn spawn_polls(
    addresses: Vec<String>,
    token: Option<String>,
    timeout: Duration,
    to_ui: mpsc::UnboundedSender<Msg>,
) {
    tokio::spawn(async move {
        let n = addresses.len();
        let polls = tokio::spawn(terminal::isolated(async move {
            poll::poll_all(&addresses, token.as_deref(), timeout).await
        }));
        let results = polls
            .await
            .unwrap_or_else(|_| vec![Err("internal error while polling".to_string()); n]);
        let _ = to_ui.send(Msg::Polled(results));
    });
}

/// SIGTERM, SIGHUP and SIGINT end the dashboard like `q` (in raw mode Ctrl-C is a key).
struct Signals {
    #[cfg(unix)]
    streams: Vec<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let streams = [
                SignalKind::terminate(),
                SignalKind::hangup(),
                SignalKind::interrupt(),
            ]
            .into_iter()
            .filter_map(|k| signal(k).ok())
            .collect();
            Signals { streams }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            if self.streams.is_empty() {
                return std::future::pending().await;
            }
            let waits = self.streams.iter_mut().map(|s| Box::pin(s.recv()));
            let _ = futures_util::future::select_all(waits).await;
        }
        #[cfg(not(unix))]
        {
            std::future::pending::<()>().await
        }
    }
}
