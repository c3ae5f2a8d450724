//! One try of a request: an endpoint picked, a pooled connection to it in the HTTP it is to
//! get ([`upstream_version`]), the request sent, and the response's start awaited.
//!
//! While another try is still possible, a gRPC response is held back until its first body
//! frame: a response whose trailers come before any data (how a gRPC server fails a call once
//! it has sent headers) can still be retried on its trailers' `grpc-status`, which Envoy never
//! reads.
//! Once data is on its way to the client, the try is final.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{request, Request, Response, StatusCode, Version};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::{
    failure::Failure,
    grpc,
    headers::{self, Upgrade},
    L7Proxy, RequestBody,
};
use crate::{
    balance::{BalanceKey, Pick},
    classify::Protocol,
    config::{Backend, ConnectionPool, H2UpgradePolicy, TrafficPolicy, TryOutcome},
    upstream::{pool::Limits, Lease},
};

/// What every try of one request shares.
pub struct Destination<'a> {
    pub key: &'a BalanceKey,
    /// What the Service port speaks.
    pub protocol: Protocol,
    pub policy: &'a TrafficPolicy,
    pub endpoints: &'a [SocketAddr],
    /// The request's consistent hash, under a `consistentHash` policy.
    pub hash: Option<u64>,
}

impl<'a> Destination<'a> {
    /// Where `backend`'s tries of `request` (from `client`) go.
    pub fn of(backend: &'a Backend, request: &request::Parts, client: SocketAddr) -> Self {
        let policy = &backend.traffic_policy;
        Self {
            key: &backend.key,
            protocol: backend.protocol,
            policy,
            endpoints: &backend.endpoints,
            hash: policy.load_balancer.request_hash(request, client.ip()),
        }
    }
}

/// A try that got a response.
pub struct Answered {
    pub response: Response<Incoming>,
    /// The first body frame, when it was held back.
    pub held: Option<Frame<Bytes>>,
    pub checkout: Lease<RequestBody>,
    pub pick: Pick,
}

impl Answered {
    /// What a retry policy sees of this response; `None` once response data was read: nothing
    /// is retried after that.
    pub fn try_outcome(&self) -> Option<TryOutcome> {
        let held_trailers = self.held.as_ref().map(Frame::trailers_ref);
        let held_trailers = match held_trailers {
            Some(None) => return None,
            Some(Some(trailers)) => Some(trailers),
            None => None,
        };
        let headers_status = grpc::status(self.response.headers());
        Some(TryOutcome::Response {
            status: self.response.status().as_u16(),
            grpc: headers_status.or_else(|| held_trailers.and_then(grpc::status)),
        })
    }
}

/// A try that failed, and the endpoint it failed on (if one was picked).
pub type Failed = (Failure, Option<SocketAddr>);

/// When a try must have its answer (or, while held back, its first frame) by.
#[derive(Clone, Copy, Debug)]
pub struct TryDeadline {
    pub at: Instant,
    /// The try's own timeout (`perTryTimeout`), not the request's: another try may follow.
    pub per_try: bool,
}

