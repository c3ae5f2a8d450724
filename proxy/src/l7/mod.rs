//! The L7 path for gRPC and HTTP ports: strait terminates the client's HTTP/2 connection (or
//! HTTP/1.1: [`http1`]) and sends each request (stream) on its own to an endpoint chosen for
//! it, over pooled upstream HTTP/2 or HTTP/1.1 connections. A client holding one long-lived
//! connection is balanced per call.
//!
//! A request's way: its Service port ([`resolve`]) and route (timeout, retry policy), its
//! place in the port's [`load`] (http2MaxRequests, the retry budget), then tries ([`attempt`])
//! until one is final ([`retry`]; [`replay`] keeps the request body for them), and the
//! response streamed back ([`body`]: deadline, metrics, outlier detection). Strait's own
//! answers are in [`failure`].

mod attempt;
mod body;
mod deadline;
mod failure;
pub mod grpc;
mod headers;
pub mod http1;
mod load;
mod mirror;
mod record;
mod replay;
mod retry;
mod route_actions;
mod sniff;

pub use sniff::{sniff, ClientProtocol};

use std::{
    collections::HashSet, convert::Infallible, future::Future, net::SocketAddr, pin::Pin, sync::Arc,
};

use bytes::Bytes;
use http::{request, Request, Response};
use http_body_util::combinators::BoxBody;
use hyper::{body::Incoming, server::conn::http2, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::watch,
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use self::{
    attempt::Answered,
    body::ResponseBody,
    failure::Failure,
    load::{ActiveRequest, ActiveRetry, Loads},
    record::Record,
    replay::{BoxError, Replay, ReplayBody},
    retry::Tries,
};
use crate::{
    balance::{Balancers, Pick},
    config::{
        gateway::GatewayTarget,
        route::{HttpRoute, RequestHead, RouteDestination, Source},
        Backend, GrpcCodes, Model, ServicePortRef, TryOutcome,
    },
    telemetry::{access_log::AccessLog, requests::RequestMetrics, Peer, ResponseFlags},
    upstream::{http1::Pool as Http1Pool, pool::Pool, Lease},
};

/// What strait answers clients with: upstream bodies, or its own.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// What strait sends upstream: the client's body, kept for retries.
pub type RequestBody = ReplayBody<Incoming>;

/// How a connection's requests find their Service port.
#[derive(Clone, Debug)]
pub enum Destination {
    /// Captured: the original destination (cluster IP, port) decides, for every request.
    OriginalDst(SocketAddr),
    /// Not captured (`--no-ebpf`): each request's `:authority` (HTTP/1: `Host`) decides.
    Authority,
    /// At a gateway port: the gateway's routes for the request's host ([`crate::gateway`]).
    Gateway(GatewayTarget),
}

/// Shared by every L7 connection.
pub struct L7Proxy {
    model: watch::Receiver<Arc<Model>>,
    metrics: Arc<RequestMetrics>,
    balancers: Balancers,
    pool: Pool<RequestBody>,
    http1_pool: Http1Pool<RequestBody>,
    /// Requests and retries in flight per Service port.
    loads: Loads,
    /// Cancelled when strait shuts down: every client connection gets a GOAWAY.
    drain: CancellationToken,
    /// `--access-log`: a line per request.
    access_log: Option<AccessLog>,
}

impl L7Proxy {
    pub fn new(
        model: watch::Receiver<Arc<Model>>,
        metrics: Arc<RequestMetrics>,
        drain: CancellationToken,
    ) -> Self {
        Self {
            model,
            metrics,
            balancers: Balancers::default(),
            pool: Pool::default(),
            http1_pool: Http1Pool::default(),
            loads: Loads::default(),
            drain,
            access_log: None,
        }
    }

    /// Logs every request to `log` (mirrored copies are not requests of a client).
    pub fn with_access_log(mut self, log: Option<AccessLog>) -> Self {
        self.access_log = log;
        self
    }

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
            let destination = destination.clone();
            // Boxed: hyper moves each stream's future into a task of its own, and the request's
            // state is kilobytes; moved as a pointer it costs nothing (profiled: memmove was
            // the largest user-space cost).
            Box::pin(async move {
                Ok::<_, Infallible>(proxy.forward(request, destination, client_addr).await)
            })
        });
        let connection = http2::Builder::new(TokioExecutor::new())
            .adaptive_window(true)
            .serve_connection(TokioIo::new(client), service);
        // GOAWAY: the client opens no new stream here and moves to another connection; the
        // streams in flight finish.
        let ended = until_drained(&drain, connection, |c| c.graceful_shutdown()).await;
        if let Err(err) = ended {
            debug!(client = %client_addr, %err, "HTTP/2 connection ended with an error");
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
            self.http1_pool
                .retain_endpoints(|endpoint| endpoints.contains(endpoint));
        }
    }

    async fn forward(
        self: &Arc<Self>,
        mut request: Request<Incoming>,
        destination: Destination,
        client: SocketAddr,
    ) -> Response<ProxyBody> {
        headers::ensure_request_id(&mut request);
        let mut record = Record::of_request(
            self.metrics.clone(),
            self.access_log.as_ref(),
            &request,
            client,
        );
        match self
            .exchange(request, destination, client, &mut record)
            .await
        {
            Ok(last) => last.respond(record),
            Err(failure) => failed(failure, record),
        }
    }

    /// What the request's route decides: its destination and deadline, after the route's
    /// fault (if any) and with the request head shaped for the destination.
    async fn route<'m>(
        &self,
        model: &'m Model,
        destination: &Destination,
        client: SocketAddr,
        request: &mut Request<Incoming>,
        record: &mut Record,
    ) -> Result<Routed<'m>, Failure> {
        let source = model.source(client.ip());
        record.outcome.peers.source = Peer::of(source);
        let (route, port) = find_route(model, destination, source, request, record)?;
        record.route(&route.route_name);
        let deadline = deadline::deadline(Instant::now(), route.timeout, request.headers());
        // Envoy's fault filter runs before its router: a route to nowhere is delayed too.
        route_actions::inject_fault(&route.fault, deadline, &mut record.outcome.flags).await?;
        let chosen = route.destinations.pick(fastrand::u32(..));
        let backend = chosen
            .target
            .backend()
            .map_err(|unresolved| Failure::NoCluster(unresolved.to_string()))?;
        let service = &backend.service;
        record.outcome.service = Some((service.name.clone(), service.namespace.clone()));
        record.cluster(backend);
        route_actions::shape_request(route, chosen, request, port, source);
        Ok(Routed {
            route,
            chosen,
            backend,
            deadline,
        })
    }

    /// Routes the request and sends it, retrying as the route says, until a try is final.
    async fn exchange(
        self: &Arc<Self>,
        mut request: Request<Incoming>,
        destination: Destination,
        client: SocketAddr,
        record: &mut Record,
    ) -> Result<FinalTry, Failure> {
        let model = self.model.borrow().clone();
        let Routed {
            route,
            chosen,
            backend,
            deadline,
        } = self
            .route(&model, &destination, client, &mut request, record)
            .await?;
        let policy = &backend.traffic_policy;
        let active = self
            .loads
            .request(&backend.key, policy.connection_pool.http2_max_requests)?;
        let (parts, body) = request.into_parts();
        let target = attempt::Destination::of(backend, &parts, client);
        let (replay, mut body) = Replay::start(body);
        record.receiving(replay.received());
        self.mirror(&route.mirrors, &parts, &replay, client, deadline);
        let mut tries = Tries::new(&route.retries, deadline);
        loop {
            let try_deadline = tries.try_deadline();
            let request = try_request(&parts, body, try_deadline.map(|d| d.at));
            let result = self
                .attempt(
                    &target,
                    &tries.tried,
                    request,
                    tries.may_retry(),
                    try_deadline,
                )
                .await;
            let outcome = match &result {
                Ok(answered) => answered.try_outcome(),
                Err((failure, _)) => failure.try_outcome(),
            };
            let max_retries = policy.connection_pool.max_retries;
            let next = outcome.and_then(|o| tries.retry(o, &replay, &active, max_retries));
            let Some(next) = next else {
                replay.last_try();
                let last_endpoint = match &result {
                    Ok(answered) => Some(answered.pick.endpoint()),
                    Err((_, endpoint)) => *endpoint,
                };
                if let Some(endpoint) = last_endpoint {
                    record.outcome.peers.destination = Peer::at(&model, endpoint.ip());
                }
                if tries.exhausted(outcome) {
                    record.outcome.flags |= ResponseFlags::RETRY_LIMIT_EXCEEDED;
                }
                let mut answered = result.map_err(|(failure, _)| failure)?;
                chosen
                    .response_headers
                    .apply(answered.response.headers_mut());
                return Ok(FinalTry {
                    answered,
                    active,
                    exhausted_on: tries.exhausted_on(),
                    retry: tries.in_flight,
                    deadline,
                });
            };
            let endpoint = match result {
                Ok(mut answered) => {
                    if let Some(outcome) = outcome {
                        attempt::report(&mut answered.pick, outcome);
                    }
                    Some(answered.pick.endpoint())
                }
                Err((_, endpoint)) => endpoint,
            };
            debug!(?endpoint, ?outcome, "retrying");
            tries.tried.extend(endpoint);
            tries.backoff().await;
            body = next;
        }
    }
}

