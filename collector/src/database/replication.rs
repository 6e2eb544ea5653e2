//! Where the server's WAL stands and how far its physical standbys have it: what the
//! forwarder needs to keep a committed batch until a failover could no longer lose it.
//!
//! With asynchronous replication a primary acknowledges a COMMIT before any standby has
//! the WAL; if it dies then and a standby is promoted, the commit is gone. So after COMMIT
//! the forwarder reads [`position`] on the same session: the WAL position (at or after its
//! commit record) and the timeline. It keeps the batch's records until every physical
//! standby has flushed past that position (a standby promoted later replays all it has
//! flushed), and re-sends them if the server it next reaches is on another timeline (a
//! promoted standby) — the unique key absorbs what did survive.
//!
//! Standbys are the physical walsenders of `pg_stat_replication` (not base backups, not
//! logical decoding) plus inactive physical replication slots, whose `restart_lsn` is the
//! last position their standby confirmed: a standby that is disconnected for a moment still
//! counts. A role without `pg_read_all_stats` sees the walsenders but not their positions:
//! [`Standbys::Hidden`].

use tokio_postgres::Client;

/// One statement: the WAL position and timeline of this session's server, and its
/// standbys' flushed positions.
const POSITION: &str = "\
WITH standbys AS (
    SELECT r.flush_lsn AS lsn
    FROM pg_stat_replication r
    WHERE r.state IS DISTINCT FROM 'backup'
      AND NOT EXISTS (SELECT 1 FROM pg_replication_slots s
                      WHERE s.active_pid = r.pid AND s.slot_type = 'logical')
    UNION ALL
    SELECT s.restart_lsn FROM pg_replication_slots s
    WHERE s.slot_type = 'physical' AND NOT s.active
)
SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8,
       substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8),
       (SELECT count(*) FROM standbys),
       (SELECT count(lsn) FROM standbys),
       (SELECT (min(lsn) - '0/0'::pg_lsn)::int8 FROM standbys)";

/// A server's WAL position, as [`position`] read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The timeline: a promoted standby starts a new one.
    pub timeline: u32,
    /// The current WAL position (bytes since 0/0).
    pub lsn: u64,
    pub standbys: Standbys,
}

/// What the server says of its physical standbys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standbys {
    /// None: nothing to wait for.
    None,
    /// The lowest position every standby has flushed.
    Flushed(u64),
    /// Standbys whose positions this role may not read (grant it `pg_read_all_stats`).
    Hidden,
}

impl Position {
    /// Whether everything up to `lsn` on this server's timeline `timeline` is on every
    /// standby (or there are none).
    pub fn replicated(&self, timeline: u32, lsn: u64) -> Replicated {
        if timeline != self.timeline || lsn > self.lsn {
            // Another history: a promoted standby, or a server restored from a backup.
            return Replicated::Lost;
        }
        match self.standbys {
            Standbys::None => Replicated::Yes,
            Standbys::Flushed(min) if min >= lsn => Replicated::Yes,
            Standbys::Flushed(_) => Replicated::NotYet,
            Standbys::Hidden => Replicated::Unknown,
        }
    }
}

/// The answer of [`Position::replicated`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replicated {
    Yes,
    NotYet,
    /// The standbys' positions are hidden from this role.
    Unknown,
    /// This server does not continue the history the position was read on.
    Lost,
}

/// Reads this session's server position (a primary only: it fails during recovery).
pub async fn position(client: &Client) -> Result<Position, tokio_postgres::Error> {
    let row = client.query_one(POSITION, &[]).await?;
    let lsn: i64 = row.try_get(0)?;
    let timeline: String = row.try_get(1)?;
    let (count, seen): (i64, i64) = (row.try_get(2)?, row.try_get(3)?);
    let min: Option<i64> = row.try_get(4)?;
    let standbys = match (count, seen, min) {
        (0, _, _) => Standbys::None,
        (c, s, Some(min)) if c == s => Standbys::Flushed(min.max(0) as u64),
        _ => Standbys::Hidden,
    };
    Ok(Position {
        // The WAL file name starts with the timeline in 8 hex digits.
        timeline: u32::from_str_radix(&timeline, 16).unwrap_or(0),
        lsn: lsn.max(0) as u64,
        standbys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(standbys: Standbys) -> Position {
        Position {
            timeline: 2,
            lsn: 1000,
            standbys,
        }
    }

    #[test]
    fn a_position_is_replicated_once_every_standby_flushed_past_it() {
        assert_eq!(at(Standbys::None).replicated(2, 900), Replicated::Yes);
        assert_eq!(
            at(Standbys::Flushed(950)).replicated(2, 900),
            Replicated::Yes
        );
        assert_eq!(
            at(Standbys::Flushed(950)).replicated(2, 960),
            Replicated::NotYet
        );
        assert_eq!(at(Standbys::Hidden).replicated(2, 900), Replicated::Unknown);
    }

    #[test]
    fn another_timeline_or_a_server_behind_the_position_lost_it() {
        assert_eq!(at(Standbys::None).replicated(1, 900), Replicated::Lost);
        assert_eq!(at(Standbys::None).replicated(2, 1001), Replicated::Lost);
    }
}
