//! The L7 path for gRPC and HTTP/2 ports: strait terminates the client's HTTP/2 connection and
//! sends each request (stream) on its own to an endpoint chosen for it, over pooled upstream
//! HTTP/2 connections. A client holding one long-lived connection is balanced per call.

mod body;
pub mod grpc;

use std::{collections::HashSet, convert::Infallible, net::SocketAddr, sync::Arc, time::Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use hyper::{body::Incoming, server::conn::http2, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite},
    net::TcpStream,
    sync::watch,
};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::{
    balance::{Balancers, Pick},
    config::{Model, ServicePortRef},
    telemetry::{
        requests::{RequestMetrics, RequestOutcome},
        ResponseFlags,
    },
    upstream::pool::{Checkout, Limits, Pool, PoolError},
};

/// What strait answers clients with: upstream bodies, or its own.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// How a connection's requests find their Service port.
#[derive(Clone, Copy, Debug)]
pub enum Destination {
    /// Captured: the original destination (cluster IP, port) decides, for every request.
    OriginalDst(SocketAddr),
    /// Not captured (`--no-ebpf`): each request's `:authority` decides.
    Authority,
}

/// Shared by every L7 connection.
pub struct L7Proxy {
    pub model: watch::Receiver<Arc<Model>>,
    pub metrics: Arc<RequestMetrics>,
    pub balancers: Balancers,
    pub pool: Pool,
    /// Cancelled when strait shuts down: every client connection gets a GOAWAY.
    pub drain: CancellationToken,
}

impl L7Proxy {
    /// Serves one client connection speaking HTTP/2 (prior knowledge, as gRPC does) until it
    /// closes.
    pub async fn serve_h2<I>(
        self: Arc<Self>,
        client: I,
        client_addr: SocketAddr,
        destination: Destination,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let drain = self.drain.clone();
        let service = service_fn(move |request| {
            let proxy = self.clone();
            async move { Ok::<_, Infallible>(proxy.forward(request, destination).await) }
        });
        let connection = http2::Builder::new(TokioExecutor::new())
            .adaptive_window(true)
            .serve_connection(TokioIo::new(client), service);
        tokio::pin!(connection);
        let ended = tokio::select! {
            ended = connection.as_mut() => ended,
            _ = drain.cancelled() => {
                // GOAWAY: the client opens no new stream here and moves to another
                // connection; the streams in flight finish.
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(err) = ended {
            debug!(client = %client_addr, %err, "HTTP/2 connection ended with an error");
        }
    }

    async fn forward(
        &self,
        request: Request<Incoming>,
        destination: Destination,
    ) -> Response<ProxyBody> {
        let mut record = Record {
            metrics: self.metrics.clone(),
            started: Instant::now(),
            outcome: RequestOutcome {
                service: None,
                grpc: grpc::is_grpc(&request),
                response_code: 0,
                grpc_status: None,
                flags: ResponseFlags::NONE,
            },
            ended: false,
        };
        match self
            .try_forward(request, destination, &mut record.outcome)
            .await
        {
            Ok((response, in_flight)) => {
                record.answered(&response);
                // A headers-only response (gRPC trailers-only) has no body to read to its end.
                record.ended = http_body::Body::is_end_stream(response.body());
                let observer = InFlight {
                    _upstream: in_flight,
                    record,
                };
                response.map(|body| BoxBody::new(body::Observed::new(body, observer)))
            }
            Err(failure) => {
                debug!(flags = %failure.flags(), %failure, "request failed");
                let response = failure.response(record.outcome.grpc);
                record.outcome.flags = failure.flags();
                record.answered(&response);
                record.ended = true;
                response
            }
        }
    }

    /// Closes pooled connections to endpoints that left the config, on every new generation.
    /// (In-flight requests keep theirs: a checkout holds its own handle.)
    pub async fn prune_pool_on_reload(self: Arc<Self>) {
        let mut model = self.model.clone();
        while model.changed().await.is_ok() {
            let current = model.borrow_and_update().clone();
            let endpoints: HashSet<SocketAddr> = current
                .services()
                .flat_map(|service| &service.ports)
                .flat_map(|port| port.endpoints.iter().map(|e| e.addr))
                .collect();
            self.pool
                .retain_endpoints(|endpoint| endpoints.contains(endpoint));
        }
    }

    /// Sends the request upstream: the response, and what it holds until it ends.
    async fn try_forward(
        &self,
        request: Request<Incoming>,
        destination: Destination,
        outcome: &mut RequestOutcome,
    ) -> Result<(Response<Incoming>, (Checkout, Pick)), Failure> {
        let model = self.model.borrow().clone();
        let port = resolve(&model, destination, &request).ok_or(Failure::NoRoute)?;
        let service = port.service();
        outcome.service = Some((service.name.clone(), service.namespace.clone()));
        let policy = model.traffic_policy(&port);
        let endpoints: Vec<SocketAddr> = port.endpoints().iter().map(|e| e.addr).collect();
        let key = (service.fqdn(), port.port());
        let pick = self
            .balancers
            .pick(&key, policy, &endpoints, &[])
            .ok_or(Failure::NoHealthyUpstream)?;
        let endpoint = pick.endpoint();
        let mut checkout = self
            .pool
            .checkout(endpoint, &Limits::from(&policy.connection_pool))
            .await?;
        let started = Instant::now();
        checkout
            .sender
            .ready()
            .await
            .map_err(Failure::UpstreamReset)?;
        let response = checkout
            .sender
            .send_request(request)
            .await
            .map_err(Failure::UpstreamReset)?;
        if !checkout.is_first_use() {
            pick.observe(started.elapsed());
        }
        Ok((response, (checkout, pick)))
    }
}

/// Records a request's metrics when it is dropped: when its response ended, or was abandoned.
struct Record {
    metrics: Arc<RequestMetrics>,
    started: Instant,
    outcome: RequestOutcome,
    /// Whether the response reached its end; a response dropped before that was cut by the
    /// client (Envoy's DC, downstream connection termination).
    ended: bool,
}

impl Record {
    /// Notes the response's status and, for a trailers-only response, its gRPC status.
    fn answered<B>(&mut self, response: &Response<B>) {
        self.outcome.response_code = response.status().as_u16();
        self.outcome.grpc_status = grpc::status(response.headers());
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if !self.ended && self.outcome.flags == ResponseFlags::NONE {
            self.outcome.flags = ResponseFlags::DOWNSTREAM_TERMINATION;
        }
        self.metrics.record(&self.outcome, self.started.elapsed());
    }
}

/// A response on its way: the upstream stream slot and balancer pick, and its record.
struct InFlight {
    _upstream: (Checkout, Pick),
    record: Record,
}

impl body::ResponseObserver for InFlight {
    fn trailers(&mut self, trailers: &http::HeaderMap) {
        if let Some(status) = grpc::status(trailers) {
            self.record.outcome.grpc_status = Some(status);
        }
    }

    fn error(&mut self) {
        self.record.outcome.flags = ResponseFlags::UPSTREAM_RESET;
        self.record.ended = true;
    }

    fn end(&mut self) {
        self.record.ended = true;
    }
}

/// The Service port a request is for.
fn resolve<'m>(
    model: &'m Model,
    destination: Destination,
    request: &Request<Incoming>,
) -> Option<ServicePortRef<'m>> {
    match destination {
        Destination::OriginalDst(addr) => model.service_port_by_addr(addr),
        Destination::Authority => {
            let authority = request
                .uri()
                .authority()
                .map(|a| a.as_str())
                .or_else(|| request.headers().get(http::header::HOST)?.to_str().ok())?;
            model.service_port_by_authority(authority, None)
        }
    }
}

