//! The dashboard's event loop: draws the state, feeds it messages (keys, ticks, finished
//! fetches and polls, signals) and runs the work it asks for on other tasks; and the
//! refresh benchmark, which runs the same fetch without a terminal.
//!
//! Invariant: the loop only awaits its message channel and a 250 ms ticker — never a query
//! or a poll — so keys, resizes and the clock are handled within a tick whatever the
//! database and the collectors do; and it always returns through the terminal guard.

use std::time::Duration;

use anyhow::Context;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::{cli::TuiArgs, poll, ui};

use super::{
    fetch::{self, FetchRequest, Fetched},
    terminal, update, App, Cmd, Config, FetchOutcome, Msg, Section, TimeRange,
};

/// How often the clock ticks (countdowns, ages, slow-query notices).
const TICK: Duration = Duration::from_millis(250);

/// Runs the dashboard until `q`, Ctrl-C or a terminating signal; returns the exit code.
pub async fn run(args: TuiArgs) -> anyhow::Result<i32> {
    // `..`: flags that only matter elsewhere (a benchmark switch) may be added.
    let TuiArgs {
        source,
        refresh,
        steps,
        ..
    } = args;
    if source.database_url.is_none() && source.collectors.is_empty() {
        eprintln!(
            "monitor: nothing to show: give --database-url (or DATABASE_URL) and/or \
             --collector ADDRESS"
        );
        return Ok(2);
    }
    for address in &source.collectors {
        poll::parse_address(address).with_context(|| format!("--collector {address:?}"))?;
    }

    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let fetcher = source
        .database_url
        .clone()
        .map(|url| fetch::spawn_worker(url, tx.clone()));
    let poll_timeout = poll_timeout(refresh);
    let mut app = App::new(
        Config {
            refresh,
            steps,
            collectors: source.collectors.clone(),
            has_database: fetcher.is_some(),
            range: TimeRange::H1,
        },
        OffsetDateTime::now_utc(),
    );

    let mut guard = terminal::enter().context("cannot set up the terminal")?;
    let input = terminal::Input::spawn(tx.clone());
    let mut signals = Signals::new();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

    let result: anyhow::Result<()> = async {
        loop {
            guard.terminal.draw(|frame| ui::draw(frame, &app))?;
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
                for cmd in update(&mut app, msg) {
                    match cmd {
                        Cmd::Fetch {
                            range,
                            window,
                            steps,
                            sections,
                        } => {
                            let sent = fetcher.as_ref().is_some_and(|f| {
                                f.try_send(FetchRequest {
                                    range,
                                    window,
                                    steps,
                                    sections,
                                })
                                .is_ok()
                            });
                            if !sent {
                                let _ = tx.send(Msg::Fetched(Box::new(FetchOutcome {
                                    range,
                                    result: Err("the fetch worker stopped".into()),
                                    done: true,
                                })));
                            }
                        }
                        Cmd::Poll => spawn_polls(
                            source.collectors.clone(),
                            source.admin_token.clone(),
                            poll_timeout,
                            tx.clone(),
                        ),
                    }
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

/// Runs `refreshes` refreshes for `range` back from now, as the dashboard does, on one
/// connection; returns each one's result (with per-query and total times).
pub async fn bench(
    url: &str,
    range: TimeRange,
    steps: &[String],
    refreshes: usize,
) -> anyhow::Result<Vec<Fetched>> {
    let client = fetch::connect(url).await.map_err(anyhow::Error::msg)?;
    let mut out = Vec::with_capacity(refreshes);
    for _ in 0..refreshes {
        let window = range.window(OffsetDateTime::now_utc());
        let fetched = fetch::fetch_snapshot(&client, window, steps, &Section::ALL).await;
        out.push(fetched);
    }
    Ok(out)
}

/// Peak resident memory of this process (VmHWM), in KiB, where /proc tells it.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `monitor --bench N [--bench-range R]` (hidden flags, used by the `bench` command): N
/// refreshes of every analysis for range R without a terminal, one JSON line each, then
/// the peak resident memory.
pub async fn bench_main(args: TuiArgs, refreshes: usize) -> anyhow::Result<i32> {
    let url = args
        .source
        .database_url
        .context("--bench needs --database-url")?;
    let range = TimeRange::ALL
        .into_iter()
        .find(|r| r.label() == args.bench_range)
        .with_context(|| {
            format!(
                "--bench-range {:?}: use 15m, 1h, 24h, 7d or 30d",
                args.bench_range
            )
        })?;
    let runs = bench(&url, range, &args.steps, refreshes).await?;
    for (i, r) in runs.iter().enumerate() {
        let per_query: serde_json::Map<String, serde_json::Value> = r
            .timings
            .iter()
            .map(|(s, d)| {
                (
                    s.name().to_string(),
                    serde_json::json!(d.as_secs_f64() * 1e3),
                )
            })
            .collect();
        let errors: Vec<String> = r
            .errors
            .iter()
            .map(|(s, e)| format!("{}: {e}", s.name()))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "refresh": i + 1,
                "total_ms": r.total.as_secs_f64() * 1e3,
                "query_ms": per_query,
                "errors": errors,
            })
        );
    }
    println!("{}", serde_json::json!({ "peak_rss_kib": peak_rss_kib() }));
    Ok(0)
}
