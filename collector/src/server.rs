//! `collector serve`: wires the pipeline together and runs it until a shutdown signal.
//!
//! ```text
//!   clients ──HTTP──▶ http (validate) ──append+group flush──▶ buffer (sled)
//!                                                               │
//!   TimescaleDB ◀──binary COPY + ON CONFLICT DO NOTHING── forward ◀┘
//! ```
//!
//! The accept loop follows mini-redis: a semaphore bounds open connections, each connection
//! is served on its own task, and shutdown is a broadcast. On SIGTERM/SIGINT the listeners
//! stop accepting, in-flight requests finish (each one's events are flushed before its 2xx),
//! the forwarder stops after its current batch, the buffer is flushed, and the process exits 0.
//!
//! Invariant: the process keeps accepting events while the database is unreachable; only a
//! full or failing buffer makes ingest refuse (503).

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use thiserror::Error;
use tokio::{
    net::TcpListener,
    sync::{watch, Semaphore},
};

use crate::{
    admin::Admin,
    buffer::{Buffer, BufferError},
    config::Config,
    forward::{ForwardState, Forwarder},
    http::Ingest,
    metrics::Metrics,
};

#[derive(Debug, Error)]
pub enum ServeError {
    #[error(transparent)]
    Buffer(#[from] BufferError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
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
}

impl Server {
    /// Opens the buffer and binds both listeners.
    pub async fn bind(config: Config) -> Result<Server, ServeError> {
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
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })
        };
        let ingest_listener = bind(config.listen).await?;
        let admin_listener = bind(config.admin_listen).await?;
        let ingest = Arc::new(Ingest::new(
            config.clone(),
            buffer.clone(),
            metrics.clone(),
            state.clone(),
        ));
        let admin = Arc::new(Admin::new(config.clone(), buffer.clone(), metrics, state));
        Ok(Server {
            ingest,
            admin,
            ingest_listener,
            admin_listener,
            forwarder,
            buffer,
            config,
        })
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
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let flusher = buffer.spawn_flusher();
        let forward_task = forwarder.map(|f| tokio::spawn(f.run(stop_rx.clone())));
        let heartbeat_task = tokio::spawn(crate::heartbeat::run(
            config.clone(),
            buffer.clone(),
            ingest.metrics.clone(),
            ingest.forward.clone(),
            stop_rx.clone(),
        ));

        let trim = {
            let ingest = ingest.clone();
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tokio::select! {
                        _ = tick.tick() => ingest.trim_rate_limiter(),
                        _ = stop.changed() => return,
                    }
                }
            })
        };

        let limits = &config.limits;
        let ingest_loop = tokio::spawn(accept_loop(
            ingest_listener,
            limits.max_connections,
            Duration::from_secs(limits.header_timeout_secs),
            stop_rx.clone(),
            move |peer, req| ingest.clone().handle(peer, req),
        ));
        let admin_loop = tokio::spawn(accept_loop(
            admin_listener,
            64,
            Duration::from_secs(limits.header_timeout_secs),
            stop_rx.clone(),
            move |_peer, req| admin.clone().handle(req),
        ));

        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stop_tx.send(true);
        let _ = ingest_loop.await;
        let _ = admin_loop.await;
        let _ = trim.await;
        let _ = heartbeat_task.await;
        if let Some(t) = forward_task {
            let _ = t.await;
        }
        buffer.close()?;
        let _ = flusher.await;
        tracing::info!("buffer flushed; bye");
        Ok(())
    }
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

/// Accepts connections until `stop` turns true, then waits (up to 30 s) for open
/// connections to finish their in-flight requests.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    max_connections: usize,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
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
    let limit = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .max_buf_size(64 * 1024);
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let svc = service_fn(move |req| handler(peer, req));
        let conn = builder.serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after 30 s; closing them");
    }
}
