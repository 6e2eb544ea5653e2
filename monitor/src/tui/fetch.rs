//! Fetching one refresh's data from the database, and the worker task that does it off the
//! UI task.
//!
//! [`fetch_section`] is the one place the dashboard calls the query library
//! ([`crate::query::run`]); everything else in the app works on its result ([`Fetched`]),
//! so the views and the update logic are tested from fixed data.
//!
//! Every request starts with the server's replication status
//! ([`crate::query::replica::status`]), so a standby's lag is known with each refresh.
//!
//! Invariant: a fetch always ends — connecting and the queries each have a deadline — and
//! ends either with data (some sections may have failed, each with its error) or with one
//! error saying why the database could not be used; a lost or timed-out connection is
//! dropped and opened again on the next attempt.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use tokio_postgres::{Client, NoTls};

use super::terminal;
use crate::{
    analysis::{Analysis, Params, Snapshot},
    app::{FetchOutcome, Fetched, Msg, TimeRange},
    model::{Filter, Range},
};

/// Connecting gives up after this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One analysis gives up after this long (its statement is then cancelled).
pub const SECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the analyses of `sections`, in that order, on `client` (one connection runs one
/// statement at a time anyway), timing each; used by the benchmark.
pub async fn fetch_snapshot(
    client: &Client,
    range: Range,
    steps: &[String],
    filter: &Filter,
    sections: &[Analysis],
) -> Fetched {
    let start = Instant::now();
    let mut out = Fetched::default();
    for &section in sections {
        let t = Instant::now();
        let result = fetch_section(client, range, steps, filter, section, &mut out.snapshot).await;
        out.timings.push((section, t.elapsed()));
        if let Err(e) = result {
            out.errors.push((section, e));
        }
        if client.is_closed() {
            break;
        }
    }
    out.total = start.elapsed();
    out
}

/// Runs one analysis into its field of `snapshot`, within [`SECTION_TIMEOUT`] (past it,
/// the statement is cancelled on the server and the section fails).
///
/// This is the dashboard's only entry into [`crate::query`].
pub async fn fetch_section(
    client: &Client,
    range: Range,
    steps: &[String],
    filter: &Filter,
    section: Analysis,
    snapshot: &mut Snapshot,
) -> Result<(), String> {
    let params = Params {
        range,
        steps,
        filter,
    };
    match tokio::time::timeout(SECTION_TIMEOUT, crate::query::run(client, section, params)).await {
        Ok(Ok(report)) => {
            snapshot.put(report);
            Ok(())
        }
        Ok(Err(e)) => Err(one_line(&e.to_string())),
        Err(_) => {
            cancel(client).await;
            Err(format!(
                "timed out after {}s (cancelled)",
                SECTION_TIMEOUT.as_secs()
            ))
        }
    }
}

/// Asks the server to cancel the statement running on `client`'s connection (bounded: an
/// unreachable server does not hold the caller).
async fn cancel(client: &Client) {
    let token = client.cancel_token();
    let _ = tokio::time::timeout(CONNECT_TIMEOUT, token.cancel_query(NoTls)).await;
}

/// Collapses an error to one line for the banner and the views.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What the UI asks the worker for.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    pub range: TimeRange,
    pub window: Range,
    pub steps: Vec<String>,
    pub filter: Filter,
    /// What to fetch, in order (the visible view first).
    pub sections: Vec<Analysis>,
}

/// Opens a connection with a deadline; the connection's driver runs on its own task.
pub async fn connect(url: &str) -> Result<Client, String> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
        format!("invalid database URL: {}", one_line(&e.to_string()))
    })?;
    config
        .connect_timeout(CONNECT_TIMEOUT)
        .application_name("edge-monitor");
    crate::query::session_options(&mut config);
    let connecting = config.connect(NoTls);
    let (client, connection) = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(describe(&e)),
        Err(_) => {
            return Err(format!(
                "cannot connect within {}s",
                CONNECT_TIMEOUT.as_secs()
            ))
        }
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A database error with its cause (tokio-postgres keeps the interesting part there).
fn describe(e: &tokio_postgres::Error) -> String {
    let mut s = e.to_string();
    if let Some(db) = e.as_db_error() {
        s = format!("{}: {}", db.code().code(), db.message());
    } else if let Some(src) = std::error::Error::source(e) {
        let src = src.to_string();
        if !s.contains(&src) {
            s = format!("{s}: {src}");
        }
    }
    one_line(&s)
}