/// strait's own answer for a request that failed, recorded with it.
fn failed(failure: Failure, mut record: Record) -> Response<ProxyBody> {
    debug!(flags = %failure.flags(), %failure, "request failed");
    let response = failure.response(record.outcome.grpc);
    record.outcome.flags |= failure.flags();
    record.answered(&response);
    record.ended = true;
    response
}

/// Where a request goes, by when, as its route says.
struct Routed<'m> {
    route: &'m HttpRoute,
    chosen: &'m RouteDestination,
    backend: &'m Backend,
    deadline: Option<Instant>,
}

/// One try's request: the client's. A client's `grpc-timeout` is sent on with the time this
/// try has left, so the endpoint gives up when strait does; strait adds none of its own (as
/// Envoy), so that an endpoint that does not know the deadline shows what strait enforces.
fn try_request(
    parts: &request::Parts,
    body: RequestBody,
    deadline: Option<Instant>,
) -> Request<RequestBody> {
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    if let (Some(deadline), Some(header)) = (
        deadline,
        request.headers_mut().get_mut(deadline::GRPC_TIMEOUT),
    ) {
        let left = deadline.saturating_duration_since(Instant::now());
        *header = deadline::format_grpc_timeout(left);
    }
    request
}

/// The try whose response goes to the client, and what the request holds until it ends.
struct FinalTry {
    answered: Answered,
    active: ActiveRequest,
    retry: Option<ActiveRetry>,
    /// gRPC statuses in trailers that mean the retries ran out (URX).
    exhausted_on: GrpcCodes,
    deadline: Option<Instant>,
}

