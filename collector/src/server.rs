//! `collector serve`: wires the pipeline together and runs it until a shutdown signal.
//!
//! ```text
//!   clients ──HTTP──▶ http (validate) ──append+group flush──▶ buffer (sled)
//!                                                               │
//!   TimescaleDB ◀──binary COPY + ON CONFLICT DO NOTHING── forward ◀┘
//! ```
//!
//! The accept loop follows mini-redis: a semaphore bounds open connections, each connection
//! is served on its own task ([`crate::connection`]: TLS when `[tls]` is set, then HTTP/1.1
//! or HTTP/2), and shutdown is one [`Shutdown`] signal. SIGHUP reloads the TLS certificate
//! ([`crate::tls`]) without touching open connections. On SIGTERM/SIGINT the
//! listeners stop accepting, in-flight requests finish (each one's events are flushed before
//! its 2xx), a batch being forwarded is abandoned (it stays in the buffer), the buffer is
//! flushed, and the process exits 0.
//!
//! Invariants: the process keeps accepting events while the database is unreachable; only a
//! full or failing buffer makes ingest refuse (503). Shutdown is bounded whatever the
//! database does: open connections get `shutdown_timeout_secs` to finish their requests,
//! every database step is abandoned at once, and each task gets a fixed grace after that.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use hyper::{body::Incoming, Request};
use thiserror::Error;
use tokio::{net::TcpListener, sync::Semaphore, task::JoinHandle};
use tokio_rustls::TlsAcceptor;

use crate::{
    admin::Admin,
    buffer::{Buffer, BufferError},
    config::Config,
    connection::{Bounds, Protocols},
    forward::Forwarder,
    http::{geo::Locator, Ingest},
    metrics::Metrics,
    shutdown::Shutdown,
    state::ForwardState,
    tail::Tail,
    tls::{Certificates, Hangup, TlsError},
};

