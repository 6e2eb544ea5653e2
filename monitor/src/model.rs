//! Typed results of every analysis: what `monitor query` prints and the TUI draws.
//!
//! This module is the contract between the query library ([`crate::query`]) and the views
//! ([`crate::ui`]): queries fill these types, views only read them, and render tests build
//! them from fixed data. Times are UTC; rates are fractions in 0..=1. [`Filter`] is what
//! the analyses are asked to compute over (`--where`), the one input type here.

mod filter;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

pub use filter::{
    Filter, FilterError, FIELDS as FILTER_FIELDS, MAX_KEY_CHARS, MAX_PROPERTIES, MAX_VALUE_CHARS,
};

/// The time range of a query: from `now - since` to `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
}

/// "What is happening right now."
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Live {
    /// Events per minute for the last 60 minutes, oldest first, one entry per minute
    /// (minutes without events are present with 0).
    pub per_minute: Vec<MinuteCount>,
    /// Events in the last 10 seconds divided by 10.
    pub events_per_second: f64,
    /// Distinct user_id with at least one event in the last 5 min / 1 h / 24 h.
    pub active_users_5m: i64,
    pub active_users_1h: i64,
    pub active_users_24h: i64,
    /// Most frequent event names in the last hour.
    pub top_events: Vec<NameCount>,
    /// Ingest lag (`created_at - received_at`) over the last 5 minutes, in seconds.
    pub lag_p50_seconds: Option<f64>,
    pub lag_p99_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinuteCount {
    #[serde(with = "time::serde::rfc3339")]
    pub minute: OffsetDateTime,
    pub events: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameCount {
    pub name: String,
    pub count: i64,
}

/// An ordered funnel within sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Funnel {
    pub steps: Vec<FunnelStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelStep {
    pub name: String,
    /// Sessions that reached this step after every previous one, in order.
    pub sessions: i64,
    /// sessions / previous step's sessions (1.0 for the first step).
    pub step_conversion: f64,
    /// sessions / first step's sessions.
    pub overall_conversion: f64,
}

/// Day-N retention by first-seen cohort.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Retention {
    pub cohorts: Vec<Cohort>,
}

// A `Date` as `"2024-05-01"` in JSON (time's default is `[2024, 122]`, year and ordinal).
time::serde::format_description!(iso_date, Date, "[year]-[month]-[day]");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cohort {
    /// The UTC day of the users' first event.
    #[serde(with = "iso_date")]
    pub day: Date,
    /// Users first seen that day.
    pub users: i64,
    /// `retained[n]`: cohort users with an event on day `day + n`, for n = 0..=30
    /// (shorter when the days have not happened yet).
    pub retained: Vec<i64>,
}

/// Top next-event transitions within sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Paths {
    pub transitions: Vec<Transition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub from: String,
    pub to: String,
    pub count: i64,
    pub avg_seconds: f64,
}

/// Events and users by device type, country and event name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Breakdown {
    pub by_device: Vec<BreakdownRow>,
    pub by_country: Vec<BreakdownRow>,
    pub by_event: Vec<BreakdownRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakdownRow {
    /// The dimension's value; `(none)` for NULL.
    pub key: String,
    pub events: i64,
    pub users: i64,
}

/// A collector's health, from its latest heartbeat or a direct poll of its admin
/// `/v1/buffer` (the same JSON fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CollectorHealth {
    pub collector_id: String,
    pub region: String,
    pub version: String,
    /// RFC 3339 time of the heartbeat/poll.
    pub at: String,
    pub buffered_events: i64,
    pub buffered_bytes: i64,
    pub buffer_limit_bytes: i64,
    pub oldest_buffered_age_seconds: f64,
    pub accepted_total: i64,
    pub forwarded_total: i64,
    pub rejected_total: i64,
    pub quarantined_total: i64,
    pub forward_rate: f64,
    pub last_error: Option<String>,
    /// `up`, `down`, `config_error`, `paused`, `connecting` or `disabled`.
    pub database_state: String,
    pub forwarding_paused: bool,
}