impl FinalTry {
    fn respond(self, mut record: Record) -> Response<ProxyBody> {
        let Answered {
            response,
            held,
            checkout,
            pick,
        } = self.answered;
        record.answered(&response);
        record.upstream(pick.endpoint());
        // A headers-only response (gRPC trailers-only) has no body to read to its end.
        record.ended = held.is_none() && http_body::Body::is_end_stream(response.body());
        let grpc = record.outcome.grpc;
        let mut observer = InFlight {
            _checkout: checkout,
            pick,
            _load: (self.active, self.retry),
            exhausted_on: self.exhausted_on,
            record,
        };
        if let Some(trailers) = held.as_ref().and_then(|f| f.trailers_ref()) {
            body::ResponseObserver::trailers(&mut observer, trailers);
        }
        response
            .map(|body| BoxBody::new(ResponseBody::new(held, body, observer, self.deadline, grpc)))
    }
}

/// A response on its way: the upstream stream slot and balancer pick, its place in the retry
/// budget, and its record.
struct InFlight {
    _checkout: Lease<RequestBody>,
    /// Told how the response ended, for outlier detection.
    pick: Pick,
    _load: (ActiveRequest, Option<ActiveRetry>),
    exhausted_on: GrpcCodes,
    record: Record,
}

impl InFlight {
    fn report_response(&mut self) {
        let outcome = TryOutcome::Response {
            status: self.record.outcome.response_code,
            grpc: self.record.outcome.grpc_status,
        };
        attempt::report(&mut self.pick, outcome);
    }
}

