//! The HTTP endpoint (`http_listen`, default 127.0.0.1:9180): `/metrics`
//! for Prometheus, `/healthz`, and JSON under `/api/v1/`.
//!
//! The listener must never cost the director its health checks: it holds
//! at most [`Limits::max_connections`] connections (a client over the cap
//! is closed at once, counted), a client that does not send a whole
//! request head within [`Limits::header_timeout`] (between requests too,
//! so idle keep-alive connections) or stops reading a response for
//! [`Limits::write_timeout`] is dropped, and the process's descriptor limit
//! is raised at start (`raise_nofile_limit`).

use crate::view::{View, ViewCell};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use ferrovs_config::model::HttpApi;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tracing::warn;

#[derive(Clone)]
struct App {
    view: ViewCell,
    registry: Arc<Registry>,
    api: HttpApi,
}

/// The client's address, put on every request by the accept loop.
#[derive(Clone, Copy, Debug)]
struct Peer(SocketAddr);

/// The listener's bounds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        // Prometheus keeps one connection per scraper; 128 leaves room for
        // many scrapers and curls while a flood of idle connections costs
        // at most 128 descriptors.
        Limits {
            max_connections: 128,
            header_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// What the listener refused, in `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct ListenerStats {
    pub refused_over_cap: Counter,
    pub accept_errors: Counter,
}

/// The endpoint's routes; they read the daemon's published view and never
/// take the daemon itself.
pub fn router(view: ViewCell, api: HttpApi, stats: &ListenerStats) -> Router {
    let mut registry = crate::northbound::metrics::registry(view.clone());
    registry.register(
        "ferrovs_http_refused_connections",
        "HTTP connections closed at once because the endpoint held its maximum",
        stats.refused_over_cap.clone(),
    );
    registry.register(
        "ferrovs_http_accept_errors",
        "HTTP accept() failures (out of descriptors, for example)",
        stats.accept_errors.clone(),
    );
    let registry = Arc::new(registry);
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/api/v1/services", get(services))
        .route("/api/v1/workers", get(workers))
        .route("/api/v1/timeouts", get(timeouts))
        .route("/api/v1/status", get(status))
        .route("/api/v1/health", get(health))
        .route("/api/v1/vrrp", get(vrrp))
        .with_state(App {
            view,
            registry,
            api,
        })
}

/// Serves until the listener cannot be bound; errors are returned, not
/// panics.
pub async fn serve(addr: SocketAddr, view: ViewCell, api: HttpApi) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let stats = ListenerStats::default();
    let app = router(view, api, &stats);
    serve_on(listener, app, Limits::default(), stats).await
}

/// The accept loop: one task per connection, within `limits`.
pub async fn serve_on(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stats: ListenerStats,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut last_warning: Option<Instant> = None;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: the connection stays in the backlog;
                // pause rather than spin, and say so once a minute.
                stats.accept_errors.inc();
                if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    warn!("HTTP endpoint: accept failed: {e}");
                    last_warning = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            stats.refused_over_cap.inc();
            if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                warn!(
                    "HTTP endpoint: {} connections open, refusing more (from {peer})",
                    limits.max_connections
                );
                last_warning = Some(Instant::now());
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let svc = TowerToHyperService::new(app.clone().layer(Extension(Peer(peer))));
        tokio::spawn(async move {
            let io = TokioIo::new(WriteDeadline::new(stream, limits.write_timeout));
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(64 * 1024);
            // Errors here are the client's (a timeout, a reset): nothing to
            // log per connection.
            let _ = http.serve_connection(io, svc).await;
            drop(permit);
        });
    }
}

/// A stream whose writes fail once they have waited `limit` for the peer
/// to read: hyper's header timeout covers a slow sender, this covers a
/// client that asks and never reads.
struct WriteDeadline {
    inner: TcpStream,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl WriteDeadline {
    fn new(inner: TcpStream, limit: Duration) -> WriteDeadline {
        WriteDeadline {
            inner,
            limit,
            stalled: None,
        }
    }

    /// Called when a write is pending: starts the stall clock, or fails
    /// once it has run out.
    fn pending(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        let limit = self.limit;
        let t = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match t.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client stopped reading",
            )),
            Poll::Pending => Poll::Pending,
        }
    }

    fn write_with<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match op(Pin::new(&mut self.inner), cx) {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.pending(cx).map(Err),
        }
    }
}