/// How long a stopping task may take once the signal fired (all of them race their steps
/// against it, so this only guards against a step that never yields).
const TASK_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Error)]
pub enum ServeError {
    #[error(transparent)]
    Buffer(#[from] BufferError),
    #[error(transparent)]
    Geo(#[from] crate::geo::GeoError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot register the SIGHUP handler: {0}")]
    Signal(#[source] std::io::Error),
}

/// A bound, not yet running collector. Binding first lets callers learn the real ports.
pub struct Server {
    ingest: Arc<Ingest>,
    admin: Arc<Admin>,
    ingest_listener: TcpListener,
    admin_listener: TcpListener,
    forwarder: Option<Forwarder>,
    buffer: Buffer,
    config: Config,
    /// The TLS certificate, when `[tls]` is set, and the listeners it serves.
    certs: Option<Arc<Certificates>>,
    ingest_tls: Option<TlsAcceptor>,
    admin_tls: Option<TlsAcceptor>,
    hangup: Hangup,
}

impl Server {
    /// Loads the TLS certificate (when configured), registers SIGHUP, opens the buffer and
    /// binds both listeners.
    pub async fn bind(config: Config) -> Result<Server, ServeError> {
        // First: a geography file that cannot be used stops the start before anything else.
        let locator = Locator::from_config(&config.geo, config.limits.max_string_bytes)?;
        let certs = match config.tls.files() {
            Some((cert, key)) => Some(Certificates::load(cert, key)?),
            None => None,
        };
        let acceptor = match &certs {
            Some(c) => Some(TlsAcceptor::from(c.server_config(config.tls.http2)?)),
            None => None,
        };
        let ingest_tls = acceptor.clone();
        let admin_tls = acceptor.filter(|_| config.tls.admin);
        let hangup = Hangup::register().map_err(ServeError::Signal)?;
        let buffer = open_or_set_aside(&config)?;
        let stats = buffer.stats();
        if stats.damaged_records > 0 {
            tracing::error!(damaged = stats.damaged_records, "the buffer holds damaged records: they are skipped and kept; run `collector buffer verify`");
        }
        tracing::info!(events = stats.events, bytes = stats.bytes, dir = %config.data_dir.display(), "buffer opened");
        let metrics = Metrics::new(buffer.flush_latency());
        let state = Arc::new(ForwardState::new(config.forward.start_paused));
        let forwarder = config.database_url.clone().map(|url| {
            Forwarder::new(
                url,
                config.clone(),
                buffer.clone(),
                metrics.clone(),
                state.clone(),
            )
        });
        if forwarder.is_none() {
            tracing::warn!("no database_url configured: events are buffered but not forwarded");
        }
        let ingest_listener = listen(config.listen, config.limits.max_connections)?;
        let admin_listener = listen(config.admin_listen, 64)?;
        let tail = Arc::new(Tail::new(config.admin_tail_events));
        let ingest = Arc::new(Ingest::new(
            config.clone(),
            buffer.clone(),
            metrics.clone(),
            state.clone(),
            tail.clone(),
            locator,
        ));
        let admin = Arc::new(Admin::new(
            config.clone(),
            buffer.clone(),
            metrics,
            state,
            tail,
        ));
        Ok(Server {
            ingest,
            admin,
            ingest_listener,
            admin_listener,
            forwarder,
            buffer,
            config,
            certs,
            ingest_tls,
            admin_tls,
            hangup,
        })
    }

    /// Whether the ingest and admin listeners speak TLS.
    pub fn tls(&self) -> (bool, bool) {
        (self.ingest_tls.is_some(), self.admin_tls.is_some())
    }

    pub fn ingest_addr(&self) -> std::io::Result<SocketAddr> {
        self.ingest_listener.local_addr()
    }

    pub fn admin_addr(&self) -> std::io::Result<SocketAddr> {
        self.admin_listener.local_addr()
    }

    /// Runs until `shutdown` completes, then drains and flushes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let Server {
            ingest,
            admin,
            ingest_listener,
            admin_listener,
            forwarder,
            buffer,
            config,
            certs,
            ingest_tls,
            admin_tls,
            hangup,
        } = self;
        if let Some(c) = &certs {
            tracing::info!(cert = %c.cert_path().display(), key = %c.key_path().display(),
                admin = admin_tls.is_some(), http2 = config.tls.http2,
                "TLS on the ingest listener; SIGHUP reloads the certificate");
        }
        let (trigger, stop) = Shutdown::new();
        let flusher = buffer.spawn_flusher();
        let forward_task = forwarder.map(|f| tokio::spawn(f.run(stop.clone())));
        let heartbeat_task = tokio::spawn(crate::heartbeat::run(
            config.clone(),
            buffer.clone(),
            ingest.metrics.clone(),
            ingest.forward.clone(),
            stop.clone(),
        ));

        let trim = {
            let ingest = ingest.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                while stop.or(tick.tick()).await.is_some() {
                    ingest.trim_rate_limiter();
                }
            })
        };

        let reload = tokio::spawn(crate::tls::reload_on_hangup(hangup, certs, stop.clone()));

        let limits = &config.limits;
        let grace = Duration::from_secs(config.shutdown_timeout_secs);
        let bounds = Bounds {
            header_timeout: Duration::from_secs(limits.header_timeout_secs),
            handshake_timeout: Duration::from_secs(config.tls.handshake_timeout_secs),
            http2_max_concurrent_streams: config.tls.http2_max_concurrent_streams,
            http2_keep_alive: Duration::from_secs(config.tls.http2_keep_alive_secs),
        };
        let ingest_loop = tokio::spawn(accept_loop(
            Listener {
                tcp: ingest_listener,
                tls: ingest_tls,
                max_connections: limits.max_connections,
            },
            bounds,
            grace,
            stop.clone(),
            move |peer, req| ingest.clone().handle(peer, req),
        ));
        let admin_loop = tokio::spawn(accept_loop(
            Listener {
                tcp: admin_listener,
                tls: admin_tls,
                max_connections: 64,
            },
            bounds,
            grace,
            stop.clone(),
            move |_peer, req| admin.clone().handle(req),
        ));

        shutdown.await;
        tracing::info!(
            timeout_secs = config.shutdown_timeout_secs,
            "shutting down: finishing in-flight requests; a batch being forwarded stays buffered"
        );
        trigger.fire();
        // Requests first: their events must be flushed before the buffer closes.
        join_within(ingest_loop, grace + TASK_GRACE, "ingest listener").await;
        join_within(admin_loop, TASK_GRACE, "admin listener").await;
        join_within(trim, TASK_GRACE, "rate limiter").await;
        join_within(reload, TASK_GRACE, "TLS reload").await;
        join_within(heartbeat_task, TASK_GRACE, "heartbeats").await;
        if let Some(t) = forward_task {
            join_within(t, TASK_GRACE, "forwarder").await;
        }
        buffer.close()?;
        join_within(flusher, TASK_GRACE, "buffer flusher").await;
        tracing::info!("buffer flushed; bye");
        Ok(())
    }
}

