//! Connections to the central database, with a deadline on every step.
//!
//! tokio-postgres applies `connect_timeout` to the TCP connect only, and tries the hosts of
//! a multi-host URL (`postgres://h1:p1,h2:p2/db?target_session_attrs=read-write`) in order
//! within one call. A host that accepts the connection and never answers — a silent
//! partition, a hung server, a relay that froze — then holds the handshake, and so the whole
//! call, forever, and the next host is never tried. So this module splits the URL into one
//! URL per host and gives each its own deadline (TCP connect, TLS and startup together),
//! and [`bounded`] gives every later step (prepare, COPY, commit, a heartbeat insert) one.
//!
//! A connection also gets TCP keepalives and `tcp_user_timeout` (a dead peer is noticed by
//! the kernel), and `statement_timeout` and `idle_in_transaction_session_timeout` on the
//! server (a client that vanished mid-COPY, or between its INSERT and its COMMIT, does not
//! hold the server's locks past the deadline: the retried batch would wait on them).
//!
//! Invariant: no call of this module waits longer than its deadline; a connection dropped
//! after a deadline also stops its driver task, so its socket is closed, not leaked.

use std::{future::Future, time::Duration};

use thiserror::Error;
use tokio::task::AbortHandle;
use tokio_postgres::Client;

use super::{classify, ErrorClass};

/// The longest `tcp_user_timeout`: how long sent data may stay unacknowledged before the
/// kernel declares the peer dead, whatever the statements' own limit.
const MAX_TCP_USER_TIMEOUT: Duration = Duration::from_secs(60);

/// The deadlines of one kind of caller.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// One host's TCP connect, TLS and startup together.
    pub connect: Duration,
    /// One statement or COPY, commit included; also the server's `statement_timeout`.
    pub operation: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            connect: Duration::from_secs(10),
            operation: Duration::from_secs(60),
        }
    }
}

/// A failed database step: the driver's error, or a deadline that passed.
#[derive(Debug, Error)]
pub enum Failure {
    #[error("{}", describe(.0))]
    Pg(#[from] tokio_postgres::Error),
    #[error("{what} took longer than {after:?} (database unreachable or not answering)")]
    Timeout { what: &'static str, after: Duration },
}

impl Failure {
    /// How the forwarder reacts ([`ErrorClass`]); a deadline is transient.
    pub fn class(&self) -> ErrorClass {
        match self {
            Failure::Pg(e) => classify(e),
            Failure::Timeout { .. } => ErrorClass::Transient,
        }
    }
}

/// The server's message with its SQLSTATE, or the client error.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({}): {}", db.severity(), db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// An open connection; dropping it closes the socket (its driver task is aborted).
pub struct Conn {
    client: Client,
    driver: AbortHandle,
}

impl std::ops::Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Runs one database step under `limit`.
pub async fn bounded<T, F>(what: &'static str, limit: Duration, step: F) -> Result<T, Failure>
where
    F: Future<Output = Result<T, tokio_postgres::Error>>,
{
    match tokio::time::timeout(limit, step).await {
        Ok(r) => r.map_err(Failure::from),
        Err(_) => Err(Failure::Timeout { what, after: limit }),
    }
}

/// Connects to the first host of `url` that answers within `bounds.connect` and suits its
/// `target_session_attrs`, trying them in order; the last failure when none does.
pub async fn open(url: &str, bounds: Bounds) -> Result<Conn, Failure> {
    let mut last = None;
    let hosts = split_hosts(url);
    for (i, one) in hosts.iter().enumerate() {
        let failure = match tokio::time::timeout(bounds.connect, open_one(one, bounds)).await {
            Ok(Ok(conn)) => {
                tracing::debug!(host = i + 1, of = hosts.len(), "connected");
                return Ok(conn);
            }
            Ok(Err(e)) => Failure::Pg(e),
            Err(_) => Failure::Timeout {
                what: "connecting",
                after: bounds.connect,
            },
        };
        tracing::debug!(host = i + 1, of = hosts.len(), error = %failure, "host failed");
        last = Some(failure);
    }
    Err(last.unwrap_or(Failure::Timeout {
        what: "connecting (no host in the URL)",
        after: Duration::ZERO,
    }))
}

async fn open_one(url: &str, bounds: Bounds) -> Result<Conn, tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(bounds.connect);
    }
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3)
        // At most a minute of unacknowledged data, even for a command whose statements may
        // run for hours (it would also stretch the keepalives' verdict on a dead peer).
        .tcp_user_timeout(bounds.operation.min(MAX_TCP_USER_TIMEOUT));
    if config.get_application_name().is_none() {
        config.application_name("edge-collector");
    }
    let (client, driver) = match super::tls() {
        Some(tls) => {
            let (client, connection) = config.connect(tls).await?;
            (client, tokio::spawn(drive(connection)).abort_handle())
        }
        None => {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
            (client, tokio::spawn(drive(connection)).abort_handle())
        }
    };
    let conn = Conn { client, driver };
    // A session whose client vanished must not hold its locks past the deadline, whether
    // it was inside a statement (statement_timeout) or between two (a frozen client after
    // its INSERT and before its COMMIT: idle_in_transaction_session_timeout). The retried
    // batch would otherwise wait on those rows' unique-index entries.
    let ms = bounds.operation.as_millis().to_string();
    conn.execute(
        "SELECT set_config('statement_timeout', $1, false), \
                set_config('idle_in_transaction_session_timeout', $1, false)",
        &[&ms],
    )
    .await?;
    Ok(conn)
}