impl AsyncRead for WriteDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_with(cx, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.write_with(cx, |s, cx| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.write_with(cx, |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.write_with(cx, |s, cx| s.poll_shutdown(cx))
    }
}

/// Raises the soft descriptor limit to the hard one: health checks, the
/// control socket and the HTTP endpoint share the process's descriptors,
/// and the usual soft limit of 1024 is small for a director with many
/// checkers.
pub fn raise_nofile_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                warn!("could not raise the descriptor limit from {soft} to {hard}: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => warn!("could not read the descriptor limit: {e}"),
    }
}

/// The JSON API's gate (`http_api`): VRIDs, priorities, VIPs and servers
/// go only to whom the operator allows.
fn api_allowed(api: HttpApi, peer: &Peer) -> Result<(), Box<Response>> {
    let ok = match api {
        HttpApi::On => true,
        HttpApi::Local => peer.0.ip().is_loopback(),
        HttpApi::Off => false,
    };
    if ok {
        Ok(())
    } else {
        let why = match api {
            HttpApi::Off => "the JSON API is off (http_api off)\n",
            _ => "the JSON API answers loopback clients only (http_api local; set http_api on to open it)\n",
        };
        Err(Box::new((StatusCode::FORBIDDEN, why).into_response()))
    }
}

fn locked(app: &App) -> Result<Arc<View>, Box<Response>> {
    Ok(app.view.load_full())
}

