//! Writing a batch of events into `user_events`, exactly once.
//!
//! Mechanism: in one transaction, binary COPY the batch into a session-local staging table,
//! then `SELECT edge_merge_batch()`: `INSERT INTO user_events … SELECT … FROM edge_staging
//! ON CONFLICT (event_id, event_time) DO NOTHING RETURNING …` (the rows really inserted),
//! the per-batch summary upserts and the counters fed by the inserted rows only; then
//! COMMIT. A replayed batch (after a
//! crash between COMMIT and the buffer's deletion, an ambiguous commit, or a client re-sending
//! an event_id) inserts nothing twice. The staging table is `ON COMMIT DELETE ROWS`.
//!
//! In deferred mode ([`queue_batch`], migration 0022) the batch is COPYed into the queue
//! `edge_pending` instead and committed; the applier ([`super::pending`]) stages it later
//! and calls the same `edge_merge_batch()`.
//!
//! Invariant: no value is formatted into SQL; every value travels in binary COPY format.

use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use futures_util::pin_mut;
use postgres_types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{binary_copy::BinaryCopyInWriter, Client, GenericClient};

use crate::event::Event;

/// Columns of `user_events` the collector writes, in COPY order.
const COLUMNS: &str = "event_id, user_id, session_id, event_type, event_name, page_url, referrer, \
    device_type, browser, os, country_code, region, city, event_time, properties, received_at, collector_id, \
    app_user_id, anonymous_id, source, traits";

/// Creates the staging table on this connection (once per connection) and turns JIT off.
///
/// Why JIT off: the per-batch statements of `edge_merge_batch()` touch a few thousand rows by
/// index, but the planner's estimates for the session's temporary tables (never analysed)
/// run to hundreds of thousands of rows once the tables they join grow, which crosses
/// `jit_above_cost`. PostgreSQL then compiled and optimised each such statement with LLVM
/// on every batch: measured with `auto_explain` during `bench drain` at 300k stored events,
/// one statement that read no row took 1.1 s, nearly all of it compilation.
pub async fn prepare(client: &Client) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(
            "SET jit = off;
            CREATE TEMP TABLE IF NOT EXISTS edge_staging (
                event_id UUID, user_id INT8, session_id TEXT, event_type TEXT, event_name TEXT,
                page_url TEXT, referrer TEXT, device_type TEXT, browser TEXT, os TEXT,
                country_code TEXT, region TEXT, city TEXT, event_time TIMESTAMPTZ,
                properties JSONB, received_at TIMESTAMPTZ, collector_id TEXT,
                app_user_id TEXT, anonymous_id TEXT, source TEXT, traits JSONB
            ) ON COMMIT DELETE ROWS",
        )
        .await
}

/// One event with the lineage of the record it came in.
pub struct Row<'a> {
    pub event: &'a Event,
    pub received_at_us: i64,
    pub collector_id: &'a str,
}

/// Writes `rows` in one transaction; returns how many were new (not already in the table).
pub async fn write_batch(
    client: &mut Client,
    rows: &[Row<'_>],
) -> Result<u64, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    copy_rows(&tx, "edge_staging", rows).await?;
    let inserted = merge_staged(&tx).await?;
    tx.commit().await?;
    Ok(inserted)
}

/// Commits `rows` to the maintenance queue `edge_pending` (migration 0022,
/// `forward.maintenance = "deferred"`) in one transaction: a bare COPY, no key to check;
/// [`super::pending::apply`] later moves them into `user_events`, exactly once. Returns
/// the rows queued.
pub async fn queue_batch(
    client: &mut Client,
    rows: &[Row<'_>],
) -> Result<u64, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let queued = copy_rows(&tx, "edge_pending", rows).await?;
    tx.commit().await?;
    Ok(queued)
}

/// Binary COPY of `rows` into `table` (one of the two above: the columns are `COLUMNS`).
async fn copy_rows(
    tx: &tokio_postgres::Transaction<'_>,
    table: &'static str,
    rows: &[Row<'_>],
) -> Result<u64, tokio_postgres::Error> {
    let sink = tx
        .copy_in(&format!(
            "COPY {table} ({COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let types = [
        Type::UUID,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::JSONB,
        Type::TIMESTAMPTZ,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::JSONB,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    for r in rows {
        let e = r.event;
        let properties = e.properties.as_deref().map(RawJsonb);
        let traits = e.traits.as_deref().map(RawJsonb);
        writer
            .as_mut()
            .write(&[
                &e.event_id,
                &e.user_id,
                &e.session_id,
                &e.event_type,
                &e.event_name,
                &e.page_url,
                &e.referrer,
                &e.device_type,
                &e.browser,
                &e.os,
                &e.country_code,
                &e.region,
                &e.city,
                &PgTimestamp(e.event_time_us),
                &properties,
                &PgTimestamp(r.received_at_us),
                &r.collector_id,
                &e.app_user_id,
                &e.anonymous_id,
                &e.source,
                &traits,
            ])
            .await?;
    }
    writer.finish().await
}

/// Moves the rows of the session's `edge_staging` into `user_events` (a row whose
/// (event_id, event_time) is already there is skipped) and runs the per-batch summaries and
/// rollups from the rows really inserted (`edge_merge_batch()`, migration 0011); returns
/// the rows inserted. Call it inside the batch's
/// transaction, after staging. Test loaders that stage rows with SQL use it too, so they
/// load exactly as the forwarder does.
pub async fn merge_staged<C: GenericClient>(c: &C) -> Result<u64, tokio_postgres::Error> {
    let inserted: i64 = c
        .query_one("SELECT edge_merge_batch()", &[])
        .await?
        .try_get(0)?;
    Ok(inserted.max(0) as u64)
}

/// A TIMESTAMPTZ from microseconds since the Unix epoch, without a calendar conversion.
#[derive(Debug)]
pub struct PgTimestamp(pub i64);

/// Microseconds between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

impl ToSql for PgTimestamp {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        out.put_i64(self.0 - PG_EPOCH_OFFSET_US);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ || *ty == Type::TIMESTAMP
    }
    to_sql_checked!();
}

/// JSON text sent as JSONB (version byte 1, then the text) without re-parsing it.
#[derive(Debug)]
pub struct RawJsonb<'a>(pub &'a str);

impl ToSql for RawJsonb<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        if *ty == Type::JSONB {
            out.put_u8(1);
        }
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }
    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    /// `edge_merge_batch()` (migration 0011) inserts the columns the COPY stages, by name.
    #[test]
    fn the_merge_function_inserts_every_staged_column() {
        let sql = include_str!("../../../migrations/0011_transitions.sql");
        let insert = sql
            .split("INSERT INTO user_events (")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .unwrap_or_default();
        let listed: Vec<&str> = insert.split(',').map(str::trim).collect();
        let staged: Vec<&str> = super::COLUMNS.split(',').map(str::trim).collect();
        assert_eq!(listed, staged);
    }
}