impl body::ResponseObserver for InFlight {
    fn data(&mut self, bytes: usize) {
        self.record.sent(bytes);
    }

    fn trailers(&mut self, trailers: &http::HeaderMap) {
        if let Some(status) = grpc::status(trailers) {
            self.record.outcome.grpc_status = Some(status);
            if self.exhausted_on.contains(status) {
                self.record.outcome.flags |= ResponseFlags::RETRY_LIMIT_EXCEEDED;
            }
        }
    }

    fn error(&mut self) {
        attempt::report(&mut self.pick, TryOutcome::Reset);
        self.record.outcome.flags |= ResponseFlags::UPSTREAM_RESET;
        self.record.ended = true;
    }

    fn end(&mut self) {
        self.report_response();
        self.record.ended = true;
    }

    fn timed_out(&mut self) {
        // The endpoint answered in time; how long its stream lasts is the client's business.
        self.report_response();
        self.record.outcome.flags |= ResponseFlags::UPSTREAM_REQUEST_TIMEOUT;
        self.record.outcome.grpc_status = Some(grpc::Code::DeadlineExceeded as u16);
        self.record.ended = true;
    }
}

/// The request's route, and the port its matches and rewrites read.
fn find_route<'m>(
    model: &'m Model,
    destination: &Destination,
    source: Option<&Source>,
    request: &Request<Incoming>,
    record: &mut Record,
) -> Result<(&'m HttpRoute, u16), Failure> {
    let head = RequestHead::from(request).from_source(source);
    if let Destination::Gateway(target) = destination {
        let route = crate::gateway::http_route(model, target, request, head);
        return Ok((route.ok_or(Failure::NoRoute)?, target.port));
    }
    let port = resolve(model, destination, request).ok_or(Failure::NoRoute)?;
    // The Service asked for, until a destination is chosen: what a fault is counted under.
    let asked = port.service();
    record.outcome.service = Some((asked.name.clone(), asked.namespace.clone()));
    let route = model.http_route(&port, head).ok_or(Failure::NoRoute)?;
    Ok((route, port.port()))
}

/// The Service port a request is for.
fn resolve<'m>(
    model: &'m Model,
    destination: &Destination,
    request: &Request<Incoming>,
) -> Option<ServicePortRef<'m>> {
    match destination {
        Destination::OriginalDst(addr) => model.service_port_by_addr(*addr),
        // No port: http's, 80 (strait sees only cleartext).
        Destination::Authority => model.service_port_by_authority(authority(request)?, Some(80)),
        Destination::Gateway(_) => None,
    }
}

/// The request's `:authority`, else (HTTP/1) its `Host`.
pub(crate) fn authority<B>(request: &Request<B>) -> Option<&str> {
    request
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| request.headers().get(http::header::HOST)?.to_str().ok())
}

/// Serves a client connection until it ends; when strait drains, asks it (`graceful`) to
/// finish what is in flight and take nothing new.
async fn until_drained<C>(
    drain: &CancellationToken,
    connection: C,
    graceful: impl FnOnce(Pin<&mut C>),
) -> hyper::Result<()>
where
    C: Future<Output = hyper::Result<()>>,
{
    tokio::pin!(connection);
    tokio::select! {
        ended = connection.as_mut() => ended,
        _ = drain.cancelled() => {
            graceful(connection.as_mut());
            connection.await
        }
    }
}

/// What `/clusters` and the `strait_endpoint_*` metrics read.
impl crate::telemetry::endpoints::EndpointSource for L7Proxy {
    fn balanced(&self) -> Vec<crate::balance::EndpointStats> {
        self.balancers.snapshot()
    }

    fn connections(&self, endpoint: SocketAddr) -> usize {
        self.pool.connections(endpoint) + self.http1_pool.connections(endpoint)
    }
}

#[cfg(test)]
mod tests;