/// OpenMetrics for scrapers that ask for it (Prometheus does), the
/// Prometheus text format otherwise.
async fn metrics(State(app): State<App>, headers: axum::http::HeaderMap) -> Response {
    let om = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let body = tokio::task::spawn_blocking(move || {
        if om {
            crate::northbound::metrics::render(&app.registry)
        } else {
            crate::northbound::metrics::render_prometheus_text(&app.registry)
        }
    })
    .await
    .unwrap_or_default();
    let ct = if om {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    ([(header::CONTENT_TYPE, ct)], body).into_response()
}

async fn healthz(State(app): State<App>) -> Response {
    match locked(&app) {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(r) => *r,
    }
}

/// The `ipvsadm -L --stats --rate` figures, as JSON.
async fn services(State(app): State<App>, Extension(peer): Extension<Peer>) -> Response {
    if let Err(r) = api_allowed(app.api, &peer) {
        return *r;
    }
    let d = match locked(&app) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    match d.state.listing(None) {
        Ok(l) => Json(l).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[derive(Serialize)]
struct WorkerView {
    worker: usize,
    rx_packets: u64,
    tx_packets: u64,
    rx_bytes: u64,
    tx_bytes: u64,
    handover_out: u64,
    handover_in: u64,
    connections: u64,
    connections_created: u64,
    connections_expired: u64,
    busy_polls: u64,
    idle_polls: u64,
    drops: std::collections::BTreeMap<&'static str, u64>,
}

async fn workers(State(app): State<App>, Extension(peer): Extension<Peer>) -> Response {
    if let Err(r) = api_allowed(app.api, &peer) {
        return *r;
    }
    let d = match locked(&app) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let v: Vec<WorkerView> = d
        .dataplane
        .counters()
        .iter()
        .enumerate()
        .map(|(w, c)| WorkerView {
            worker: w,
            rx_packets: c.rx_packets.get(),
            tx_packets: c.tx_packets.get(),
            rx_bytes: c.rx_bytes.get(),
            tx_bytes: c.tx_bytes.get(),
            handover_out: c.handover_out.get(),
            handover_in: c.handover_in.get(),
            connections: c.conns_active.get(),
            connections_created: c.conns_created.get(),
            connections_expired: c.conns_expired.get(),
            busy_polls: c.busy_polls.get(),
            idle_polls: c.idle_polls.get(),
            drops: ferrovs_dataplane::counters::DropReason::ALL
                .iter()
                .map(|r| (r.name(), c.dropped(*r)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        })
        .collect();
    Json(v).into_response()
}

#[derive(Serialize)]
struct Timeouts {
    tcp: u32,
    tcpfin: u32,
    udp: u32,
}

async fn timeouts(State(app): State<App>, Extension(peer): Extension<Peer>) -> Response {
    if let Err(r) = api_allowed(app.api, &peer) {
        return *r;
    }
    let d = match locked(&app) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let (tcp, tcpfin, udp) = d.state.timeouts.get();
    Json(Timeouts { tcp, tcpfin, udp }).into_response()
}

async fn status(State(app): State<App>, Extension(peer): Extension<Peer>) -> Response {
    if let Err(r) = api_allowed(app.api, &peer) {
        return *r;
    }
    match locked(&app) {
        Ok(d) => (
            [(header::CONTENT_TYPE, "application/json")],
            d.status_json(),
        )
            .into_response(),
        Err(r) => *r,
    }
}

async fn health(State(app): State<App>, Extension(peer): Extension<Peer>) -> Response {
    if let Err(r) = api_allowed(app.api, &peer) {
        return *r;
    }
    match locked(&app) {
        Ok(d) => Json(d.health.as_ref().map(|h| h.status()).unwrap_or_default()).into_response(),
        Err(r) => *r,
    }
}

async fn vrrp(State(app): State<App>, Extension(peer): Extension<Peer>) -> Response {
    if let Err(r) = api_allowed(app.api, &peer) {
        return *r;
    }
    match locked(&app) {
        Ok(d) => Json(d.vrrp_status.lock().map(|v| v.clone()).unwrap_or_default()).into_response(),
        Err(r) => *r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn peer(a: &str) -> Peer {
        Peer(a.parse().unwrap())
    }

    #[test]
    fn the_json_api_goes_to_whom_the_operator_allows() {
        let local = peer("127.0.0.1:5000");
        let far = peer("198.18.0.9:5000");
        assert!(api_allowed(HttpApi::Local, &local).is_ok());
        let r = api_allowed(HttpApi::Local, &far).unwrap_err();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(api_allowed(HttpApi::On, &far).is_ok());
        assert!(api_allowed(HttpApi::Off, &local).is_err());
    }

    async fn fetch(addr: SocketAddr, path: &str) -> String {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out).await;
        out
    }

    /// Reads until the server closes; true if it did within `within`.
    async fn closed_within(c: &mut TcpStream, within: Duration) -> bool {
        let mut b = [0u8; 512];
        let t = Instant::now();
        while t.elapsed() < within {
            match tokio::time::timeout(within, c.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
        false
    }

    #[tokio::test]
    async fn held_connections_are_capped_and_timed_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/healthz", get_route());
        let limits = Limits {
            max_connections: 2,
            header_timeout: Duration::from_millis(300),
            write_timeout: Duration::from_millis(300),
        };
        let stats = ListenerStats::default();
        tokio::spawn(serve_on(listener, app, limits, stats.clone()));
        assert!(fetch(addr, "/healthz").await.contains("200 OK"));

        // Two clients hold the two slots: one sends nothing, one trickles
        // a request head it never finishes.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nX-A: ")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A third is closed at once and counted.
        let mut over = TcpStream::connect(addr).await.unwrap();
        assert!(closed_within(&mut over, Duration::from_secs(2)).await);
        assert_eq!(stats.refused_over_cap.get(), 1);
        // The header timeout frees both slots.
        assert!(closed_within(&mut idle, Duration::from_secs(3)).await);
        assert!(closed_within(&mut slow, Duration::from_secs(3)).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(fetch(addr, "/healthz").await.contains("200 OK"));

        // A keep-alive client that goes quiet after a request is closed
        // too (hyper starts the header timeout between requests).
        let mut ka = TcpStream::connect(addr).await.unwrap();
        ka.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(closed_within(&mut ka, Duration::from_secs(3)).await);
    }

    fn get_route() -> axum::routing::MethodRouter {
        axum::routing::get(|| async { "ok\n" })
    }
}