/// Where a collector row came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Heartbeat,
    Poll,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectorRow {
    pub health: CollectorHealth,
    pub source: Source,
    /// Seconds since `health.at` when the row was read.
    pub age_seconds: f64,
    /// Buffered bytes / limit, 0..=1.
    pub fill: f64,
    /// Seconds to drain at the current forward rate, when it is positive.
    pub drain_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Collectors {
    pub collectors: Vec<CollectorRow>,
    /// Buffered events over time of the selected collector (heartbeats), oldest first.
    pub history: Vec<HistoryPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub collector_id: String,
    pub buffered_events: i64,
    pub forward_rate: f64,
    pub database_state: String,
}

/// Database health: sizes, chunks, columnstore, background jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DatabaseHealth {
    /// `apache` or `timescale`.
    pub edition: String,
    pub extension_version: String,
    pub objects: Vec<ObjectSize>,
    pub chunks: i64,
    /// Uncompressed / compressed bytes of columnstore chunks, when any exist.
    pub compression_ratio: Option<f64>,
    pub jobs: Vec<Job>,
    /// Streaming replication as this server sees it (absent in older JSON: a primary
    /// without standbys).
    #[serde(default)]
    pub replication: Replication,
}

/// Where the connected server stands in streaming replication: read with every refresh
/// (the banner needs it whatever the tab) and as part of the Database analysis.
///
/// On a primary only `in_recovery = false` is meaningful; the other fields are None.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ReplicaStatus {
    /// `pg_is_in_recovery()`: a standby (hot standby, read-only).
    pub in_recovery: bool,
    /// How far the data read here is behind the primary, in seconds: 0 when everything
    /// received has been replayed, else `now() - pg_last_xact_replay_timestamp()`.
    pub replay_lag_seconds: Option<f64>,
    /// `now() - pg_last_xact_replay_timestamp()` whatever was received (grows while the
    /// primary writes nothing).
    pub last_replay_age_seconds: Option<f64>,
    /// RFC 3339 time of the last replayed transaction's commit on the primary.
    pub last_replay_at: Option<String>,
    /// `pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())`: WAL received
    /// but not yet replayed, in bytes.
    pub receive_replay_gap_bytes: Option<i64>,
}

/// Replication in the Database analysis: this server's status and, on a primary, its
/// standbys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Replication {
    #[serde(flatten)]
    pub status: ReplicaStatus,
    /// `pg_stat_replication`, by application name then address (a primary's standbys).
    pub standbys: Vec<StandbyLag>,
}

/// One standby streaming from the primary (`pg_stat_replication`).
///
/// Without `pg_monitor` (or `pg_read_all_stats`, or superuser) the server hides every
/// column but the walsender's pid and the application name: then `visible` is false and
/// the other fields are None.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandbyLag {
    pub application_name: String,
    pub client_addr: Option<String>,
    /// `startup`, `catchup`, `streaming`, `backup`, `stopping`.
    pub state: Option<String>,
    /// `async`, `potential`, `sync`, `quorum`.
    pub sync_state: Option<String>,
    pub write_lag_seconds: Option<f64>,
    pub flush_lag_seconds: Option<f64>,
    pub replay_lag_seconds: Option<f64>,
    /// `pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)`.
    pub replay_lag_bytes: Option<i64>,
    /// The role may read the lag columns.
    pub visible: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectSize {
    pub name: String,
    /// `hypertable`, `continuous aggregate`, `view` or `table`.
    pub kind: String,
    /// None for plain views (no storage).
    pub bytes: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: i32,
    pub name: String,
    pub target: String,
    pub schedule: String,
    pub last_run: Option<String>,
    pub last_status: Option<String>,
    pub total_failures: i64,
    pub last_error: Option<String>,
}

/// The most viewed pages over the range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Pages {
    /// By views descending, then by URL.
    pub pages: Vec<PageRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRow {
    pub url: String,
    /// `page_view` events on the page.
    pub views: i64,
    /// Distinct people among them (events without any id are not counted).
    pub users: i64,
}

/// One person (`monitor query user ID`): the README's person, their ids, merged traits and
/// recent events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Person {
    /// The id asked for.
    pub asked: String,
    /// The person's id: the user id an anonymous id is linked to, else the id asked for.
    pub person: String,
    /// Anonymous ids linked to the person, earliest link first.
    pub anonymous_ids: Vec<String>,
    /// Per trait key, the latest value set by an identify of any of the person's ids.
    pub traits: Vec<(String, serde_json::Value)>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub first_seen: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_seen: Option<OffsetDateTime>,
    /// The most recent events, newest first (at most [`PERSON_EVENTS`]).
    pub recent: Vec<PersonEvent>,
}