/// The fetch worker: one connection, reopened when lost; one request at a time, each
/// section's result sent as soon as it is in (so the visible view is not held back by the
/// others), then a final outcome with the total time.
pub fn spawn_worker(url: String, to_ui: mpsc::UnboundedSender<Msg>) -> mpsc::Sender<FetchRequest> {
    let (tx, mut rx) = mpsc::channel::<FetchRequest>(4);
    tokio::spawn(async move {
        let mut client: Option<Arc<Client>> = None;
        while let Some(req) = rx.recv().await {
            if !serve(&url, &mut client, &req, &to_ui).await {
                break;
            }
        }
    });
    tx
}

/// Runs one request; false when the UI is gone.
async fn serve(
    url: &str,
    client: &mut Option<Arc<Client>>,
    req: &FetchRequest,
    to_ui: &mpsc::UnboundedSender<Msg>,
) -> bool {
    let send = |result: Result<Fetched, String>, done: bool| {
        to_ui
            .send(Msg::Fetched(Box::new(FetchOutcome {
                range: req.range,
                result,
                done,
            })))
            .is_ok()
    };
    let start = Instant::now();
    let c = match client.as_ref().filter(|c| !c.is_closed()) {
        Some(c) => c.clone(),
        None => {
            *client = None;
            match connect(url).await {
                Ok(c) => {
                    let c = Arc::new(c);
                    *client = Some(c.clone());
                    c
                }
                Err(e) => return send(Err(e), true),
            }
        }
    };
    // The replication status first (one cheap statement), so the lag banner follows every
    // refresh whatever the tab; failing, it is left out (the sections then say why).
    match replica_status(&c).await {
        Ok(Some(replica)) => {
            let part = Fetched {
                replica: Some(replica),
                ..Fetched::default()
            };
            if !send(Ok(part), false) {
                return false;
            }
        }
        Ok(None) => {}
        Err(e) => {
            // The next refresh reconnects (each host of the URL, under the connect deadline).
            *client = None;
            return send(Err(e), true);
        }
    }
    for &section in &req.sections {
        let t = Instant::now();
        let task = {
            let c = c.clone();
            let (window, steps, filter) = (req.window, req.steps.clone(), req.filter.clone());
            // A panic in the query code ends this task only, reported as an error.
            tokio::spawn(terminal::isolated(async move {
                let mut snapshot = Snapshot::default();
                let r = fetch_section(&c, window, &steps, &filter, section, &mut snapshot).await;
                (snapshot, r)
            }))
        };
        let mut part = Fetched::default();
        match task.await {
            Ok((snapshot, result)) => {
                part.snapshot = snapshot;
                if let Err(e) = result {
                    part.errors.push((section, e));
                }
            }
            Err(join) => part.errors.push((
                section,
                format!("internal error in the query: {}", panic_text(join)),
            )),
        }
        part.timings.push((section, t.elapsed()));
        part.total = t.elapsed();
        if c.is_closed() {
            *client = None;
            let first = part
                .errors
                .first()
                .map(|(_, e)| e.clone())
                .unwrap_or_else(|| "connection closed".into());
            return send(Err(format!("connection lost: {first}")), true);
        }
        if !send(Ok(part), false) {
            return false;
        }
    }
    send(
        Ok(Fetched {
            total: start.elapsed(),
            ..Fetched::default()
        }),
        true,
    )
}

/// The server's replication status: `Ok(None)` when it cannot be read (a role that may not
/// see it), `Err` when the server gave no answer within [`CONNECT_TIMEOUT`] — a frozen path
/// or a hung server, which the caller reports as unreachable instead of waiting on every
/// section's deadline.
async fn replica_status(client: &Client) -> Result<Option<crate::model::ReplicaStatus>, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, crate::query::replica::status(client)).await {
        Ok(Ok(status)) => Ok(Some(status)),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "replication status");
            Ok(None)
        }
        Err(_) => {
            cancel(client).await;
            Err(format!(
                "no answer within {}s (connection dropped)",
                CONNECT_TIMEOUT.as_secs()
            ))
        }
    }
}

fn panic_text(e: tokio::task::JoinError) -> String {
    if e.is_cancelled() {
        return "cancelled".into();
    }
    let payload = e.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".into()
    }
}