/// Why strait answered a request itself.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("no route to a Service")]
    NoRoute,
    #[error("no healthy upstream")]
    NoHealthyUpstream,
    #[error("upstream connect failure: {0}")]
    Connect(PoolError),
    #[error("upstream overflow: {0}")]
    Overflow(PoolError),
    #[error("upstream reset: {0}")]
    UpstreamReset(hyper::Error),
}

impl From<PoolError> for Failure {
    fn from(err: PoolError) -> Self {
        match err {
            PoolError::Overflow { .. } => Self::Overflow(err),
            PoolError::Connect { .. } | PoolError::Handshake { .. } => Self::Connect(err),
        }
    }
}

impl Failure {
    fn flags(&self) -> ResponseFlags {
        match self {
            Self::NoRoute => ResponseFlags::NO_ROUTE,
            Self::NoHealthyUpstream => ResponseFlags::NO_HEALTHY_UPSTREAM,
            Self::Connect(_) => ResponseFlags::UPSTREAM_CONNECT_FAILURE,
            Self::Overflow(_) => ResponseFlags::UPSTREAM_OVERFLOW,
            Self::UpstreamReset(_) => ResponseFlags::UPSTREAM_RESET,
        }
    }

    /// Every failure is UNAVAILABLE to a gRPC client (retryable by its own policy), and
    /// Envoy's status to an HTTP one.
    fn response(&self, is_grpc: bool) -> Response<ProxyBody> {
        let message = self.to_string();
        if is_grpc {
            return grpc::trailers_only(grpc::Code::Unavailable, &message);
        }
        let status = match self {
            Self::NoRoute => StatusCode::NOT_FOUND,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        grpc::http_error(status, &message)
    }
}

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An uncaptured connection that begins with the HTTP/2 client preface can be routed by each
/// request's `:authority`: returns the stream with the preface put back, or `None` when it is
/// not HTTP/2 prior knowledge (or says nothing for `PREFACE_TIMEOUT`).
pub async fn with_h2_preface(
    mut stream: TcpStream,
) -> Option<impl AsyncRead + AsyncWrite + Unpin + Send + 'static> {
    let mut preface = [0u8; H2_PREFACE.len()];
    tokio::time::timeout(PREFACE_TIMEOUT, stream.read_exact(&mut preface))
        .await
        .ok()?
        .ok()?;
    if &preface != H2_PREFACE {
        return None;
    }
    let (read, write) = stream.into_split();
    Some(tokio::io::join(
        std::io::Cursor::new(H2_PREFACE).chain(read),
        write,
    ))
}

/// gRPC clients send the preface as soon as they connect.
const PREFACE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
