//! The HTTP endpoint (`http_listen`, default 127.0.0.1:9180): `/metrics`
//! for Prometheus, `/healthz`, and JSON under `/api/v1/`.

use crate::view::{View, ViewCell};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Clone)]
struct App {
    view: ViewCell,
    registry: Arc<Registry>,
}

/// The endpoint's routes; they read the daemon's published view and never
/// take the daemon itself.
pub fn router(view: ViewCell) -> Router {
    let registry = Arc::new(crate::northbound::metrics::registry(view.clone()));
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/api/v1/services", get(services))
        .route("/api/v1/workers", get(workers))
        .route("/api/v1/timeouts", get(timeouts))
        .route("/api/v1/status", get(status))
        .route("/api/v1/health", get(health))
        .route("/api/v1/vrrp", get(vrrp))
        .with_state(App { view, registry })
}

/// Serves until the listener fails; errors are returned, not panics.
pub async fn serve(addr: SocketAddr, view: ViewCell) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router(view)).await
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
async fn services(State(app): State<App>) -> Response {
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

async fn workers(State(app): State<App>) -> Response {
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

async fn timeouts(State(app): State<App>) -> Response {
    let d = match locked(&app) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let (tcp, tcpfin, udp) = d.state.timeouts.get();
    Json(Timeouts { tcp, tcpfin, udp }).into_response()
}

async fn status(State(app): State<App>) -> Response {
    match locked(&app) {
        Ok(d) => (
            [(header::CONTENT_TYPE, "application/json")],
            d.status_json(),
        )
            .into_response(),
        Err(r) => *r,
    }
}

async fn health(State(app): State<App>) -> Response {
    match locked(&app) {
        Ok(d) => Json(d.health.as_ref().map(|h| h.status()).unwrap_or_default()).into_response(),
        Err(r) => *r,
    }
}

async fn vrrp(State(app): State<App>) -> Response {
    match locked(&app) {
        Ok(d) => Json(d.vrrp_status.lock().map(|v| v.clone()).unwrap_or_default()).into_response(),
        Err(r) => *r,
    }
}