/// Waits for a task to end, at most `limit`; a task still running then is aborted (the
/// process is exiting: whatever it held stays in the buffer).
async fn join_within(task: JoinHandle<()>, limit: Duration, name: &str) {
    let abort = task.abort_handle();
    if tokio::time::timeout(limit, task).await.is_err() {
        tracing::warn!(
            task = name,
            "still running after {limit:?} of shutdown; abandoned"
        );
        abort.abort();
    }
}

/// Binds `addr` with an accept queue of `backlog` (the kernel caps it at
/// `net.core.somaxconn`). A queue shorter than a burst of new connections overflows, and
/// the kernel then resets connections the client already counts as open: with tokio's
/// default of 1,024, 360 of 1,500 simultaneous clients got a reset and no answer.
fn listen(addr: SocketAddr, backlog: usize) -> Result<TcpListener, ServeError> {
    let bind = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(u32::try_from(backlog).unwrap_or(u32::MAX))
    };
    bind().map_err(|source| ServeError::Bind { addr, source })
}

/// Opens the buffer; a store that cannot be opened (damaged files, not a lock held by
/// another process) is renamed to `<data_dir>.damaged-<unix time>` for `collector buffer
/// verify/export --data-dir …` to rescue, and a fresh buffer is started, so a damaged disk
/// never crash-loops the collector.
fn open_or_set_aside(config: &Config) -> Result<Buffer, ServeError> {
    match Buffer::open(&config.data_dir, &config.buffer) {
        Ok(b) => Ok(b),
        Err(BufferError::Open { path, source }) => {
            let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
            let mut aside = path.clone().into_os_string();
            aside.push(format!(".damaged-{stamp}"));
            let aside = std::path::PathBuf::from(aside);
            tracing::error!(buffer = %path.display(), set_aside = %aside.display(), error = %source,
                "the buffer cannot be opened: set aside, starting with an empty buffer");
            std::fs::rename(&path, &aside).map_err(BufferError::Io)?;
            Ok(Buffer::open(&config.data_dir, &config.buffer)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// A bound listener: its socket, TLS when configured, and its connection limit.
struct Listener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    max_connections: usize,
}

/// Accepts connections until `stop` fires, then waits (up to `grace`) for open connections
/// to finish their in-flight requests; idle keep-alive connections close at once. The TLS
/// handshake runs on the connection's task, so a slow one never holds the accept loop.
async fn accept_loop<F, Fut>(
    listener: Listener,
    bounds: Bounds,
    grace: Duration,
    mut stop: Shutdown,
    handler: F,
) where
    F: Fn(SocketAddr, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<
            Output = Result<
                hyper::Response<http_body_util::Full<bytes::Bytes>>,
                std::convert::Infallible,
            >,
        > + Send
        + 'static,
{
    let Listener {
        tcp,
        tls,
        max_connections,
    } = listener;
    let limit = Arc::new(Semaphore::new(max_connections));
    let protocols = Arc::new(Protocols::new(bounds));
    loop {
        let Some(Ok(permit)) = stop.or(limit.clone().acquire_owned()).await else {
            break;
        };
        let (stream, peer) = match stop.or(tcp.accept()).await {
            None => break,
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                // EMFILE and friends: back off instead of spinning.
                if let Some(suppressed) = ACCEPT_FAILED.check() {
                    tracing::warn!(error = %e, suppressed, "accept failed");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (handler, tls, protocols, stop) = (
            handler.clone(),
            tls.clone(),
            protocols.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            crate::connection::serve(stream, peer, tls, &protocols, handler, stop).await;
            drop(permit);
        });
    }
    drop(tcp);
    // Every connection holds a permit until it ends: all of them back means all closed.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, limit.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after {grace:?}; closing them");
    }
}

/// "accept failed" is logged once per interval, with the count of the ones in between.
static ACCEPT_FAILED: crate::logging::Throttle = crate::logging::Throttle::new();