impl L7Proxy {
    /// One try: sends `request` to an endpoint of `destination`, avoiding `tried` when another
    /// is available; with `hold`, waits for a gRPC response's first body frame too. A try that
    /// fails on its endpoint is reported to outlier detection here; one that answers, when its
    /// response ends.
    pub(super) async fn attempt(
        &self,
        destination: &Destination<'_>,
        tried: &[SocketAddr],
        request: Request<RequestBody>,
        hold: bool,
        deadline: Option<TryDeadline>,
    ) -> Result<Answered, Failed> {
        if headers::upgrade(&request) == Some(Upgrade::Refused) {
            return Err((Failure::UpgradeRefused, None));
        }
        let mut pick = self
            .balancers
            .pick_hashed(
                destination.key,
                destination.policy,
                destination.endpoints,
                tried,
                destination.hash,
            )
            .ok_or((Failure::NoHealthyUpstream, None))?;
        let exchange = self.send(destination, &pick, request, hold);
        let sent = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline.at, exchange)
                .await
                .unwrap_or(Err(Failure::Timeout {
                    per_try: deadline.per_try,
                })),
            None => exchange.await,
        };
        match sent {
            Ok((checkout, response, held)) => Ok(Answered {
                response,
                held,
                checkout,
                pick,
            }),
            Err(failure) => {
                if let Some(outcome) = failure.endpoint_outcome() {
                    report(&mut pick, outcome);
                }
                Err((failure, Some(pick.endpoint())))
            }
        }
    }

    /// The request, in the HTTP the endpoint is to get, on a pooled connection to the picked
    /// endpoint, and the response's start.
    async fn send(
        &self,
        destination: &Destination<'_>,
        pick: &Pick,
        mut request: Request<RequestBody>,
        hold: bool,
    ) -> Result<(Lease<RequestBody>, Response<Incoming>, Option<Frame<Bytes>>), Failure> {
        let pool = &destination.policy.connection_pool;
        let websocket = headers::upgrade(&request) == Some(Upgrade::WebSocket);
        // Only a gRPC response can still fail in trailers after its headers; any other is
        // judged by its status and goes on at once (server-sent events start streaming).
        let hold = hold && grpc::is_grpc(&request);
        let version = upstream_version(destination.protocol, pool, &request, websocket);
        // HTTP/2 has no connection-specific fields (h2 refuses a request carrying them).
        if request.version() != Version::HTTP_2 {
            headers::remove_hop_by_hop(request.headers_mut(), websocket);
        }
        headers::for_upstream(&mut request, version, pick.endpoint());
        let limits = Limits::from(pool);
        let mut lease = match version {
            Version::HTTP_2 => Lease::Http2(self.pool.checkout(pick.endpoint(), &limits).await?),
            _ => Lease::Http1(self.http1_pool.checkout(pick.endpoint(), &limits).await?),
        };
        let started = Instant::now();
        let mut response = lease.send(request).await.map_err(Failure::UpstreamReset)?;
        if !lease.is_first_use() {
            pick.observe(started.elapsed());
        }
        let switched = websocket && response.status() == StatusCode::SWITCHING_PROTOCOLS;
        if response.version() != Version::HTTP_2 {
            headers::remove_hop_by_hop(response.headers_mut(), switched);
        }
        let held = match hold && !is_complete(&response) {
            true => response
                .body_mut()
                .frame()
                .await
                .transpose()
                .map_err(Failure::UpstreamReset)?,
            false => None,
        };
        Ok((lease, response, held))
    }
}

/// Which HTTP an endpoint gets, as Istio sets up Envoy's clusters: HTTP/2 on gRPC, gRPC-Web
/// and HTTP/2 ports; on HTTP ports HTTP/1.1 unless the DestinationRule says `h2UpgradePolicy:
/// UPGRADE` (so an HTTP/2 client's requests go as HTTP/1.1 too); on a port strait relays as
/// TCP (reached by authority, uncaptured) the client's own, as Istio does on ports whose
/// protocol it detects. A WebSocket handshake goes over HTTP/1.1 whatever the port.
fn upstream_version(
    port: Protocol,
    pool: &ConnectionPool,
    request: &Request<RequestBody>,
    websocket: bool,
) -> Version {
    let http2 = if websocket {
        false
    } else if port.is_http2_upstream() {
        true
    } else if port.is_l7() {
        pool.h2_upgrade == H2UpgradePolicy::Upgrade
    } else {
        request.version() == Version::HTTP_2
    };
    match http2 {
        true => Version::HTTP_2,
        false => Version::HTTP_11,
    }
}

/// Tells outlier detection how a try on `pick`'s endpoint ended; says so when it ejects.
pub fn report(pick: &mut Pick, outcome: TryOutcome) {
    if let Some(ejection) = pick.report(outcome) {
        tracing::info!(
            endpoint = %ejection.endpoint,
            reason = ?ejection.reason,
            times = ejection.times_ejected,
            "endpoint ejected by outlier detection"
        );
    }
}

/// A response that needs no body to be judged: it ended with its headers, or carries its gRPC
/// status in them (trailers-only).
fn is_complete(response: &Response<Incoming>) -> bool {
    response.body().is_end_stream() || grpc::status(response.headers()).is_some()
}
