//! The monitor: a terminal dashboard (ratatui) and a query tool for the edge analytics
//! system, for on-call engineers.
//!
//! - [`model`]: the typed results (the contract between queries and views);
//! - [`query`]: the SQL behind every analysis, against TimescaleDB (either edition);
//! - [`poll`]: direct polling of collectors' admin endpoints;
//! - [`app`]: the dashboard's state and its update logic (keys, refresh, errors);
//! - [`ui`]: drawing the state (pure functions of the state, snapshot-tested);
//! - [`cli`]: the command line (`monitor`, `monitor query …`).

pub mod app;
pub mod cli;
pub mod model;
pub mod poll;
pub mod query;
pub mod ui;