/// How many recent events [`Person`] lists.
pub const PERSON_EVENTS: i64 = 50;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonEvent {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub event_name: String,
    /// The id the event was sent with (the user id, or one of the anonymous ids).
    pub actor: String,
    pub session_id: Option<String>,
    pub page_url: Option<String>,
    pub source: Option<String>,
}

/// One accepted event from a collector's live tail (`GET /v1/tail` on its admin listener):
/// the ingest API's fields, string fields cut by the collector to 200 bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TailEvent {
    /// The collector's sequence number (per collector process).
    pub seq: u64,
    /// Which collector accepted it (filled in by the monitor from the page).
    pub collector_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    pub event_id: String,
    pub event_name: String,
    pub event_time: String,
    /// The user id as the client sent it.
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// The write key's source name.
    pub source: Option<String>,
    pub session_id: Option<String>,
    pub event_type: Option<String>,
    pub page_url: Option<String>,
    pub referrer: Option<String>,
    pub device_type: Option<String>,
    pub browser: Option<String>,
    pub os: Option<String>,
    pub country_code: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    pub properties: Option<serde_json::Value>,
    /// The collector cut a field or the properties.
    pub truncated: bool,
    /// When the monitor received it (Unix ms), for the rate; None for the history a tail
    /// starts with. Not part of the printed event.
    #[serde(skip)]
    pub arrived_ms: Option<i64>,
}

impl Default for TailEvent {
    fn default() -> TailEvent {
        TailEvent {
            seq: 0,
            collector_id: String::new(),
            received_at: OffsetDateTime::UNIX_EPOCH,
            event_id: String::new(),
            event_name: String::new(),
            event_time: String::new(),
            user_id: None,
            anonymous_id: None,
            source: None,
            session_id: None,
            event_type: None,
            page_url: None,
            referrer: None,
            device_type: None,
            browser: None,
            os: None,
            country_code: None,
            region: None,
            city: None,
            properties: None,
            truncated: false,
            arrived_ms: None,
        }
    }
}

/// One answer of `GET /v1/tail`: events after the asked sequence number, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TailPage {
    pub collector_id: String,
    /// The collector process' numbering (its start time): a new epoch restarts the count.
    pub epoch: i64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Events after the asked number that the collector's ring no longer holds.
    pub missed: u64,
    pub events: Vec<TailEvent>,
}

/// Where one `--collector` address's tail stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TailSource {
    pub address: String,
    pub collector_id: Option<String>,
    pub epoch: Option<i64>,
    /// The last sequence number seen (the next poll asks for what follows).
    pub cursor: Option<u64>,
    /// Events lost to the collector's ring bound since the tail started.
    pub missed: u64,
    /// The last poll's error.
    pub error: Option<String>,
}

/// The live tail, merged across collectors: the Tail view's model (fed by the collectors'
/// admin listeners, never by the database).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Tail {
    /// Newest first, bounded.
    pub events: Vec<TailEvent>,
    pub sources: Vec<TailSource>,
    /// Events that arrived per poll (Unix ms, count), within the rate window, oldest first.
    pub arrivals: Vec<(i64, u64)>,
    /// When the first poll that counts for the rate answered (Unix ms).
    pub counting_since_ms: Option<i64>,
}

/// A funnel step's drop-off (Enter on a step, `monitor query funnel --drop-off STEP`): the
/// sessions that reached step `step` and did not go on to the next one, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DropOff {
    /// The funnel's steps, as asked.
    pub steps: Vec<String>,
    /// The step reached, 0-based (the last step: sessions that completed the funnel).
    pub step: usize,
    /// How many sessions dropped off there in the range (`sessions` lists at most
    /// [`DROP_OFF_SESSIONS`] of them).
    pub total: i64,
    pub sessions: Vec<DropSession>,
}

/// How many sessions [`DropOff`] lists.
pub const DROP_OFF_SESSIONS: i64 = 100;

/// One session of a [`DropOff`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DropSession {
    pub session_id: String,
    /// The person of the session's latest event that has one (None: no id at all).
    pub person: Option<String>,
    /// The session's last event in the range, and its time.
    pub last_event: String,
    #[serde(with = "time::serde::rfc3339")]
    pub last_time: OffsetDateTime,
}
