//! The monitor: a terminal dashboard (ratatui) and a query tool for the edge analytics
//! system, for on-call engineers.
//!
//! Layers, each importing only those below it (no cycles):
//! - [`cli`]: the command line (`monitor`, `monitor query …`), the top;
//! - [`tui`]: the dashboard's runtime: terminal, event loop, fetch worker, benchmark;
//! - [`ui`]: drawing the state (pure functions of the state, snapshot-tested);
//! - [`app`]: the dashboard's state and its update logic (keys, refresh, errors), no I/O;
//! - [`report`]: printing a report as a table, JSON or CSV (`monitor query`);
//! - [`query`]: the SQL behind every analysis, against TimescaleDB (either edition);
//! - [`tail`]: the collectors' live tail (filter, merging, `monitor tail`);
//! - [`poll`]: direct polling of collectors' admin endpoints;
//! - [`analysis`]: the registry of analyses (names, keys, tabs, refresh policy) and the
//!   result types every layer shares;
//! - [`model`]: the typed results (the contract between queries and views);
//! - [`text`]: measuring, cutting and padding text by display width (a leaf every view and
//!   printed table uses).
//!
//! Invariant: adding an analysis is its model type, its query module, its view module and
//! its registry entry; nothing else lists the analyses. Likewise adding a list view (`/`
//! search, `s`/`S` sort) is its entry in [`app::lists`]' table and its row-key function;
//! nothing else lists the lists.

// The module docs are written for the people who work on this crate, and they link to
// private items: read them with `cargo doc --document-private-items`.
#![allow(rustdoc::private_intra_doc_links)]

pub mod analysis;
pub mod app;
pub mod cli;
pub mod model;
pub(crate) mod poll;
pub mod query;
pub(crate) mod report;
pub(crate) mod tail;
pub(crate) mod text;
pub mod tui;
pub(crate) mod ui;
