//! The collector fleet from its heartbeats (`collector_heartbeats`).
//!
//! Definitions: `collectors` = the latest heartbeat of every collector that sent one in
//! `[from, to)`, by collector_id; `age_seconds` = `to − at`; `fill` = buffered_bytes /
//! buffer_limit_bytes clamped to 0..=1 (0 without a limit); `drain_seconds` =
//! buffered_events / forward_rate when the rate is positive. `history` = every collector's
//! buffered events and forward rate over the range, downsampled to at most
//! [`HISTORY_POINTS`] points per collector (the last heartbeat of each time slot), oldest
//! first.
//!
//! Invariant: a collector's row is its newest heartbeat in the range, never a mix of
//! heartbeats.

use time::{format_description::well_known::Rfc3339, OffsetDateTime};
use tokio_postgres::{types::ToSql, Client, Row};

use super::{check_range, QueryError};
use crate::model::{CollectorHealth, CollectorRow, Collectors, HistoryPoint, Range, Source};

/// Most history points per collector.
pub const HISTORY_POINTS: f64 = 120.0;
/// The finest history slot: the collectors' default heartbeat interval.
const MIN_SLOT_SECONDS: f64 = 10.0;

pub async fn collectors(client: &Client, range: Range) -> Result<Collectors, QueryError> {
    check_range(range)?;
    let span = (range.to - range.from).as_seconds_f64();
    let slot = (span / HISTORY_POINTS).max(MIN_SLOT_SECONDS);
    let latest_params: [&(dyn ToSql + Sync); 2] = [&range.from, &range.to];
    let latest = client.query(
        "SELECT DISTINCT ON (collector_id)
                collector_id, region, version, at, buffered_events, buffered_bytes,
                buffer_limit_bytes, oldest_buffered_age_seconds, accepted_total,
                forwarded_total, rejected_total, quarantined_total, forward_rate, last_error,
                database_state, forwarding_paused
         FROM collector_heartbeats
         WHERE at >= $1 AND at < $2
         ORDER BY collector_id, at DESC",
        &latest_params,
    );
    let history_params: [&(dyn ToSql + Sync); 3] = [&range.from, &range.to, &slot];
    let history = client.query(
        "SELECT max(at), collector_id,
                last(buffered_events, at), last(forward_rate, at), last(database_state, at)
         FROM collector_heartbeats
         WHERE at >= $1 AND at < $2
         GROUP BY time_bucket(make_interval(secs => $3), at), collector_id
         ORDER BY 1, 2",
        &history_params,
    );
    let (latest, history) = tokio::try_join!(latest, history)?;
    let collectors = latest
        .iter()
        .map(|r| row(r, range.to))
        .collect::<Result<Vec<_>, _>>()?;
    let history = history
        .iter()
        .map(|r| {
            Ok(HistoryPoint {
                at: r.try_get(0)?,
                collector_id: r.try_get(1)?,
                buffered_events: r.try_get::<_, Option<i64>>(2)?.unwrap_or(0),
                forward_rate: r.try_get::<_, Option<f64>>(3)?.unwrap_or(0.0),
                database_state: r.try_get::<_, Option<String>>(4)?.unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok(Collectors {
        collectors,
        history,
    })
}

fn row(r: &Row, now: OffsetDateTime) -> Result<CollectorRow, tokio_postgres::Error> {
    let at: OffsetDateTime = r.try_get(3)?;
    let int = |i: usize| -> Result<i64, tokio_postgres::Error> {
        Ok(r.try_get::<_, Option<i64>>(i)?.unwrap_or(0))
    };
    let float = |i: usize| -> Result<f64, tokio_postgres::Error> {
        Ok(r.try_get::<_, Option<f64>>(i)?.unwrap_or(0.0))
    };
    let text = |i: usize| -> Result<String, tokio_postgres::Error> {
        Ok(r.try_get::<_, Option<String>>(i)?.unwrap_or_default())
    };
    let health = CollectorHealth {
        collector_id: r.try_get(0)?,
        region: text(1)?,
        version: text(2)?,
        at: at.format(&Rfc3339).unwrap_or_default(),
        buffered_events: int(4)?,
        buffered_bytes: int(5)?,
        buffer_limit_bytes: int(6)?,
        oldest_buffered_age_seconds: float(7)?,
        accepted_total: int(8)?,
        forwarded_total: int(9)?,
        rejected_total: int(10)?,
        quarantined_total: int(11)?,
        forward_rate: float(12)?,
        last_error: r.try_get(13)?,
        database_state: text(14)?,
        forwarding_paused: r.try_get::<_, Option<bool>>(15)?.unwrap_or(false),
    };
    Ok(derive(health, Source::Heartbeat, now, at))
}

/// A collector row's derived fields (age, fill, drain time) from its health.
pub fn derive(
    health: CollectorHealth,
    source: Source,
    now: OffsetDateTime,
    at: OffsetDateTime,
) -> CollectorRow {
    let fill = if health.buffer_limit_bytes > 0 {
        (health.buffered_bytes as f64 / health.buffer_limit_bytes as f64).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let drain_seconds =
        (health.forward_rate > 0.0).then(|| health.buffered_events as f64 / health.forward_rate);
    CollectorRow {
        age_seconds: (now - at).as_seconds_f64().max(0.0),
        fill,
        drain_seconds,
        health,
        source,
    }
}

impl super::Query for Collectors {
    async fn run(
        client: &Client,
        params: crate::analysis::Params<'_>,
    ) -> Result<Collectors, QueryError> {
        collectors(client, params.range).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn derived_fields() {
        let health = CollectorHealth {
            buffered_events: 1000,
            buffered_bytes: 50,
            buffer_limit_bytes: 200,
            forward_rate: 500.0,
            ..Default::default()
        };
        let at = datetime!(2024-05-01 10:00 UTC);
        let r = derive(
            health.clone(),
            Source::Heartbeat,
            datetime!(2024-05-01 10:00:30 UTC),
            at,
        );
        assert_eq!(r.fill, 0.25);
        assert_eq!(r.drain_seconds, Some(2.0));
        assert_eq!(r.age_seconds, 30.0);
        let idle = derive(
            CollectorHealth {
                forward_rate: 0.0,
                buffer_limit_bytes: 0,
                ..health
            },
            Source::Poll,
            at,
            at,
        );
        assert_eq!(idle.fill, 0.0);
        assert_eq!(idle.drain_seconds, None);
    }
}
