//! Serving one accepted connection: on a TLS listener the handshake (under its own
//! deadline), then HTTP/1.1 or HTTP/2 as ALPN chose, each with its bounds, until the
//! connection ends, idles out, or the process stops.
//!
//! | bound | HTTP/1.1 | HTTP/2 (TLS only) |
//! | --- | --- | --- |
//! | headers | [`READ_BUFFER_BYTES`] of buffered request head | the same as the header list size |
//! | slow or idle client | `header_timeout_secs` to send a request's headers, also between requests on a kept-alive connection | closed once no request has been in progress for `header_timeout_secs` (partial headers included) |
//! | concurrency | one request at a time | `tls.http2_max_concurrent_streams` |
//! | buffered body | the read buffer | flow-control windows of [`HTTP2_WINDOW_BYTES`] (stream and connection) |
//! | dead peer | TCP | pings every `tls.http2_keep_alive_secs`, closed when one goes unanswered as long |
//!
//! Body sizes, the memory bound and everything else are the handler's, the same for both.
//!
//! Invariant: every connection ends on its own: the handshake, the wait for a request and an
//! unanswered ping are all bounded in time; when the stop signal fires, a request in
//! progress finishes (its answer is sent) and the connection then closes.

use std::{
    convert::Infallible,
    fmt::Display,
    future::Future,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn, Request, Response};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulConnection},
};
use tokio::{net::TcpStream, time::Instant};
use tokio_rustls::TlsAcceptor;

use crate::shutdown::Shutdown;

/// The most one connection buffers while reading (request headers must fit). It is held
/// per connection, outside [`crate::memory`]'s bound, so it is kept small:
/// `max_connections` × this is part of the documented memory baseline.
pub const READ_BUFFER_BYTES: usize = 16 * 1024;

/// HTTP/2 flow-control windows, per stream and per connection: what a client may send ahead
/// of the handler reading it. The protocol's initial value (hyper's default is 1 MiB), so an
/// HTTP/2 connection buffers about as little as an HTTP/1.1 one.
pub const HTTP2_WINDOW_BYTES: u32 = 65_535;

/// The time bounds of a listener's connections.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// HTTP/1.1: time to send request headers; HTTP/2: longest time with no request in
    /// progress.
    pub header_timeout: Duration,
    /// Time to complete the TLS handshake.
    pub handshake_timeout: Duration,
    pub http2_max_concurrent_streams: u32,
    pub http2_keep_alive: Duration,
}

/// The configured connection builders of one listener: the auto builder pinned to each
/// protocol, since ALPN (or a plain listener) has already decided which one is spoken.
pub struct Protocols {
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
    bounds: Bounds,
}

impl Protocols {
    pub fn new(bounds: Bounds) -> Protocols {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(bounds.header_timeout)
            .keep_alive(true)
            .max_buf_size(READ_BUFFER_BYTES);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(bounds.http2_max_concurrent_streams)
            .max_header_list_size(u32::try_from(READ_BUFFER_BYTES).unwrap_or(u32::MAX))
            .initial_stream_window_size(HTTP2_WINDOW_BYTES)
            .initial_connection_window_size(HTTP2_WINDOW_BYTES)
            .adaptive_window(false)
            .keep_alive_interval(bounds.http2_keep_alive)
            .keep_alive_timeout(bounds.http2_keep_alive);
        Protocols {
            http1: builder.clone().http1_only(),
            http2: builder.http2_only(),
            bounds,
        }
    }
}

/// Serves one connection to its end (see the module's table for its bounds).
pub async fn serve<F, Fut>(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    protocols: &Protocols,
    handler: F,
    mut stop: Shutdown,
) where
    F: Fn(SocketAddr, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let Some(acceptor) = tls else {
        let svc = service_fn(move |req| handler(peer, req));
        let conn = protocols.http1.serve_connection(TokioIo::new(stream), svc);
        return drive(conn, peer, stop, None).await;
    };
    let handshake =
        tokio::time::timeout(protocols.bounds.handshake_timeout, acceptor.accept(stream));
    let stream = match stop.or(handshake).await {
        None => return,
        Some(Err(_)) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
        Some(Ok(Err(e))) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Some(Ok(Ok(s))) => s,
    };
    if stream.get_ref().1.alpn_protocol() == Some(crate::tls::ALPN_H2) {
        let activity = Arc::new(Activity::new());
        let busy = activity.clone();
        let svc = service_fn(move |req| {
            let guard = busy.begin();
            let answer = handler(peer, req);
            async move {
                let r = answer.await;
                drop(guard);
                r
            }
        });
        let conn = protocols.http2.serve_connection(TokioIo::new(stream), svc);
        let idle = (activity, protocols.bounds.header_timeout);
        drive(conn, peer, stop, Some(idle)).await
    } else {
        let svc = service_fn(move |req| handler(peer, req));
        let conn = protocols.http1.serve_connection(TokioIo::new(stream), svc);
        drive(conn, peer, stop, None).await
    }
}

/// Runs `conn` until it ends; on the stop signal, or once `idle` says no request has been in
/// progress for its duration, asks it to finish what it is doing and close.
async fn drive<C>(
    conn: C,
    peer: SocketAddr,
    mut stop: Shutdown,
    idle: Option<(Arc<Activity>, Duration)>,
) where
    C: GracefulConnection,
    C::Error: Display,
{
    tokio::pin!(conn);
    let idled = async {
        match &idle {
            Some((activity, limit)) => activity.idle_for(*limit).await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        r = conn.as_mut() => Some(r),
        _ = stop.recv() => None,
        _ = idled => {
            tracing::debug!(%peer, "HTTP/2 connection idle: closing");
            None
        }
    };
    let result = match result {
        Some(r) => r,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, %peer, "connection ended with an error");
    }
}

/// Requests in progress on one connection and when the last one ended.
struct Activity {
    start: Instant,
    active: AtomicUsize,
    /// Milliseconds after `start` when the connection last had a request end (or began).
    last_ms: AtomicU64,
}

/// Held while a request is in progress.
struct Busy(Arc<Activity>);

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            active: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.active.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Completes once no request has been in progress for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            if self.active.load(Ordering::SeqCst) == 0 {
                let last = Duration::from_millis(self.last_ms.load(Ordering::SeqCst));
                let quiet = self.start.elapsed().saturating_sub(last);
                if quiet >= limit && self.active.load(Ordering::SeqCst) == 0 {
                    return;
                }
                tokio::time::sleep(limit - quiet).await;
            } else {
                tokio::time::sleep(limit).await;
            }
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.last_ms.store(self.0.now_ms(), Ordering::SeqCst);
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idles_out_only_with_no_request_in_progress() {
        let a = Arc::new(Activity::new());
        let limit = Duration::from_millis(200);
        let busy = a.begin();
        let waited = tokio::time::timeout(limit * 3, a.idle_for(limit)).await;
        assert!(
            waited.is_err(),
            "a request in progress keeps the connection"
        );
        drop(busy);
        let t = Instant::now();
        a.idle_for(limit).await;
        assert!(t.elapsed() >= limit, "idle counted from the request's end");
    }
}
