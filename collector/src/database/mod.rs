//! The database stage: connections to the central TimescaleDB, edition detection, schema
//! migrations and the binary COPY of buffered events.
//!
//! Invariant: every statement the collector sends is either parameterised or a binary COPY;
//! no event value is ever formatted into SQL text.

pub mod connect;
pub mod copy;
pub mod heartbeats;
pub mod maintenance;
pub mod migrate;
pub mod pending;
pub mod replication;
mod split;

use std::fmt;

use thiserror::Error;
use tokio_postgres::Client;

pub use connect::{Conn, Failure};

/// Which TimescaleDB build the server runs (`SHOW timescaledb.license`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Edition {
    /// The Apache-2 edition: hypertables, `time_bucket`, manual `drop_chunks`; no continuous
    /// aggregates, columnstore or policies.
    Apache,
    /// The Community (TSL) edition: continuous aggregates, columnstore and job policies.
    Timescale,
}

impl Edition {
    /// The file-name tag of migrations written for this edition only (`NNNN_x.apache.sql`).
    pub fn tag(self) -> &'static str {
        match self {
            Edition::Apache => "apache",
            Edition::Timescale => "timescale",
        }
    }
}

impl fmt::Display for Edition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

/// Errors talking to the database, classified so callers can tell outages from bad data.
#[derive(Debug, Error)]
pub enum DbError {
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] connect::Failure),
    #[error("the TimescaleDB extension is not installed on this server (pg_available_extensions has no 'timescaledb'); install it and add it to shared_preload_libraries")]
    ExtensionMissing,
    #[error("the TimescaleDB extension is installed but could not be created: {0}")]
    ExtensionCreate(#[source] tokio_postgres::Error),
    #[error("unknown TimescaleDB license {0:?} (expected 'apache' or 'timescale')")]
    UnknownLicense(String),
    #[error("migration {file} failed at statement {index} ({snippet}): {source}")]
    Migration {
        file: String,
        index: usize,
        snippet: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("migration file {0} has no generic variant and no variant for this edition")]
    MissingVariant(String),
    #[error("the database is read-only (a hot standby?): migrations run on the primary; point --database-url at it, or list every host with target_session_attrs=read-write")]
    ReadOnly,
    #[error("database error: {0}")]
    Query(#[from] tokio_postgres::Error),
}

/// Opens one connection for an operator command (migrate, maintain) or a test, with the
/// default deadlines ([`connect::Bounds`]): each host of the URL is tried in turn.
pub async fn connect(url: &str) -> Result<Conn, DbError> {
    connect::open(url, connect::Bounds::default())
        .await
        .map_err(DbError::Connect)
}

/// Like [`connect()`], for a command whose statements may run long (`collector migrate`'s
/// backfills read every stored event; `collector maintain` drops chunks): each statement
/// may take up to `operation` (also the server's `statement_timeout`) instead of the
/// forwarder's 60 s.
pub async fn connect_for(url: &str, operation: std::time::Duration) -> Result<Conn, DbError> {
    let bounds = connect::Bounds {
        operation,
        ..connect::Bounds::default()
    };
    connect::open(url, bounds).await.map_err(DbError::Connect)
}

/// TLS for database connections, negotiated as the URL's `sslmode` says (`disable`,
/// `prefer` — the default — or `require`), verified against the system's CA store. `None`
/// when the system TLS library is unusable: then only plain connections work and a
/// `sslmode=require` URL fails to connect with a clear error.
pub fn tls() -> Option<postgres_native_tls::MakeTlsConnector> {
    static TLS: std::sync::OnceLock<Option<postgres_native_tls::MakeTlsConnector>> =
        std::sync::OnceLock::new();
    TLS.get_or_init(|| match native_tls::TlsConnector::new() {
        Ok(c) => Some(postgres_native_tls::MakeTlsConnector::new(c)),
        Err(e) => {
            tracing::warn!(error = %e, "TLS is unavailable for database connections");
            None
        }
    })
    .clone()
}

/// Reads the edition of an installed TimescaleDB extension.
pub async fn edition(client: &Client) -> Result<Edition, DbError> {
    let row = client.query_one("SHOW timescaledb.license", &[]).await?;
    let license: String = row.get(0);
    match license.as_str() {
        "apache" => Ok(Edition::Apache),
        "timescale" => Ok(Edition::Timescale),
        other => Err(DbError::UnknownLicense(other.to_string())),
    }
}

/// What kind of failure a database error is, which decides how the forwarder reacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The database is unreachable, restarting, overloaded or the transaction lost a race:
    /// retry the same batch, forever, with backoff.
    Transient,
    /// A row broke a constraint or a type: split the batch to isolate the row.
    Data,
    /// Credentials, permissions or schema are wrong: retry slowly and alert an operator.
    Config,
}

/// Classifies an error by SQLSTATE (see FACTS.md): no SQLSTATE (I/O), classes 08, 53, 57 and
/// codes 40001, 40P01, 55P03 are transient; classes 22 and 23 are data errors; everything
/// else (28 authentication, 42 schema, …) is treated as configuration.
pub fn classify(err: &tokio_postgres::Error) -> ErrorClass {
    let Some(state) = err.code() else {
        return ErrorClass::Transient;
    };
    let code = state.code();
    match &code[..2] {
        "08" | "53" | "57" | "58" => ErrorClass::Transient,
        "22" | "23" => ErrorClass::Data,
        // 54000: a value too large for an index row: refused per row, not a configuration.
        _ if code == "54000" => ErrorClass::Data,
        _ if matches!(code, "40001" | "40P01" | "55P03" | "55006") => ErrorClass::Transient,
        _ => ErrorClass::Config,
    }
}
