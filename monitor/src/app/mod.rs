//! The dashboard's state and its update logic: which view and time range, paused or not,
//! the latest data with the database's status and retry schedule, and the direct polls of
//! collectors.
//!
//! Model/update/view split (as in gitui, bottom, oha): [`App`] is the state, [`update`] is
//! the only function that changes it — from a [`Msg`]: a key, a clock tick, a finished fetch
//! or round of polls — and returns the [`Cmd`]s to run (fetch, poll);
//! [`crate::ui::draw_with_hits`] draws it without changing it; the runtime ([`crate::tui`])
//! owns the terminal and the tasks and sits above both.
//!
//! Invariant: `update` never blocks, does no I/O and never reads the clock (time only comes
//! in with [`Msg::Tick`]), and at most one database fetch and one round of polls are in
//! flight at a time; so the UI stays live whatever the database does, and any state can be
//! built and drawn in tests.

mod drill;
mod export;
mod filter;
mod fleet;
mod keys;
pub mod lists;
mod mouse;
mod msg;
mod range;
mod schedule;
mod tail;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_filter;
#[cfg(test)]
mod tests_habits;
#[cfg(test)]
mod tests_tail;

use std::{collections::BTreeMap, collections::VecDeque, time::Duration};

use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::{
    analysis::{Analysis, Snapshot},
    model::{ReplicaStatus, Tail},
    tail::Filter,
};

pub use drill::{Drill, Loadable, Looked, Lookup, PersonPane};
pub use export::{file_name, Notice, NOTICE_FOR};
pub use filter::filtered;
pub use fleet::{CollectorLine, PollSlot};
pub use lists::{arrange, Column, Entry, Key, List, ListState, Sort};
pub use mouse::{resolve, Hits, Target};
pub use msg::{Cmd, FetchOutcome, Fetched, Msg};
pub use range::TimeRange;
pub use schedule::retry_delay;
pub use tail::TAIL_INTERVAL;

/// Collectors send a heartbeat every 10 s by default.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
/// A collector whose latest heartbeat or poll is older than this is shown as stale
/// (three missed heartbeats).
pub const STALE_AFTER: Duration = Duration::from_secs(30);
/// The longest wait between two attempts to reach a failing database.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);
/// A refresh still running after this long is reported as slow in the banner.
pub const SLOW_AFTER: Duration = Duration::from_secs(3);
/// Sections not on screen are refreshed at most this often.
pub const BACKGROUND_REFRESH: Duration = Duration::from_secs(30);
/// A standby whose data is further behind than this gets a banner (`--max-replica-lag`).
pub const DEFAULT_MAX_REPLICA_LAG: Duration = Duration::from_secs(30);
/// Samples of direct polls kept per collector for the detail view.
pub const POLL_HISTORY: usize = 600;

/// What the dashboard was started with.
#[derive(Debug, Clone)]
pub struct Config {
    pub refresh: Duration,
    pub steps: Vec<String>,
    /// Collectors' admin addresses, polled directly.
    pub collectors: Vec<String>,
    pub has_database: bool,
    pub range: TimeRange,
    /// The tabs shown, in order (normally every analysis of the registry).
    pub tabs: Vec<Analysis>,
    /// On a standby, a replay lag above this is shown in the banner.
    pub max_replica_lag: Duration,
}

/// The database side, as the banner tells it.
#[derive(Debug, Clone, PartialEq)]
pub enum DbStatus {
    /// No `--database-url`: only direct polls.
    NotConfigured,
    /// No answer yet.
    Connecting,
    Ok,
    /// The last attempt failed (connection, timeout); `failures` in a row.
    Failed {
        error: String,
        failures: u32,
    },
}

/// The whole state of the dashboard.
#[derive(Debug, Clone)]
pub struct App {
    /// The tab on screen.
    pub view: Analysis,
    /// The tabs shown, in order; the analyses fetched.
    pub tabs: Vec<Analysis>,
    pub range: TimeRange,
    pub paused: bool,
    pub help: bool,
    pub quit: bool,
    /// The collector detail view is open (Collectors tab).
    pub detail: bool,
    /// Retention cells show user counts instead of rates.
    pub retention_counts: bool,
    /// The last clock tick.
    pub now: OffsetDateTime,
    pub refresh: Duration,
    pub steps: Vec<String>,
    /// The latest data of each section (kept when a later refresh of it fails).
    pub data: Snapshot,
    /// The range `data` was fetched for, and when.
    pub data_range: Option<TimeRange>,
    pub data_at: Option<OffsetDateTime>,
    /// Sections whose last query failed, with the error.
    pub section_errors: BTreeMap<Analysis, String>,
    /// Total query time of the last successful refresh.
    pub last_took: Option<Duration>,
    pub db: DbStatus,
    /// When the fetch in flight started.
    pub fetch_started: Option<OffsetDateTime>,
    /// Sections of the fetch in flight still to come, in order, and when the first of
    /// them started.
    pub pending: Vec<Analysis>,
    pub section_started: Option<OffsetDateTime>,
    /// When each section was last fetched (answered or failed), and for which range.
    pub section_at: BTreeMap<Analysis, (OffsetDateTime, TimeRange)>,
    pub next_fetch: Option<OffsetDateTime>,
    pub(crate) force_fetch: bool,
    pub polls: Vec<PollSlot>,
    pub poll_started: Option<OffsetDateTime>,
    pub next_poll: Option<OffsetDateTime>,
    pub(crate) force_poll: bool,
    /// The selected row of each view (index by [`Analysis::index`]).
    pub selected: [usize; Analysis::ALL.len()],
    /// The server's replication status as of the last refresh (None: not read yet).
    pub replica: Option<ReplicaStatus>,
    pub max_replica_lag: Duration,
    /// The round of live-tail polls in flight, and when the next is due.
    pub tail_started: Option<OffsetDateTime>,
    pub next_tail: Option<OffsetDateTime>,
    /// Which tail events the Tail view shows.
    pub tail_filter: Filter,
    /// The text input at the bottom (`/`), while it is open.
    pub input: Option<Input>,
    /// Each list's search and sort (index by [`List::index`]).
    pub lists: [ListState; List::ALL.len()],
    /// The funnel drill-down, while open.
    pub drill: Option<Drill>,
    /// The status line's message (an export's path, an error).
    pub notice: Option<Notice>,
    /// Which events the analyses are computed over (`--where`, `f`; empty: all).
    pub filter: crate::model::Filter,
    /// The fetch in flight was asked for another filter: its answers are dropped.
    pub(crate) stale_fetch: bool,
}

