//! The dashboard's state and its update logic: which view and time range, paused or not,
//! the latest data with the database's status and retry schedule, and the direct polls of
//! collectors.
//!
//! Model/update/view split (as in gitui, bottom, oha): [`App`] is the state, [`update`] is
//! the only function that changes it — from a [`Msg`]: a key, a clock tick, a finished fetch
//! or round of polls — and returns the [`Cmd`]s to run (fetch, poll); [`crate::ui::draw`]
//! draws it without changing it. [`run`] owns the terminal and the tasks.
//!
//! Invariant: `update` never blocks, does no I/O and never reads the clock (time only comes
//! in with [`Msg::Tick`]), and at most one database fetch and one round of polls are in
//! flight at a time; so the UI stays live whatever the database does, and any state can be
//! built and drawn in tests.

mod fetch;
mod runtime;
mod terminal;

use std::{collections::BTreeMap, collections::VecDeque, time::Duration};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::model::{CollectorHealth, HistoryPoint, Range, Snapshot, Source};

pub use fetch::{fetch_snapshot, Fetched, Section};
pub use runtime::{bench, bench_main, peak_rss_kib, run};

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
/// Samples of direct polls kept per collector for the detail view.
pub const POLL_HISTORY: usize = 600;

/// The tabs, in key order (1–7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum View {
    Overview,
    Collectors,
    Funnel,
    Retention,
    Paths,
    Breakdown,
    Database,
}

impl View {
    pub const ALL: [View; 7] = [
        View::Overview,
        View::Collectors,
        View::Funnel,
        View::Retention,
        View::Paths,
        View::Breakdown,
        View::Database,
    ];

    pub fn title(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Collectors => "Collectors",
            View::Funnel => "Funnel",
            View::Retention => "Retention",
            View::Paths => "Paths",
            View::Breakdown => "Breakdown",
            View::Database => "Database",
        }
    }

    pub fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }

    /// The data section the view draws.
    pub fn section(self) -> Section {
        match self {
            View::Overview => Section::Live,
            View::Collectors => Section::Collectors,
            View::Funnel => Section::Funnel,
            View::Retention => Section::Retention,
            View::Paths => Section::Paths,
            View::Breakdown => Section::Breakdown,
            View::Database => Section::Database,
        }
    }

    fn next(self) -> View {
        View::ALL[(self.index() + 1) % View::ALL.len()]
    }

    fn prev(self) -> View {
        View::ALL[(self.index() + View::ALL.len() - 1) % View::ALL.len()]
    }
}

/// The time ranges ←/→ step through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeRange {
    M15,
    H1,
    H24,
    D7,
    D30,
}

impl TimeRange {
    pub const ALL: [TimeRange; 5] = [
        TimeRange::M15,
        TimeRange::H1,
        TimeRange::H24,
        TimeRange::D7,
        TimeRange::D30,
    ];

    pub fn label(self) -> &'static str {
        match self {
            TimeRange::M15 => "15m",
            TimeRange::H1 => "1h",
            TimeRange::H24 => "24h",
            TimeRange::D7 => "7d",
            TimeRange::D30 => "30d",
        }
    }

    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            TimeRange::M15 => 15 * 60,
            TimeRange::H1 => 3600,
            TimeRange::H24 => 86_400,
            TimeRange::D7 => 7 * 86_400,
            TimeRange::D30 => 30 * 86_400,
        })
    }

    /// The query window ending at `now`.
    pub fn window(self, now: OffsetDateTime) -> Range {
        Range {
            from: now - self.duration(),
            to: now,
        }
    }

    fn position(self) -> usize {
        TimeRange::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    fn wider(self) -> TimeRange {
        TimeRange::ALL[(self.position() + 1).min(TimeRange::ALL.len() - 1)]
    }

    fn narrower(self) -> TimeRange {
        TimeRange::ALL[self.position().saturating_sub(1)]
    }
}

