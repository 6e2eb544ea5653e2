//! The live tail of accepted events, read from the collectors' admin listeners
//! (`GET /v1/tail`): [`filter`] (which events to show), [`feed`] (merging collectors'
//! pages into [`crate::model::Tail`]) — both pure, shared by the Tail view
//! ([`crate::app`], [`crate::ui`]) and `monitor tail` — and [`command`], the `monitor tail`
//! runtime (polls and NDJSON lines).
//!
//! Invariant: the tail never touches the database, so it works during an outage and shows
//! what the collectors are buffering; only [`command`] does I/O.

pub mod command;
pub mod feed;
pub mod filter;

pub use filter::Filter;
