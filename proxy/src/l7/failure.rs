//! Why strait answered a request itself, and how: every failure is a proper gRPC response
//! (trailers-only, `grpc-status` and `grpc-message`) to a gRPC client and Envoy's HTTP status
//! to an HTTP one, with Envoy's response flag.

use std::error::Error as _;

use http::{Response, StatusCode};

use super::{grpc, load::TooManyRequests, ProxyBody};
use crate::{
    config::{route::AbortStatus, TryOutcome},
    telemetry::ResponseFlags,
    upstream::pool::PoolError,
};

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("no route to a Service")]
    NoRoute,
    /// The route's destination names no Service port or subset (Envoy's "cluster not found",
    /// logged as NR here).
    #[error("no such destination: {0}")]
    NoCluster(String),
    #[error("no healthy upstream")]
    NoHealthyUpstream,
    #[error("upstream connect failure: {0}")]
    Connect(PoolError),
    #[error("upstream overflow: {0}")]
    Overflow(Box<dyn std::error::Error + Send + Sync>),
    #[error("upstream reset: {0}")]
    UpstreamReset(hyper::Error),
    #[error("{}", grpc::TIMEOUT_MESSAGE)]
    Timeout { per_try: bool },
    /// The route's fault injection aborted the request with this status.
    #[error("fault filter abort")]
    FaultAbort(AbortStatus),
    /// CONNECT, or an upgrade other than WebSocket.
    #[error("upgrade failed")]
    UpgradeRefused,
}

impl From<PoolError> for Failure {
    fn from(err: PoolError) -> Self {
        match err {
            PoolError::Overflow { .. } => Self::Overflow(err.into()),
            PoolError::Connect { .. } | PoolError::Handshake { .. } => Self::Connect(err),
        }
    }
}

impl From<TooManyRequests> for Failure {
    fn from(err: TooManyRequests) -> Self {
        Self::Overflow(err.into())
    }
}

impl Failure {
    pub fn flags(&self) -> ResponseFlags {
        match self {
            Self::NoRoute | Self::NoCluster(_) => ResponseFlags::NO_ROUTE,
            Self::NoHealthyUpstream => ResponseFlags::NO_HEALTHY_UPSTREAM,
            Self::Connect(_) => ResponseFlags::UPSTREAM_CONNECT_FAILURE,
            Self::Overflow(_) => ResponseFlags::UPSTREAM_OVERFLOW,
            Self::UpstreamReset(err) if local_reset(err) => ResponseFlags::LOCAL_RESET,
            Self::UpstreamReset(_) => ResponseFlags::UPSTREAM_RESET,
            Self::Timeout { .. } => ResponseFlags::UPSTREAM_REQUEST_TIMEOUT,
            // Envoy has no flag for it either (its response details say `upgrade_failed`).
            Self::UpgradeRefused => ResponseFlags::NONE,
            Self::FaultAbort(_) => ResponseFlags::FAULT_INJECTED,
        }
    }

    /// What a retry policy sees of this failure; `None` for those no retry can help: no route,
    /// no endpoint, the pool full (Envoy does not retry overflows either), the request's own
    /// deadline, a refused upgrade.
    pub fn try_outcome(&self) -> Option<TryOutcome> {
        match self {
            Self::Connect(_) => Some(TryOutcome::ConnectFailure),
            Self::UpstreamReset(err) if never_processed(err) => Some(TryOutcome::RefusedStream),
            Self::UpstreamReset(_) => Some(TryOutcome::Reset),
            Self::Timeout { per_try: true } => Some(TryOutcome::PerTryTimeout),
            Self::NoRoute | Self::NoCluster(_) | Self::NoHealthyUpstream | Self::Overflow(_) => {
                None
            }
            Self::UpgradeRefused => None,
            Self::Timeout { per_try: false } | Self::FaultAbort(_) => None,
        }
    }

    /// What outlier detection counts against the endpoint: failures on it, including the
    /// request's own deadline passing while it had not answered (Envoy counts a 504); `None`
    /// for strait's own (no route, no endpoint, the pool full: envoyproxy/envoy#25487).
    pub fn endpoint_outcome(&self) -> Option<TryOutcome> {
        match self {
            Self::Timeout { .. } => Some(TryOutcome::PerTryTimeout),
            _ => self.try_outcome(),
        }
    }

    /// Timeouts are DEADLINE_EXCEEDED (Istio's UT); everything else is UNAVAILABLE, which a
    /// gRPC client may retry by its own policy.
    pub fn response(&self, is_grpc: bool) -> Response<ProxyBody> {
        let message = self.to_string();
        match *self {
            // As Envoy's fault filter: the status the route names, gRPC in trailers-only.
            Self::FaultAbort(AbortStatus::Grpc(code)) => {
                return grpc::trailers_only_code(code, &message)
            }
            Self::FaultAbort(AbortStatus::Http(status)) => {
                return grpc::http_error(status, &message)
            }
            _ => {}
        }
        if is_grpc {
            let code = match self {
                Self::Timeout { .. } => grpc::Code::DeadlineExceeded,
                _ => grpc::Code::Unavailable,
            };
            return grpc::trailers_only(code, &message);
        }
        let status = match self {
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::UpgradeRefused => StatusCode::FORBIDDEN,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        grpc::http_error(status, &message)
    }
}

/// Whether strait, not the endpoint, ended the exchange: the endpoint's answer broke HTTP/2 (a
/// protocol error its h2 library found) or was no HTTP/1.1 message. Envoy's LR ("invalid
/// messaging from upstream" among its local resets).
fn local_reset(err: &hyper::Error) -> bool {
    if err.is_parse() {
        return true;
    }
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(h2) = cause.downcast_ref::<h2::Error>() {
            return h2.is_library();
        }
        source = cause.source();
    }
    false
}

/// Whether the endpoint never saw the request: it refused the stream (REFUSED_STREAM, or a
/// GOAWAY that left it unprocessed), or the connection closed before it was sent. Such a
/// request is safe to send again whatever it does.
fn never_processed(err: &hyper::Error) -> bool {
    if err.is_canceled() {
        return true;
    }
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(h2) = cause.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        source = cause.source();
    }
    false
}
