//! Streaming replication as the connected server sees it: whether it is a hot standby and
//! how far its data is behind ([`status`], one cheap statement the dashboard runs with every
//! refresh for the lag banner), and on a primary the lag of each standby streaming from it
//! ([`replication`], part of the Database analysis).
//!
//! Everything here only reads (functions and `pg_stat_replication`), so it works on a hot
//! standby and for the read-only `edge_monitor` role. That role is not a member of
//! `pg_monitor`: `pg_stat_replication` then shows a standby's row with its lag columns NULL,
//! which [`StandbyLag::visible`] reports instead of failing.
//!
//! Invariant: the lag is measured on the server's clock (`now()` against the replayed
//! commit time): this is the one place a query reads `now()` on the server, since the
//! monitor's clock and the server's may differ and health is "now" anyway
//! (`MONITOR_AS_OF` does not apply); a server function that does not exist in one role
//! (`pg_current_wal_lsn()` on a standby) is never called there.

use time::{format_description::well_known::Rfc3339, OffsetDateTime};
use tokio_postgres::Client;

use super::QueryError;
use crate::model::{ReplicaStatus, Replication, StandbyLag};

/// Whether the server is a standby and, if so, how far behind its data is.
pub async fn status(client: &Client) -> Result<ReplicaStatus, QueryError> {
    let row = client
        .query_one(
            "SELECT r.standby,
                    CASE WHEN r.standby THEN
                        CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM
                                  pg_last_wal_replay_lsn() THEN 0::FLOAT8
                             ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::FLOAT8
                        END
                    END,
                    CASE WHEN r.standby THEN
                        EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::FLOAT8
                    END,
                    CASE WHEN r.standby THEN pg_last_xact_replay_timestamp() END,
                    CASE WHEN r.standby THEN
                        pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::INT8
                    END
             FROM (SELECT pg_is_in_recovery() AS standby) r",
            &[],
        )
        .await?;
    Ok(ReplicaStatus {
        in_recovery: row.try_get(0)?,
        replay_lag_seconds: row.try_get::<_, Option<f64>>(1)?.map(|s| s.max(0.0)),
        last_replay_age_seconds: row.try_get::<_, Option<f64>>(2)?.map(|s| s.max(0.0)),
        last_replay_at: row
            .try_get::<_, Option<OffsetDateTime>>(3)?
            .and_then(|t| t.format(&Rfc3339).ok()),
        receive_replay_gap_bytes: row.try_get(4)?,
    })
}

/// [`status`] and the standbys streaming from this server (`pg_stat_replication`).
pub async fn replication(client: &Client) -> Result<Replication, QueryError> {
    let standbys = async {
        client
            .query(
                "SELECT COALESCE(s.application_name, '')::TEXT,
                host(s.client_addr),
                s.state::TEXT,
                s.sync_state::TEXT,
                EXTRACT(EPOCH FROM s.write_lag)::FLOAT8,
                EXTRACT(EPOCH FROM s.flush_lag)::FLOAT8,
                EXTRACT(EPOCH FROM s.replay_lag)::FLOAT8,
                CASE WHEN s.replay_lsn IS NULL THEN NULL
                     WHEN pg_is_in_recovery() THEN
                         pg_wal_lsn_diff(pg_last_wal_replay_lsn(), s.replay_lsn)::INT8
                     ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), s.replay_lsn)::INT8
                END,
                s.state IS NOT NULL
         FROM pg_stat_replication s
         ORDER BY 1, 2",
                &[],
            )
            .await
            .map_err(QueryError::from)
    };
    let (status, standbys) = tokio::try_join!(status(client), standbys)?;
    let standbys = standbys
        .iter()
        .map(|r| {
            Ok(StandbyLag {
                application_name: r.try_get(0)?,
                client_addr: r.try_get(1)?,
                state: r.try_get(2)?,
                sync_state: r.try_get(3)?,
                write_lag_seconds: r.try_get(4)?,
                flush_lag_seconds: r.try_get(5)?,
                replay_lag_seconds: r.try_get(6)?,
                replay_lag_bytes: r.try_get(7)?,
                visible: r.try_get(8)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok(Replication { status, standbys })
}