/// What the dashboard was started with.
#[derive(Debug, Clone)]
pub struct Config {
    pub refresh: Duration,
    pub steps: Vec<String>,
    /// Collectors' admin addresses, polled directly.
    pub collectors: Vec<String>,
    pub has_database: bool,
    pub range: TimeRange,
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

/// One `--collector` address and what its polls said.
#[derive(Debug, Clone, PartialEq)]
pub struct PollSlot {
    pub address: String,
    /// The last successful answer.
    pub last: Option<CollectorHealth>,
    /// The error of the last poll, when it failed.
    pub error: Option<String>,
    /// Buffered events and rate from successive polls, oldest first.
    pub history: VecDeque<HistoryPoint>,
}

/// A finished fetch, as the worker reports it.
#[derive(Debug, Clone)]
pub struct FetchOutcome {
    /// The range it was asked for (a result for a range no longer shown is dropped).
    pub range: TimeRange,
    /// `Err` when the database could not be used at all (connect, connection lost).
    pub result: Result<Fetched, String>,
    /// The last outcome of the request: its total time; before it, one per section.
    pub done: bool,
}

/// Everything that can change the state.
#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    /// The terminal was resized: only a redraw.
    Resize,
    /// The clock: the only way time moves forward in the state.
    Tick(OffsetDateTime),
    Fetched(Box<FetchOutcome>),
    /// One result per `--collector` address, in order.
    Polled(Vec<Result<CollectorHealth, String>>),
    /// Leave (a signal, or the terminal's input is gone).
    Quit,
}

/// Work the state asks for; [`run`] performs it off the UI task.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd {
    Fetch {
        range: TimeRange,
        window: Range,
        steps: Vec<String>,
        /// In order: the visible view's first.
        sections: Vec<Section>,
    },
    Poll,
}

/// The whole state of the dashboard.
#[derive(Debug, Clone)]
pub struct App {
    pub view: View,
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
    pub section_errors: BTreeMap<Section, String>,
    /// Total query time of the last successful refresh.
    pub last_took: Option<Duration>,
    pub db: DbStatus,
    /// When the fetch in flight started.
    pub fetch_started: Option<OffsetDateTime>,
    /// Sections of the fetch in flight still to come, in order, and when the first of
    /// them started.
    pub pending: Vec<Section>,
    pub section_started: Option<OffsetDateTime>,
    /// When each section was last fetched (answered or failed), and for which range.
    pub section_at: BTreeMap<Section, (OffsetDateTime, TimeRange)>,
    pub next_fetch: Option<OffsetDateTime>,
    force_fetch: bool,
    pub polls: Vec<PollSlot>,
    pub poll_started: Option<OffsetDateTime>,
    pub next_poll: Option<OffsetDateTime>,
    force_poll: bool,
    /// The selected row of each view (index by [`View::index`]).
    pub selected: [usize; 7],
}

/// One row of the Collectors view: heartbeats (database) and direct polls merged by
/// collector id, the freshest winning.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorLine {
    pub id: String,
    /// The `--collector` address, when it is polled directly.
    pub address: Option<String>,
    /// None when a polled collector never answered.
    pub health: Option<CollectorHealth>,
    pub source: Option<Source>,
    /// Age of `health` at `App::now`.
    pub age_seconds: Option<f64>,
    pub fill: Option<f64>,
    /// Time to drain at the current forward rate; None when it does not drain (rate 0).
    pub drain_seconds: Option<f64>,
    /// The latest poll's error.
    pub poll_error: Option<String>,
}

impl CollectorLine {
    /// No heartbeat or poll within [`STALE_AFTER`] (or never an answer).
    pub fn stale(&self) -> bool {
        self.age_seconds
            .is_none_or(|age| age > STALE_AFTER.as_secs_f64())
    }
}

