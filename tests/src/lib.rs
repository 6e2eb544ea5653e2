//! Test harness for the end-to-end tests: a real PostgreSQL + TimescaleDB, the real
//! `collector` and `monitor` binaries, and generated seed-shaped events.
//!
//! - [`db`]: the shared local cluster (started with `deploy/local-db`, or `DATABASE_URL`),
//!   a fresh migrated database per test, and private clusters a test may stop and start to
//!   inject outages without disturbing other tests;
//! - [`proc`]: starting (options from the [`proc::CollectorOpts`] builder), killing
//!   (`kill -9`) and stopping the real binaries;
//! - [`client`]: a small blocking HTTP client for requests to the collector;
//! - [`check`]: shared assertions (exactly-once counts, buffer contents and export, JSON
//!   comparison);
//! - [`gen`]: seed-shaped event generation;
//! - [`activity`]: the activity rollups (migration 0013) against their recomputation;
//! - [`relay`]: a TCP relay a test can freeze (a silent partition, a hung server);
//! - [`replication`]: a streaming hot standby of a private cluster, to crash and promote;
//! - [`fleet`]: several collectors into one database, and CPU accounting (fan-in bench);
//! - [`tui`]: the real monitor in a pseudo-terminal, its screen emulated;
//! - [`sdk`]: real client libraries' scripts run against a collector; [`hog`]: a real 503
//!   for their first attempt (the in-flight memory bound filled);
//! - [`browser`]: headless Chromium over WebDriver, and a small web server (HTTP or
//!   HTTPS) for the pages it opens; [`shop`]: the page, collector and rows of the browser
//!   tracker's tests;
//! - [`tls`]: a test certificate authority and a TLS client that trusts only it;
//!
//! Nothing here mocks the database.

pub mod activity;
pub mod analyses_bench;
pub mod analytics;
pub mod browser;
pub mod check;
pub mod client;
pub mod db;
pub mod fleet;
pub mod gen;
pub mod hog;
pub mod load;
pub mod proc;
pub mod relay;
pub mod replication;
pub mod sdk;
pub mod shop;
pub mod tls;
pub mod tui;

use std::path::PathBuf;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}