/// Drives a connection until it closes.
async fn drive<F: Future<Output = Result<(), tokio_postgres::Error>>>(connection: F) {
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "database connection closed");
    }
}

/// One connection string per host of `url`, everything else kept: `postgres://u@h1:1,h2:2/d`
/// gives `postgres://u@h1:1/d` and `postgres://u@h2:2/d`; `host=h1,h2 port=1,2 dbname=d` gives
/// `host=h1 port=1 dbname=d` and `host=h2 port=2 dbname=d` (one port applies to every host).
pub fn split_hosts(url: &str) -> Vec<String> {
    if url.contains("://") {
        split_url(url)
    } else {
        split_key_values(url)
    }
}

fn split_url(url: &str) -> Vec<String> {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return vec![url.to_string()];
    };
    let rest = &url[scheme_end..];
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    if !hosts.contains(',') {
        return vec![url.to_string()];
    }
    hosts
        .split(',')
        .map(|host| format!("{}{userinfo}{host}{}", &url[..scheme_end], &rest[end..]))
        .collect()
}

fn split_key_values(s: &str) -> Vec<String> {
    let parts: Vec<(&str, &str)> = s
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let list = |key: &str| -> Vec<&str> {
        parts
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.split(',').collect())
            .unwrap_or_default()
    };
    let (hosts, ports) = (list("host"), list("port"));
    if hosts.len() < 2 {
        return vec![s.to_string()];
    }
    hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first());
            parts
                .iter()
                .map(|(k, v)| match *k {
                    "host" => format!("host={host}"),
                    "port" => port.map(|p| format!("port={p}")).unwrap_or_default(),
                    _ => format!("{k}={v}"),
                })
                .filter(|kv| !kv.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_multi_host_url_keeping_the_rest() {
        assert_eq!(
            split_hosts("postgres://u:p%40w@h1:5432,h2:5433/db?target_session_attrs=read-write"),
            vec![
                "postgres://u:p%40w@h1:5432/db?target_session_attrs=read-write",
                "postgres://u:p%40w@h2:5433/db?target_session_attrs=read-write",
            ]
        );
        assert_eq!(
            split_hosts("postgres://h1,h2"),
            vec!["postgres://h1", "postgres://h2"]
        );
        assert_eq!(split_hosts("postgres://u@h/db"), vec!["postgres://u@h/db"]);
    }

    #[test]
    fn splits_key_value_strings_with_one_or_many_ports() {
        assert_eq!(
            split_hosts("host=a,b port=1,2 dbname=d"),
            vec!["host=a port=1 dbname=d", "host=b port=2 dbname=d"]
        );
        assert_eq!(
            split_hosts("host=a,b port=7 user=u"),
            vec!["host=a port=7 user=u", "host=b port=7 user=u"]
        );
        assert_eq!(split_hosts("host=a dbname=d"), vec!["host=a dbname=d"]);
    }

    #[tokio::test]
    async fn a_host_that_never_answers_costs_one_deadline_then_the_next_is_tried() {
        // Accepts and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let refused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let refused_addr = refused.local_addr().expect("addr");
        drop(refused);
        let url = format!(
            "postgres://u@{},{}/db",
            silent.local_addr().expect("addr"),
            refused_addr
        );
        let bounds = Bounds {
            connect: Duration::from_millis(300),
            operation: Duration::from_secs(1),
        };
        let started = std::time::Instant::now();
        let e = open(&url, bounds).await.err().expect("no host works");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // The second host was tried: its refusal is the last failure.
        assert!(matches!(e, Failure::Pg(_)), "{e}");
    }
}