/// How long to wait after `failures` failed attempts in a row: the refresh interval,
/// doubled per failure, capped at [`MAX_RETRY_DELAY`] (and at least one second).
pub fn retry_delay(refresh: Duration, failures: u32) -> Duration {
    let base = refresh.max(Duration::from_secs(1));
    let factor = 1u32 << failures.saturating_sub(1).min(10);
    base.saturating_mul(factor).min(MAX_RETRY_DELAY.max(base))
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

fn seconds_between(later: OffsetDateTime, earlier: OffsetDateTime) -> f64 {
    (later - earlier).as_seconds_f64().max(0.0)
}

/// Fill and drain time of a health record.
fn fill_and_drain(h: &CollectorHealth) -> (Option<f64>, Option<f64>) {
    let fill = (h.buffer_limit_bytes > 0)
        .then(|| (h.buffered_bytes as f64 / h.buffer_limit_bytes as f64).clamp(0.0, 1.0));
    let drain = if h.buffered_events <= 0 {
        Some(0.0)
    } else if h.forward_rate > 0.0 {
        Some(h.buffered_events as f64 / h.forward_rate)
    } else {
        None
    };
    (fill, drain)
}

impl App {
    pub fn new(config: Config, now: OffsetDateTime) -> App {
        App {
            view: View::Overview,
            range: config.range,
            paused: false,
            help: false,
            quit: false,
            detail: false,
            retention_counts: false,
            now,
            refresh: config.refresh.max(Duration::from_millis(100)),
            steps: config.steps,
            data: Snapshot::default(),
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
            selected: [0; 7],
        }
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
    pub fn selection(&self, view: View) -> usize {
        self.selected[view.index()]
    }

    /// The Collectors view's rows: heartbeat rows from the database, replaced by a direct
    /// poll of the same collector when that is fresher, then collectors only polled, then
    /// addresses that never answered. Sorted by id for a stable screen.
    pub fn collector_lines(&self) -> Vec<CollectorLine> {
        let mut lines: Vec<CollectorLine> = Vec::new();
        if let Some(c) = &self.data.collectors {
            for row in &c.collectors {
                let h = &row.health;
                let age = match parse_time(&h.at) {
                    Some(at) => Some(seconds_between(self.now, at)),
                    None => Some(
                        row.age_seconds
                            + self
                                .data_at
                                .map(|d| seconds_between(self.now, d))
                                .unwrap_or(0.0),
                    ),
                };
                let (fill, drain) = fill_and_drain(h);
                lines.push(CollectorLine {
                    id: h.collector_id.clone(),
                    address: None,
                    health: Some(h.clone()),
                    source: Some(row.source),
                    age_seconds: age,
                    fill: fill.or(Some(row.fill)),
                    drain_seconds: drain.or(row.drain_seconds),
                    poll_error: None,
                });
            }
        }
        let mut unanswered = Vec::new();
        for slot in &self.polls {
            let Some(h) = &slot.last else {
                unanswered.push(CollectorLine {
                    id: slot.address.clone(),
                    address: Some(slot.address.clone()),
                    health: None,
                    source: None,
                    age_seconds: None,
                    fill: None,
                    drain_seconds: None,
                    poll_error: Some(
                        slot.error
                            .clone()
                            .unwrap_or_else(|| "not polled yet".to_string()),
                    ),
                });
                continue;
            };
            let polled_at = parse_time(&h.at);
            let age = polled_at.map(|at| seconds_between(self.now, at));
            let (fill, drain) = fill_and_drain(h);
            let polled = CollectorLine {
                id: h.collector_id.clone(),
                address: Some(slot.address.clone()),
                health: Some(h.clone()),
                source: Some(Source::Poll),
                age_seconds: age,
                fill,
                drain_seconds: drain,
                poll_error: slot.error.clone(),
            };
            match lines.iter_mut().find(|l| l.id == h.collector_id) {
                Some(existing) => {
                    let heartbeat_at = existing.health.as_ref().and_then(|e| parse_time(&e.at));
                    // A working poll is live and wins; after a failed poll, the fresher.
                    let poll_wins = match (polled_at, heartbeat_at) {
                        _ if slot.error.is_none() => true,
                        (Some(p), Some(b)) => p >= b,
                        (Some(_), None) => true,
                        (None, _) => false,
                    };
                    if poll_wins {
                        *existing = polled;
                    } else {
                        existing.address = Some(slot.address.clone());
                        existing.poll_error = slot.error.clone();
                    }
                }
                None => lines.push(polled),
            }
        }
        lines.sort_by(|a, b| a.id.cmp(&b.id));
        lines.extend(unanswered);
        lines
    }

    /// The buffer history of one collector: heartbeats from the database and samples of
    /// direct polls, oldest first.
    pub fn history_for(&self, line: &CollectorLine) -> Vec<HistoryPoint> {
        let mut points: Vec<HistoryPoint> = self
            .data
            .collectors
            .as_ref()
            .map(|c| {
                c.history
                    .iter()
                    .filter(|p| p.collector_id == line.id)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if let Some(slot) = line
            .address
            .as_ref()
            .and_then(|a| self.polls.iter().find(|s| &s.address == a))
        {
            points.extend(slot.history.iter().cloned());
        }
        points.sort_by_key(|p| p.at);
        points.dedup_by_key(|p| p.at);
        points
    }

    /// Rows the current view's selection moves over.
    fn row_count(&self, view: View) -> usize {
        match view {
            View::Collectors => self.collector_lines().len(),
            View::Retention => self.data.retention.as_ref().map_or(0, |r| r.cohorts.len()),
            View::Paths => self.data.paths.as_ref().map_or(0, |p| p.transitions.len()),
            View::Database => self.data.database.as_ref().map_or(0, |d| d.jobs.len()),
            View::Overview | View::Funnel | View::Breakdown => 0,
        }
    }

    fn move_selection(&mut self, delta: isize) {
        let view = self.view;
        let n = self.row_count(view);
        let i = view.index();
        if n == 0 {
            self.selected[i] = 0;
            return;
        }
        let cur = self.selected[i].min(n - 1) as isize;
        self.selected[i] = (cur + delta).clamp(0, n as isize - 1) as usize;
    }

    fn set_range(&mut self, range: TimeRange) {
        if range != self.range {
            self.range = range;
            // A new range is loaded even when paused: the screen must match its label.
            self.force_fetch = self.has_database();
        }
    }

    fn refresh_now(&mut self) {
        self.force_fetch = self.has_database();
        self.force_poll = !self.polls.is_empty();
    }

    fn on_key(&mut self, key: KeyEvent) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('c') if ctrl => {
                self.quit = true;
                return;
            }
            KeyCode::Char('q') => {
                self.quit = true;
                return;
            }
            _ => {}
        }
        if self.help {
            // Any other key closes the help overlay.
            self.help = false;
            return;
        }
        match key.code {
            KeyCode::Char('?') => self.help = true,
            KeyCode::Esc => self.detail = false,
            KeyCode::Tab => {
                self.view = self.view.next();
                self.detail = false;
            }
            KeyCode::BackTab => {
                self.view = self.view.prev();
                self.detail = false;
            }
            KeyCode::Char(c @ '1'..='7') => {
                let i = (c as usize).saturating_sub('1' as usize);
                self.view = View::ALL[i.min(View::ALL.len() - 1)];
                self.detail = false;
            }
            KeyCode::Left => self.set_range(self.range.narrower()),
            KeyCode::Right => self.set_range(self.range.wider()),
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::PageUp => self.move_selection(-10),
            KeyCode::PageDown => self.move_selection(10),
            KeyCode::Home => self.move_selection(isize::MIN / 2),
            KeyCode::End => self.move_selection(isize::MAX / 2),
            KeyCode::Enter if self.view == View::Collectors => {
                self.move_selection(0);
                self.detail = self.row_count(View::Collectors) > 0;
            }
            KeyCode::Char('r') => self.refresh_now(),
            KeyCode::Char('p') => self.paused = !self.paused,
            KeyCode::Char('c') if self.view == View::Retention => {
                self.retention_counts = !self.retention_counts
            }
            _ => {}
        }
    }

    fn on_fetched(&mut self, outcome: FetchOutcome) {
        if outcome.done {
            self.fetch_started = None;
            self.pending.clear();
            self.section_started = None;
        }
        if outcome.range != self.range {
            // The range changed while it ran: drop what it brings, fetch the one on screen.
            self.force_fetch = outcome.done;
            return;
        }
        match outcome.result {
            Ok(fetched) if !outcome.done => self.apply(fetched, outcome.range),
            Ok(fetched) => {
                self.db = DbStatus::Ok;
                self.last_took = Some(fetched.total);
                self.data_at = Some(self.now);
                self.data_range = Some(outcome.range);
                self.next_fetch = Some(self.now + self.refresh);
            }
            Err(error) => {
                let failures = match &self.db {
                    DbStatus::Failed { failures, .. } => failures.saturating_add(1),
                    _ => 1,
                };
                self.db = DbStatus::Failed { error, failures };
                self.next_fetch = Some(self.now + retry_delay(self.refresh, failures));
            }
        }
    }

    /// One section's answer (or error), as soon as it is in.
    fn apply(&mut self, fetched: Fetched, range: TimeRange) {
        let Fetched {
            snapshot,
            errors,
            timings,
            ..
        } = fetched;
        let Snapshot {
            live,
            funnel,
            retention,
            paths,
            breakdown,
            collectors,
            database,
        } = snapshot;
        // A section that failed keeps its previous data (its error is shown).
        macro_rules! keep {
            ($field:ident, $section:expr) => {
                if let Some(v) = $field {
                    self.data.$field = Some(v);
                    self.section_errors.remove(&$section);
                }
            };
        }
        keep!(live, Section::Live);
        keep!(funnel, Section::Funnel);
        keep!(retention, Section::Retention);
        keep!(paths, Section::Paths);
        keep!(breakdown, Section::Breakdown);
        keep!(collectors, Section::Collectors);
        keep!(database, Section::Database);
        for (section, error) in errors {
            self.section_errors.insert(section, error);
        }
        // The database answers: whatever failed before is over.
        if matches!(self.db, DbStatus::Failed { .. } | DbStatus::Connecting) {
            self.db = DbStatus::Ok;
        }
        for (section, _) in timings {
            self.section_at.insert(section, (self.now, range));
            self.pending.retain(|s| *s != section);
        }
        self.section_started = Some(self.now);
    }

    /// What the next fetch asks for: the visible view's section, the live numbers and the
    /// collectors (the overview and the banner need them), then every other section whose
    /// data is missing, from another range or older than [`BACKGROUND_REFRESH`].
    pub fn sections_due(&self) -> Vec<Section> {
        let mut out = vec![self.view.section()];
        for s in [Section::Live, Section::Collectors] {
            if !out.contains(&s) {
                out.push(s);
            }
        }
        for s in Section::ALL {
            if out.contains(&s) {
                continue;
            }
            let due = match self.section_at.get(&s) {
                None => true,
                Some((at, range)) => {
                    *range != self.range
                        || seconds_between(self.now, *at) >= BACKGROUND_REFRESH.as_secs_f64()
                }
            };
            if due {
                out.push(s);
            }
        }
        out
    }

    /// The section being fetched and for how long, when a fetch is running.
    pub fn running_section(&self) -> Option<(Section, Duration)> {
        let section = *self.pending.first()?;
        let since = self.section_started.or(self.fetch_started)?;
        Some((
            section,
            Duration::from_secs_f64(seconds_between(self.now, since)),
        ))
    }

    fn on_polled(&mut self, results: Vec<Result<CollectorHealth, String>>) {
        self.poll_started = None;
        self.next_poll = Some(self.now + self.refresh);
        let now = self.now;
        for (slot, result) in self.polls.iter_mut().zip(results) {
            match result {
                Ok(h) => {
                    slot.history.push_back(HistoryPoint {
                        at: parse_time(&h.at).unwrap_or(now),
                        collector_id: h.collector_id.clone(),
                        buffered_events: h.buffered_events,
                        forward_rate: h.forward_rate,
                        database_state: h.database_state.clone(),
                    });
                    while slot.history.len() > POLL_HISTORY {
                        slot.history.pop_front();
                    }
                    slot.last = Some(h);
                    slot.error = None;
                }
                Err(e) => slot.error = Some(e),
            }
        }
    }

    /// Starts what is due: a fetch when none is running and its time has come (or it was
    /// asked for), a round of polls likewise.
    fn due(&mut self) -> Vec<Cmd> {
        let mut cmds = Vec::new();
        let now = self.now;
        let time_for = |next: Option<OffsetDateTime>| next.is_none_or(|t| now >= t);
        if self.has_database()
            && self.fetch_started.is_none()
            && (self.force_fetch || (!self.paused && time_for(self.next_fetch)))
        {
            self.force_fetch = false;
            self.fetch_started = Some(now);
            self.section_started = Some(now);
            self.pending = self.sections_due();
            cmds.push(Cmd::Fetch {
                range: self.range,
                window: self.range.window(now),
                steps: self.steps.clone(),
                sections: self.pending.clone(),
            });
        }
        if !self.polls.is_empty()
            && self.poll_started.is_none()
            && (self.force_poll || (!self.paused && time_for(self.next_poll)))
        {
            self.force_poll = false;
            self.poll_started = Some(now);
            cmds.push(Cmd::Poll);
        }
        cmds
    }
}

/// Applies one message; returns the work to start.
pub fn update(app: &mut App, msg: Msg) -> Vec<Cmd> {
    match msg {
        Msg::Key(key) => app.on_key(key),
        Msg::Resize => {}
        Msg::Tick(now) => app.now = now,
        Msg::Fetched(outcome) => app.on_fetched(*outcome),
        Msg::Polled(results) => app.on_polled(results),
        Msg::Quit => app.quit = true,
    }
    if app.quit {
        return Vec::new();
    }
    app.due()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CollectorRow, Collectors, Live};
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2025-03-01 12:00:00 UTC);

    fn app() -> App {
        App::new(
            Config {
                refresh: Duration::from_secs(2),
                steps: vec!["a".into(), "b".into()],
                collectors: vec!["127.0.0.1:9100".into()],
                has_database: true,
                range: TimeRange::H1,
            },
            T0,
        )
    }

    fn key(c: KeyCode) -> Msg {
        Msg::Key(KeyEvent::new(c, KeyModifiers::NONE))
    }

    /// A fetch answered section by section: live data, a failed funnel, then the end.
    fn ok_fetch(range: TimeRange) -> Vec<Msg> {
        let part = Fetched {
            snapshot: Snapshot {
                live: Some(Live::default()),
                ..Snapshot::default()
            },
            errors: vec![(Section::Funnel, "boom".into())],
            timings: vec![
                (Section::Live, Duration::from_millis(100)),
                (Section::Funnel, Duration::from_millis(20)),
            ],
            total: Duration::from_millis(120),
        };
        let done = Fetched {
            total: Duration::from_millis(120),
            ..Fetched::default()
        };
        [(part, false), (done, true)]
            .into_iter()
            .map(|(f, done)| {
                Msg::Fetched(Box::new(FetchOutcome {
                    range,
                    result: Ok(f),
                    done,
                }))
            })
            .collect()
    }

    /// Applies messages in order; returns the commands of the last.
    fn feed(a: &mut App, msgs: Vec<Msg>) -> Vec<Cmd> {
        let mut last = Vec::new();
        for m in msgs {
            last = update(a, m);
        }
        last
    }

    fn health(id: &str, at: &str, events: i64, rate: f64) -> CollectorHealth {
        CollectorHealth {
            collector_id: id.into(),
            region: "eu".into(),
            at: at.into(),
            buffered_events: events,
            buffered_bytes: 500,
            buffer_limit_bytes: 1000,
            forward_rate: rate,
            ..CollectorHealth::default()
        }
    }

    #[test]
    fn first_tick_starts_a_fetch_and_a_poll() {
        let mut a = app();
        let cmds = update(&mut a, Msg::Tick(T0));
        assert_eq!(cmds.len(), 2);
        assert!(matches!(
            cmds[0],
            Cmd::Fetch {
                range: TimeRange::H1,
                ..
            }
        ));
        assert_eq!(cmds[1], Cmd::Poll);
        // Nothing more while they run.
        assert!(update(&mut a, Msg::Tick(T0 + Duration::from_secs(5))).is_empty());
        assert_eq!(a.fetch_running_for(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn success_schedules_next_refresh_and_keeps_partial_errors() {
        let mut a = app();
        update(&mut a, Msg::Tick(T0));
        let cmds = feed(&mut a, ok_fetch(TimeRange::H1));
        assert!(cmds.is_empty());
        assert_eq!(a.db, DbStatus::Ok);
        assert!(a.data.live.is_some());
        assert_eq!(
            a.section_errors.get(&Section::Funnel).map(String::as_str),
            Some("boom")
        );
        assert_eq!(a.next_fetch, Some(T0 + Duration::from_secs(2)));
        assert!(update(&mut a, Msg::Tick(T0 + Duration::from_secs(1))).is_empty());
        let cmds = update(&mut a, Msg::Tick(T0 + Duration::from_secs(2)));
        assert!(matches!(cmds[..], [Cmd::Fetch { .. }]));
    }

    #[test]
    fn failures_back_off_with_countdown_and_r_retries_now() {
        let mut a = app();
        update(&mut a, Msg::Tick(T0));
        let fail = |e: &str| {
            Msg::Fetched(Box::new(FetchOutcome {
                range: TimeRange::H1,
                result: Err(e.into()),
                done: true,
            }))
        };
        update(&mut a, fail("connection refused"));
        assert_eq!(
            a.db,
            DbStatus::Failed {
                error: "connection refused".into(),
                failures: 1
            }
        );
        assert_eq!(a.retry_in(), Some(Duration::from_secs(2)));
        update(&mut a, Msg::Tick(T0 + Duration::from_secs(2)));
        update(&mut a, fail("connection refused"));
        assert_eq!(a.retry_in(), Some(Duration::from_secs(4)));
        update(&mut a, Msg::Tick(T0 + Duration::from_secs(3)));
        assert_eq!(a.retry_in(), Some(Duration::from_secs(3)));
        let cmds = update(&mut a, key(KeyCode::Char('r')));
        assert!(cmds.iter().any(|c| matches!(c, Cmd::Fetch { .. })));
        // Old data stays on screen through failures.
        assert_eq!(retry_delay(Duration::from_secs(2), 10), MAX_RETRY_DELAY);
    }

    #[test]
    fn pause_stops_refreshes_but_r_and_range_changes_still_fetch() {
        let mut a = app();
        update(&mut a, Msg::Tick(T0));
        feed(&mut a, ok_fetch(TimeRange::H1));
        update(&mut a, Msg::Polled(vec![Err("refused".into())]));
        update(&mut a, key(KeyCode::Char('p')));
        assert!(a.paused);
        assert!(update(&mut a, Msg::Tick(T0 + Duration::from_secs(60))).is_empty());
        let cmds = update(&mut a, key(KeyCode::Right));
        assert_eq!(a.range, TimeRange::H24);
        assert!(matches!(
            cmds[..],
            [Cmd::Fetch {
                range: TimeRange::H24,
                ..
            }]
        ));
        // A late answer for 24h is applied; unpausing resumes the schedule.
        feed(&mut a, ok_fetch(TimeRange::H24));
        assert_eq!(a.data_range, Some(TimeRange::H24));
        // Unpausing polls at once (overdue) and fetches when the next refresh is due.
        assert_eq!(update(&mut a, key(KeyCode::Char('p'))), vec![Cmd::Poll]);
        let cmds = update(&mut a, Msg::Tick(T0 + Duration::from_secs(62)));
        assert!(matches!(
            cmds[..],
            [Cmd::Fetch {
                range: TimeRange::H24,
                ..
            }]
        ));
    }

    #[test]
    fn answer_for_an_old_range_is_dropped_and_refetched() {
        let mut a = app();
        update(&mut a, Msg::Tick(T0));
        update(&mut a, key(KeyCode::Left));
        assert_eq!(a.range, TimeRange::M15);
        let cmds = feed(&mut a, ok_fetch(TimeRange::H1));
        assert!(a.data.live.is_none());
        assert!(matches!(
            cmds[..],
            [Cmd::Fetch {
                range: TimeRange::M15,
                ..
            }]
        ));
        // Ranges stop at both ends.
        for _ in 0..10 {
            update(&mut a, key(KeyCode::Left));
        }
        assert_eq!(a.range, TimeRange::M15);
        for _ in 0..10 {
            update(&mut a, key(KeyCode::Right));
        }
        assert_eq!(a.range, TimeRange::D30);
    }

    #[test]
    fn visible_section_first_others_in_the_background() {
        let mut a = app();
        assert_eq!(a.sections_due(), Section::ALL.to_vec());
        update(&mut a, Msg::Tick(T0));
        assert_eq!(a.pending, Section::ALL.to_vec());
        // Sections arrive one by one; the banner can name the one running.
        let part = |s: Section| {
            Msg::Fetched(Box::new(FetchOutcome {
                range: TimeRange::H1,
                result: Ok(Fetched {
                    timings: vec![(s, Duration::from_millis(5))],
                    ..Fetched::default()
                }),
                done: false,
            }))
        };
        update(&mut a, part(Section::Live));
        update(&mut a, Msg::Tick(T0 + Duration::from_secs(4)));
        assert_eq!(
            a.running_section(),
            Some((Section::Collectors, Duration::from_secs(4)))
        );
        for s in &Section::ALL[1..] {
            update(&mut a, part(*s));
        }
        update(
            &mut a,
            Msg::Fetched(Box::new(FetchOutcome {
                range: TimeRange::H1,
                result: Ok(Fetched::default()),
                done: true,
            })),
        );
        assert!(a.fetch_started.is_none() && a.pending.is_empty());
        update(&mut a, key(KeyCode::Char('3')));
        assert_eq!(
            a.sections_due(),
            vec![Section::Funnel, Section::Live, Section::Collectors]
        );
        update(
            &mut a,
            Msg::Tick(T0 + BACKGROUND_REFRESH + Duration::from_secs(5)),
        );
        assert_eq!(
            a.pending.len(),
            Section::ALL.len(),
            "background sections due again"
        );
    }

    #[test]
    fn keys_switch_views_help_and_quit() {
        let mut a = app();
        update(&mut a, key(KeyCode::Tab));
        assert_eq!(a.view, View::Collectors);
        update(&mut a, key(KeyCode::BackTab));
        update(&mut a, key(KeyCode::BackTab));
        assert_eq!(a.view, View::Database);
        update(&mut a, key(KeyCode::Char('4')));
        assert_eq!(a.view, View::Retention);
        update(&mut a, key(KeyCode::Char('?')));
        assert!(a.help);
        update(&mut a, key(KeyCode::Char('1')));
        assert!(!a.help);
        assert_eq!(
            a.view,
            View::Retention,
            "the key that closes help does nothing else"
        );
        update(&mut a, key(KeyCode::Char('q')));
        assert!(a.quit);
        let mut b = app();
        update(
            &mut b,
            Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        );
        assert!(b.quit);
    }

    #[test]
    fn polls_merge_with_heartbeats_freshest_wins() {
        let mut a = app();
        a.polls.push(PollSlot {
            address: "127.0.0.1:9999".into(),
            last: None,
            error: None,
            history: VecDeque::new(),
        });
        a.data.collectors = Some(Collectors {
            collectors: vec![
                CollectorRow {
                    health: health("edge-a", "2025-03-01T11:59:50Z", 100, 50.0),
                    source: Source::Heartbeat,
                    age_seconds: 10.0,
                    fill: 0.5,
                    drain_seconds: Some(2.0),
                },
                CollectorRow {
                    health: health("edge-b", "2025-03-01T11:58:00Z", 100, 0.0),
                    source: Source::Heartbeat,
                    age_seconds: 120.0,
                    fill: 0.5,
                    drain_seconds: None,
                },
            ],
            history: vec![],
        });
        update(
            &mut a,
            Msg::Polled(vec![
                Ok(health("edge-a", "2025-03-01T12:00:00Z", 10, 5.0)),
                Err("connection refused".into()),
            ]),
        );
        let lines = a.collector_lines();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].id, "edge-a");
        assert_eq!(lines[0].source, Some(Source::Poll));
        assert_eq!(
            lines[0].health.as_ref().map(|h| h.buffered_events),
            Some(10)
        );
        assert_eq!(lines[0].drain_seconds, Some(2.0));
        assert!(!lines[0].stale());
        assert_eq!(lines[1].id, "edge-b");
        assert!(lines[1].stale());
        assert_eq!(lines[1].drain_seconds, None);
        assert_eq!(lines[2].id, "127.0.0.1:9999");
        assert!(lines[2].stale());
        assert_eq!(lines[2].poll_error.as_deref(), Some("connection refused"));
        assert_eq!(a.history_for(&lines[0]).len(), 1);
        // Selection and detail.
        update(&mut a, key(KeyCode::Char('2')));
        update(&mut a, key(KeyCode::End));
        assert_eq!(a.selection(View::Collectors), 2);
        update(&mut a, key(KeyCode::Enter));
        assert!(a.detail);
        update(&mut a, key(KeyCode::Esc));
        assert!(!a.detail);
    }

    #[test]
    fn no_database_means_polls_only() {
        let mut a = App::new(
            Config {
                refresh: Duration::from_secs(2),
                steps: vec![],
                collectors: vec!["x:1".into()],
                has_database: false,
                range: TimeRange::H1,
            },
            T0,
        );
        let cmds = update(&mut a, Msg::Tick(T0));
        assert_eq!(cmds, vec![Cmd::Poll]);
        assert_eq!(a.db, DbStatus::NotConfigured);
        assert!(update(&mut a, key(KeyCode::Char('r'))).is_empty());
    }
}
