//! What flows into and out of [`super::update`]: messages ([`Msg`]), the work it asks for
//! ([`Cmd`]) and a finished fetch ([`FetchOutcome`], [`Fetched`]).
//!
//! Invariant: plain data, no behaviour: every message can be built in a test.

use std::time::Duration;

use crossterm::event::{KeyEvent, MouseEvent};
use time::OffsetDateTime;

use super::{Looked, Lookup, Target, TimeRange};
use crate::{
    analysis::{Analysis, Snapshot},
    model::{CollectorHealth, Filter, Range, ReplicaStatus, TailPage},
};

/// One refresh's result: the analyses that answered, the errors of those that did not,
/// and how long each query took.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fetched {
    pub snapshot: Snapshot,
    pub errors: Vec<(Analysis, String)>,
    pub timings: Vec<(Analysis, Duration)>,
    /// Wall time of the whole refresh.
    pub total: Duration,
    /// The server's replication status, read at the start of every refresh.
    pub replica: Option<ReplicaStatus>,
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
    /// One live-tail page per `--collector` address, in order.
    Tailed(Vec<Result<TailPage, String>>),
    /// A mouse event as read; the runtime turns it into [`Msg::Click`] or [`Msg::Scroll`]
    /// with the last drawing's hits ([`super::resolve`]); left alone it does nothing.
    Mouse(MouseEvent),
    /// A left click, on what was drawn there (None: nothing clickable).
    Click(Option<Target>),
    /// The wheel: rows to move the selection by.
    Scroll(isize),
    /// An on-demand lookup's answer (drill-down, person).
    Looked(Box<Looked>),
    /// An export was written (its path) or failed (the error).
    Exported(Result<String, String>),
    /// Leave (a signal, or the terminal's input is gone).
    Quit,
}

/// Work the state asks for; the runtime (`crate::tui`) performs it off the UI task.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd {
    Fetch {
        range: TimeRange,
        window: Range,
        steps: Vec<String>,
        /// The analyses' filter.
        filter: Filter,
        /// In order: the visible view's first.
        sections: Vec<Analysis>,
    },
    Poll,
    /// Read each collector's live tail after its cursor (`afters[i]` for address `i`).
    Tail {
        afters: Vec<Option<u64>>,
        limit: usize,
    },
    /// Run an on-demand query (the funnel drill-down, a person).
    Lookup(Lookup),
    /// Write `csv` to a new file `file_name` (in the current directory, else the temporary
    /// one).
    Export {
        file_name: String,
        csv: String,
    },
}
