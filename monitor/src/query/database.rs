//! Database health: edition, sizes of the event hypertable, the aggregates and the summary
//! tables, chunk count, columnstore ratio and TimescaleDB's background jobs — the seed's
//! monitoring section done with today's views (`timescaledb_information.jobs`, `job_stats`,
//! `job_errors`, `continuous_aggregates`; the seed's `continuous_aggregate_stats` no longer
//! exists).
//!
//! The range is not used: health is "now". Works for the read-only `edge_monitor` role and
//! on a hot standby; the replication status and the standbys' lag come from
//! [`super::replica`].
//!
//! Invariant: an object's kind says what it is on this server — a continuous aggregate
//! (with the size of its materialization) on the Community edition, a plain view (no
//! storage) on apache.

use time::{format_description::well_known::Rfc3339, OffsetDateTime};
use tokio_postgres::Client;

use super::{check_range, QueryError};
use crate::model::{DatabaseHealth, Job, ObjectSize, Range};

pub async fn database(client: &Client, range: Range) -> Result<DatabaseHealth, QueryError> {
    check_range(range)?;
    let edition = client.query_one(
        "SELECT current_setting('timescaledb.license', true),
                (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb')",
        &[],
    );
    // Sizes from TimescaleDB's catalog: a hypertable's chunks plus, on the Community edition,
    // the chunks of its columnstore companion. `hypertable_size()` gives the same numbers
    // but took 5-10x longer (hundreds of ms per hypertable) in our measurements.
    let objects = client.query(
        "WITH sizes AS (
             SELECT h.schema_name, h.table_name,
                    (pg_total_relation_size(format('%I.%I', h.schema_name, h.table_name)::REGCLASS)
                     + COALESCE((
                         SELECT sum(pg_total_relation_size(
                                    to_regclass(format('%I.%I', c.schema_name, c.table_name))))
                         FROM _timescaledb_catalog.chunk c
                         WHERE c.hypertable_id = h.id
                            OR c.hypertable_id = h.compressed_hypertable_id), 0))::INT8 AS bytes
             FROM _timescaledb_catalog.hypertable h
         )
         SELECT s.table_name::TEXT, 'hypertable', s.bytes
         FROM sizes s
         WHERE s.schema_name = 'public'
         UNION ALL
         SELECT a.name, a.kind, s.bytes
         FROM edge_aggregates a
         LEFT JOIN timescaledb_information.continuous_aggregates ca
                ON ca.view_schema = 'public' AND ca.view_name = a.name
         LEFT JOIN sizes s
                ON s.schema_name = ca.materialization_hypertable_schema
               AND s.table_name = ca.materialization_hypertable_name
         UNION ALL
         SELECT c.relname::TEXT, 'table', pg_total_relation_size(c.oid)
         FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
         WHERE c.relkind IN ('r', 'p')
           AND NOT EXISTS (SELECT 1 FROM _timescaledb_catalog.hypertable h
                           WHERE h.schema_name = 'public' AND h.table_name = c.relname)
         ORDER BY 2, 1",
        &[],
    );
    let chunks = client.query_one(
        "SELECT count(*)::INT8 FROM timescaledb_information.chunks
         WHERE hypertable_schema = 'public' AND hypertable_name = 'user_events'",
        &[],
    );
    // Continuous aggregates' jobs target their materialization hypertable: name the view.
    let jobs = client.query(
        "SELECT j.job_id, j.application_name::TEXT,
                COALESCE(ca.view_name::TEXT, j.hypertable_name::TEXT, j.proc_name::TEXT),
                j.schedule_interval::TEXT,
                -- A job that never ran reports -infinity, which no Rust time holds.
                CASE WHEN isfinite(s.last_run_started_at) THEN s.last_run_started_at END,
                s.last_run_status::TEXT,
                COALESCE(s.total_failures, 0)::INT8,
                e.err_message
         FROM timescaledb_information.jobs j
         LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
         LEFT JOIN timescaledb_information.continuous_aggregates ca
                ON ca.materialization_hypertable_schema = j.hypertable_schema
               AND ca.materialization_hypertable_name = j.hypertable_name
         LEFT JOIN LATERAL (
             SELECT x.err_message::TEXT AS err_message
             FROM timescaledb_information.job_errors x
             WHERE x.job_id = j.job_id
             ORDER BY x.finish_time DESC NULLS LAST
             LIMIT 1
         ) e ON true
         ORDER BY j.job_id",
        &[],
    );
    let (edition, objects, chunks, jobs) = tokio::try_join!(edition, objects, chunks, jobs)?;
    let replication = super::replica::replication(client).await?;
    let extension_version: String = edition.try_get::<_, Option<String>>(1)?.unwrap_or_default();
    let edition: String = edition.try_get::<_, Option<String>>(0)?.unwrap_or_default();
    // Columnstore statistics exist only where the columnstore does.
    let compression_ratio = if edition == "timescale" {
        client
            .query_one(
                "SELECT sum(before_compression_total_bytes)::FLOAT8
                        / NULLIF(sum(after_compression_total_bytes), 0)::FLOAT8
                 FROM hypertable_compression_stats('user_events')",
                &[],
            )
            .await?
            .try_get(0)?
    } else {
        None
    };
    Ok(DatabaseHealth {
        extension_version,
        edition,
        objects: objects
            .iter()
            .map(|r| {
                Ok(ObjectSize {
                    name: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    bytes: r.try_get(2)?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()?,
        chunks: chunks.try_get(0)?,
        compression_ratio,
        jobs: jobs
            .iter()
            .map(|r| {
                Ok(Job {
                    id: r.try_get(0)?,
                    name: r.try_get::<_, Option<String>>(1)?.unwrap_or_default(),
                    target: r.try_get::<_, Option<String>>(2)?.unwrap_or_default(),
                    schedule: r.try_get::<_, Option<String>>(3)?.unwrap_or_default(),
                    last_run: r
                        .try_get::<_, Option<OffsetDateTime>>(4)?
                        .and_then(|t| t.format(&Rfc3339).ok()),
                    last_status: r.try_get(5)?,
                    total_failures: r.try_get(6)?,
                    last_error: r.try_get(7)?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()?,
        replication,
    })
}

impl super::Query for DatabaseHealth {
    async fn run(
        client: &Client,
        params: crate::analysis::Params<'_>,
    ) -> Result<DatabaseHealth, QueryError> {
        database(client, params.range).await
    }
}
