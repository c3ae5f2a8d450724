//! What a VirtualService's HTTP routes say about requests to a Service port: the route a request
//! takes, its timeout and its retry policy, Istio's defaults where nothing is written.
//!
//! Istio's default retry policy (applied when a route has no `retries`, and to Services with no
//! VirtualService at all): 2 retries on `connect-failure,refused-stream,unavailable,cancelled,
//! retriable-status-codes` (503), no per-try timeout, another endpoint preferred. `attempts: 0`
//! disables retries. A route has no timeout unless one is written (Istio disables Envoy's 15 s).

use std::time::Duration;

/// When a route's request is retried, and how often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try (Istio's `attempts`): 0 disables retries.
    pub attempts: u32,
    /// Each try's own timeout; `None`: only the route's timeout bounds a try.
    pub per_try_timeout: Option<Duration>,
    pub retry_on: RetryOn,
}

impl RetryPolicy {
    /// Istio's default, for routes that say nothing about retries.
    pub fn istio_default() -> Self {
        Self {
            attempts: 2,
            per_try_timeout: None,
            retry_on: RetryOn {
                connect_failure: true,
                refused_stream: true,
                status_codes: vec![503],
                grpc: GrpcCodes::of(&[GrpcCodes::UNAVAILABLE, GrpcCodes::CANCELLED]),
                ..RetryOn::default()
            },
        }
    }

    /// No retries (`attempts: 0`).
    pub fn disabled() -> Self {
        Self {
            attempts: 0,
            per_try_timeout: None,
            retry_on: RetryOn::default(),
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::istio_default()
    }
}

/// Istio's `retryOn`: Envoy's `x-envoy-retry-on` and `x-envoy-retry-grpc-on` conditions, and
/// bare HTTP status codes (which Istio turns into `retriable-status-codes`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetryOn {
    /// `5xx`: any 5xx response, and no response at all (connect failure, reset, per-try
    /// timeout).
    pub server_error: bool,
    /// `gateway-error`: 502, 503 or 504, and no response at all.
    pub gateway_error: bool,
    /// `reset`: the upstream reset the stream or closed the connection before the response.
    pub reset: bool,
    /// `connect-failure`: no connection to the endpoint.
    pub connect_failure: bool,
    /// `refused-stream`: the endpoint refused the stream (REFUSED_STREAM) and never saw it.
    pub refused_stream: bool,
    /// `retriable-status-codes`, and bare codes in `retryOn`.
    pub status_codes: Vec<u16>,
    /// `cancelled`, `deadline-exceeded`, `internal`, `resource-exhausted`, `unavailable`: the
    /// gRPC statuses retried, whether in response headers or trailers.
    pub grpc: GrpcCodes,
}

/// How one try ended, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryOutcome {
    ConnectFailure,
    RefusedStream,
    /// Reset, or the connection went away, before the response started reaching the client.
    Reset,
    PerTryTimeout,
    /// A response: its HTTP status and gRPC status (from headers or trailers).
    Response {
        status: u16,
        grpc: Option<u16>,
    },
}

impl RetryOn {
    /// Whether a try that ended so may be retried.
    pub fn retries(&self, outcome: TryOutcome) -> bool {
        let no_response = self.server_error || self.gateway_error;
        match outcome {
            TryOutcome::ConnectFailure => self.connect_failure || no_response,
            TryOutcome::RefusedStream => self.refused_stream || no_response || self.reset,
            TryOutcome::Reset => self.reset || no_response,
            TryOutcome::PerTryTimeout => no_response || self.grpc.contains(DEADLINE_EXCEEDED),
            TryOutcome::Response { status, grpc } => {
                (self.server_error && (500..600).contains(&status))
                    || (self.gateway_error && matches!(status, 502..=504))
                    || self.status_codes.contains(&status)
                    || grpc.is_some_and(|code| self.grpc.contains(code))
            }
        }
    }
}

const DEADLINE_EXCEEDED: u16 = GrpcCodes::DEADLINE_EXCEEDED;

/// A set of gRPC status codes (0..=16).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrpcCodes(u32);

impl GrpcCodes {
    pub const CANCELLED: u16 = 1;
    pub const DEADLINE_EXCEEDED: u16 = 4;
    pub const RESOURCE_EXHAUSTED: u16 = 8;
    pub const INTERNAL: u16 = 13;
    pub const UNAVAILABLE: u16 = 14;

    pub fn of(codes: &[u16]) -> Self {
        let mut set = Self::default();
        for &code in codes {
            set.insert(code);
        }
        set
    }

    pub fn insert(&mut self, code: u16) {
        if code < 32 {
            self.0 |= 1 << code;
        }
    }

    pub fn contains(self, code: u16) -> bool {
        code < 32 && self.0 & (1 << code) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_default_retries_unavailable_and_connect_failures_only() {
        let on = RetryPolicy::istio_default().retry_on;
        let grpc = |code| TryOutcome::Response {
            status: 200,
            grpc: Some(code),
        };
        assert!(on.retries(grpc(14)));
        assert!(on.retries(grpc(1)));
        assert!(!on.retries(grpc(13)));
        assert!(!on.retries(grpc(0)));
        assert!(on.retries(TryOutcome::ConnectFailure));
        assert!(on.retries(TryOutcome::RefusedStream));
        assert!(!on.retries(TryOutcome::Reset));
        assert!(!on.retries(TryOutcome::PerTryTimeout));
        let http = |status| TryOutcome::Response { status, grpc: None };
        assert!(on.retries(http(503)));
        assert!(!on.retries(http(500)));
    }

    #[test]
    fn server_error_covers_every_failure_without_a_response() {
        let on = RetryOn {
            server_error: true,
            ..RetryOn::default()
        };
        for outcome in [
            TryOutcome::ConnectFailure,
            TryOutcome::RefusedStream,
            TryOutcome::Reset,
            TryOutcome::PerTryTimeout,
            TryOutcome::Response {
                status: 500,
                grpc: None,
            },
        ] {
            assert!(on.retries(outcome), "{outcome:?}");
        }
        assert!(!on.retries(TryOutcome::Response {
            status: 429,
            grpc: None
        }));
    }
}
