//! The deferred maintenance queue (`forward.maintenance = "deferred"`, migration 0022):
//! applying its oldest events, rejecting one the maintenance refuses, reading its depth.
//!
//! The forwarders fill the queue with [`super::copy::queue_batch`]. [`apply`] runs
//! `edge_apply_pending()` in a transaction of its own: the events it takes leave the queue
//! in the same commit that inserts them into `user_events` with their summaries and rollups.
//!
//! Invariant: a queued event is applied exactly once or moved to `edge_pending_rejected`;
//! nothing leaves the queue otherwise.

use tokio_postgres::Client;

/// What one application did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Another applier (another collector) holds the queue's lock right now.
    Busy,
    /// The events staged and applied (0: the queue was empty).
    Events(u64),
}

/// Applies the oldest `max_events` queued events in one transaction. The session must have
/// the staging table ([`super::copy::prepare`]).
pub async fn apply(
    client: &mut Client,
    max_events: usize,
) -> Result<Applied, tokio_postgres::Error> {
    let max = i32::try_from(max_events).unwrap_or(i32::MAX);
    let tx = client.transaction().await?;
    let n: i64 = tx
        .query_one("SELECT edge_apply_pending($1)", &[&max])
        .await?
        .try_get(0)?;
    tx.commit().await?;
    Ok(if n < 0 {
        Applied::Busy
    } else {
        Applied::Events(n as u64)
    })
}

/// Moves the oldest queued event to `edge_pending_rejected` with `error`; returns its
/// queue sequence number, or None when the queue is empty or another applier holds it.
pub async fn reject_oldest(
    client: &mut Client,
    error: &str,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let seq: Option<i64> = tx
        .query_one("SELECT edge_reject_pending($1)", &[&error])
        .await?
        .try_get(0)?;
    tx.commit().await?;
    Ok(seq)
}

/// How many events wait in the queue (an upper bound; index reads only).
pub async fn depth(client: &Client) -> Result<u64, tokio_postgres::Error> {
    let n: i64 = client
        .query_one("SELECT edge_pending_depth()", &[])
        .await?
        .try_get(0)?;
    Ok(n.max(0) as u64)
}
