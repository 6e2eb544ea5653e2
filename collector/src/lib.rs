//! The edge collector: accepts analytics beacons over HTTP, makes them durable in a local
//! sled write-ahead buffer before acknowledging, and forwards them to a central TimescaleDB
//! in binary COPY batches, exactly once.
//!
//! The pipeline, one module per stage:
//!
//! - [`http`]: ingest endpoints; validation at the edge ([`event`]); bounded inputs, and
//!   one bound on the memory all requests in flight hold ([`memory`]).
//! - [`buffer`]: the sled write-ahead buffer with group commit ([`record`] is its format).
//! - [`forward`]: drains the buffer into the database with retries and quarantine.
//! - [`database`]: connections, edition detection, migrations and the COPY itself.
//!
//! Around it: [`server`] wires the stages and the shutdown ([`shutdown`] is the one stop
//! signal every task watches), [`logging`] keeps logs from ever blocking a request, [`admin`] exposes metrics and
//! control, [`heartbeat`] reports health into the database, [`ops`] holds the operator
//! commands that work on a stopped collector's buffer, [`config`] and [`cli`] the settings.

pub mod admin;
pub mod buffer;
pub mod cli;
pub mod config;
pub mod database;
pub mod event;
pub mod forward;
pub mod heartbeat;
pub mod http;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod ops;
pub mod record;
pub mod respond;
pub mod server;
pub mod shutdown;
pub mod state;