/// The one-line text input `/` opens: the Tail view's filter, or a list's search.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Input {
    pub text: String,
    /// Why the last Enter was refused.
    pub error: Option<String>,
    /// The list it searches (typing filters it at once); None: the Tail's filter.
    pub search: Option<List>,
    /// The analyses' filter prompt (`f`): Enter adds the `field=value` typed.
    pub filter: bool,
}

pub(crate) fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

pub(crate) fn seconds_between(later: OffsetDateTime, earlier: OffsetDateTime) -> f64 {
    (later - earlier).as_seconds_f64().max(0.0)
}

impl App {
    pub fn new(config: Config, now: OffsetDateTime) -> App {
        App {
            view: config.tabs.first().copied().unwrap_or(Analysis::Live),
            tabs: config.tabs,
            range: config.range,
            paused: false,
            help: false,
            quit: false,
            detail: false,
            retention_counts: false,
            now,
            refresh: config.refresh.max(Duration::from_millis(100)),
            steps: config.steps,
            data: Snapshot {
                tail: Some(Tail::for_addresses(&config.collectors)),
                ..Snapshot::default()
            },
            data_range: None,
            data_at: None,
            section_errors: BTreeMap::new(),
            last_took: None,
            db: if config.has_database {
                DbStatus::Connecting
            } else {
                DbStatus::NotConfigured
            },
            fetch_started: None,
            pending: Vec::new(),
            section_started: None,
            section_at: BTreeMap::new(),
            next_fetch: None,
            force_fetch: false,
            polls: config
                .collectors
                .into_iter()
                .map(|address| PollSlot {
                    address,
                    last: None,
                    error: None,
                    history: VecDeque::new(),
                })
                .collect(),
            poll_started: None,
            next_poll: None,
            force_poll: false,
            selected: [0; Analysis::ALL.len()],
            replica: None,
            max_replica_lag: config.max_replica_lag,
            tail_started: None,
            next_tail: None,
            tail_filter: Filter::default(),
            input: None,
            lists: Default::default(),
            drill: None,
            notice: None,
            filter: crate::model::Filter::default(),
            stale_fetch: false,
        }
    }

    /// Connected to a standby (as of the last refresh).
    pub fn on_standby(&self) -> bool {
        self.replica.as_ref().is_some_and(|r| r.in_recovery)
    }

    /// The standby's replay lag in seconds when it exceeds `max_replica_lag`: the numbers
    /// on screen are older than their time says.
    pub fn replica_lagging(&self) -> Option<f64> {
        let r = self.replica.as_ref().filter(|r| r.in_recovery)?;
        r.replay_lag_seconds
            .filter(|lag| *lag > self.max_replica_lag.as_secs_f64())
    }

    pub fn has_database(&self) -> bool {
        self.db != DbStatus::NotConfigured
    }

    /// Seconds until the next attempt to reach a failing database (None when not failing
    /// or when an attempt is running).
    pub fn retry_in(&self) -> Option<Duration> {
        match (&self.db, self.fetch_started, self.next_fetch) {
            (DbStatus::Failed { .. }, None, Some(at)) => {
                Some(Duration::from_secs_f64(seconds_between(at, self.now)))
            }
            _ => None,
        }
    }

    /// How long the fetch in flight has been running.
    pub fn fetch_running_for(&self) -> Option<Duration> {
        self.fetch_started
            .map(|t| Duration::from_secs_f64(seconds_between(self.now, t)))
    }

    /// The selected row of the current view.
    pub fn selection(&self, view: Analysis) -> usize {
        self.selected[view.index()]
    }
}

/// Applies one message; returns the work to start.
pub fn update(app: &mut App, msg: Msg) -> Vec<Cmd> {
    let mut cmds = match msg {
        Msg::Key(key) => app.on_key(key),
        Msg::Click(target) => app.on_click(target),
        Msg::Scroll(delta) => {
            app.on_scroll(delta);
            Vec::new()
        }
        Msg::Looked(looked) => {
            app.on_looked(*looked);
            Vec::new()
        }
        Msg::Exported(result) => {
            app.on_exported(result);
            Vec::new()
        }
        other => {
            match other {
                Msg::Tick(now) => app.now = now,
                Msg::Fetched(outcome) => app.on_fetched(*outcome),
                Msg::Polled(results) => app.on_polled(results),
                Msg::Tailed(results) => app.on_tailed(results),
                Msg::Quit => app.quit = true,
                _ => {}
            }
            Vec::new()
        }
    };
    if app.quit {
        return Vec::new();
    }
    cmds.extend(app.due());
    cmds
}
