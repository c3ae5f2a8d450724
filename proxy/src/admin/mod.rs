//! The admin server (loopback: it can dump config) and the metrics server (for Prometheus and
//! kubelet probes). One HTTP/1.1 server; the [`Scope`] decides which paths it answers.
//! [`config_dump`] is the JSON `strait proxy-config` reads; [`clusters`] is Envoy's `/clusters`,
//! the live state of each endpoint. `/` is the live dashboard, a page
//! that reads `/stats/summary` (the telemetry's traffic summary) every second.

pub mod clusters;
pub mod config_dump;
pub mod proxy_config;

use std::{
    convert::Infallible,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    body::Incoming, header, server::conn::http1, service::service_fn, Request, Response, StatusCode,
};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::watch};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use self::{clusters::Clusters, config_dump::ConfigDump};
use crate::{
    config::Model,
    telemetry::{
        endpoints::{endpoint_rows, EndpointSource, Live},
        logging::LogLevels,
        Metrics,
    },
};

/// Which endpoints a server exposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everything: `--admin`, loopback only by default.
    Admin,
    /// `/stats/prometheus` and `/healthz/ready` only: `--metrics`, reachable from the node.
    Metrics,
}

/// What the admin endpoints read.
pub struct AdminState {
    pub metrics: Metrics,
    /// The config being served, for `/config_dump`.
    pub model: watch::Receiver<Arc<Model>>,
    /// The balancers and pools, for `/clusters` and the endpoints' health in `/config_dump`.
    pub endpoints: Arc<dyn EndpointSource>,
    pub log_levels: LogLevels,
    /// Set once config is loaded, the listener bound and capture attached.
    pub ready: AtomicBool,
}

pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    scope: Scope,
    shutdown: CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => { debug!(%err, "admin accept failed"); continue; }
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(respond(&state, scope, &request)) }
            });
            if let Err(err) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%peer, %err, "admin connection failed");
            }
        });
    }
}

fn respond(state: &AdminState, scope: Scope, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    match (scope, request.uri().path()) {
        (_, "/healthz/ready") => ready(state),
        (_, "/stats/prometheus") | (Scope::Admin, "/metrics") => text(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            state.metrics.encode(),
        ),
        (Scope::Admin, "/") => text(
            StatusCode::OK,
            "text/html; charset=utf-8",
            DASHBOARD_PAGE.into(),
        ),
        (Scope::Admin, "/stats/summary") => {
            json(&state.metrics.traffic.summary(), "the traffic summary")
        }
        (Scope::Admin, "/config_dump") => config_dump(state),
        (Scope::Admin, "/clusters") => clusters(state, request),
        (Scope::Admin, "/logging") => logging(state, request),
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// The dashboard: one file, its script and style inline (no network needed to show it).
const DASHBOARD_PAGE: &str = include_str!("dashboard.html");

fn config_dump(state: &AdminState) -> Response<Full<Bytes>> {
    let live = Live::read(state.endpoints.as_ref());
    json(
        &ConfigDump::of(&state.model.borrow(), &live),
        "the config dump",
    )
}

/// Envoy's text form, or JSON with `?format=json`.
fn clusters(state: &AdminState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let model = state.model.borrow().clone();
    let rows = endpoint_rows(&model, &Live::read(state.endpoints.as_ref()));
    let clusters = Clusters::of(rows, std::time::SystemTime::now());
    let query = request.uri().query().unwrap_or("");
    if url_query(query).any(|pair| pair == ("format", "json")) {
        json(&clusters, "the clusters")
    } else {
        text(StatusCode::OK, "text/plain", clusters.text())
    }
}

fn json(value: &impl serde::Serialize, what: &str) -> Response<Full<Bytes>> {
    match serde_json::to_string_pretty(value) {
        Ok(json) => text(StatusCode::OK, "application/json", json + "\n"),
        Err(err) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("encoding {what}: {err}\n"),
        ),
    }
}

/// Envoy's `/logging`: `POST /logging?level=debug` (or `?filter=info,strait::l7=debug`) changes
/// the levels; any request answers with the filter in effect.
fn logging(state: &AdminState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let asked = request
        .uri()
        .query()
        .and_then(|query| url_query(query).find(|(key, _)| *key == "level" || *key == "filter"));
    if let Some((key, value)) = asked {
        if request.method() != hyper::Method::POST {
            let hint = "use POST to change levels\n".into();
            return text(StatusCode::METHOD_NOT_ALLOWED, "text/plain", hint);
        }
        let changed = match key {
            "level" => state.log_levels.set_level(value),
            _ => state.log_levels.set_filter(value),
        };
        if let Err(err) = changed {
            return text(StatusCode::BAD_REQUEST, "text/plain", format!("{err}\n"));
        }
    }
    let current = format!("active filter: {}\n", state.log_levels.current());
    text(StatusCode::OK, "text/plain", current)
}

/// `key=value` pairs of a query (values are tracing directives or `json`: no escapes needed).
fn url_query(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query.split('&').filter_map(|pair| pair.split_once('='))
}

fn ready(state: &AdminState) -> Response<Full<Bytes>> {
    if state.ready.load(Ordering::Acquire) {
        text(StatusCode::OK, "text/plain", "LIVE\n".into())
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "PRE_INITIALIZING\n".into(),
        )
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}
