//! The edge collector: accepts analytics beacons over HTTP, makes them durable in a local
//! sled write-ahead buffer before acknowledging, and forwards them to a central TimescaleDB
//! in binary COPY batches, exactly once.
//!
//! The pipeline, one module per stage; imports run down this list and never back up:
//!
//! - [`http`]: ingest endpoints; validation at the edge ([`event`]); bounded inputs, and
//!   one bound on the memory all requests in flight hold ([`memory`]).
//! - [`buffer`]: the sled write-ahead buffer with group commit ([`record`] is its format).
//! - [`forward`]: drains the buffer into the database with retries and quarantine; also
//!   sends the stored heartbeats.
//! - [`database`]: connections, edition detection, migrations and the COPY itself (a leaf).
//!
//! Beside the pipeline, imported by the stages and importing none of them: [`state`]
//! (forwarding and database health), [`metrics`], [`tail`] (the ring of recently accepted
//! events behind the admin listener's live tail), [`shutdown`] (the one stop signal every
//! task watches), [`logging`] (never blocks or fails a request), [`memory`], [`respond`]
//! (JSON answers), [`config`], [`geo`] (the geography database, read once at start),
//! [`allocator`] (how long freed memory stays resident).
//!
//! Around it: [`server`] wires the stages and runs the listeners ([`connection`] serves one
//! accepted connection, [`tls`] holds the certificate and its reload), [`admin`] exposes metrics
//! and control, [`heartbeat`] records health into the buffer, [`cli`] the command line and the
//! bodies of the operator commands that work on a stopped collector's buffer (the only
//! module that returns `anyhow` errors; the library's modules have their own error types).

// The module docs are written for the people who work on this crate, and they link to
// private items: read them with `cargo doc --document-private-items`.
#![allow(rustdoc::private_intra_doc_links)]

pub mod admin;
pub mod allocator;
pub mod buffer;
pub mod cli;
pub mod config;
pub mod connection;
pub mod database;
pub mod event;
pub mod forward;
pub mod geo;
pub mod heartbeat;
pub mod http;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod record;
pub mod respond;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod tail;
pub mod tls;
