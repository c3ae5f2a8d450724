//! A route's retry policy, as Istio turns a VirtualService's `retries` into Envoy's.
//!
//! - No `retries`: Istio's default policy, also that of Services with no VirtualService: 2
//!   retries on `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes`
//!   (503), no per-try timeout, another endpoint preferred.
//! - `attempts` 0 or absent: no retries at all, whatever else `retries` says. Istio's proto has
//!   no "absent" (it is 0), and its `ConvertPolicy` returns no policy for 0; its validation
//!   refuses `perTryTimeout` or `retryOn` beside it, strait warns.
//! - Otherwise the default with `attempts`, and `perTryTimeout` and `retryOn` where written. A
//!   written `retryOn` replaces the default conditions and its 503: bare status codes in it are
//!   the only retriable status codes (Istio adds `retriable-status-codes` for them).

use std::{fmt, time::Duration};

use crate::config::resources::{IstioDuration, Retries};

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

impl RetryPolicy {
    /// A route's policy from its `retries`.
    pub(crate) fn from_spec(retries: Option<&Retries>) -> Self {
        let Some(retries) = retries else {
            return Self::istio_default();
        };
        let attempts = retries.attempts.unwrap_or(0);
        if attempts == 0 {
            return Self::disabled();
        }
        let default = Self::istio_default();
        // Istio tests `retryOn != ""`: an empty one keeps the default conditions.
        let retry_on = match retries.retry_on.as_deref() {
            Some(text) if !text.is_empty() => RetryOn::parse(text).0,
            _ => default.retry_on,
        };
        Self {
            attempts,
            per_try_timeout: retries.per_try_timeout.map(IstioDuration::get),
            retry_on,
        }
    }
}

/// As `strait describe` tells it: `off`, or `3 on 5xx,unavailable, 2s per try`.
impl fmt::Display for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.attempts == 0 {
            return f.write_str("off");
        }
        write!(f, "{} on {}", self.attempts, self.retry_on)?;
        if let Some(per_try) = self.per_try_timeout {
            write!(f, ", {} per try", humantime::format_duration(per_try))?;
        }
        if *self == Self::istio_default() {
            f.write_str(" (Istio's default)")?;
        }
        Ok(())
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

/// A `retryOn` token strait does not act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Skipped {
    /// A condition Istio accepts that strait cannot evaluate.
    Unsupported,
    /// Neither a condition Istio knows nor an HTTP status code: Istio's validation refuses it.
    Unknown,
}

impl RetryOn {
    /// Envoy conditions Istio accepts that strait has nothing to evaluate them on: response
    /// headers it does not read (`retriable-headers` has no headers to match from Istio,
    /// `envoy-ratelimited` comes from Envoy's rate limiter), resets it cannot tell apart
    /// (`reset-before-request`), and HTTP/3.
    const UNSUPPORTED: &[&str] = &[
        "envoy-ratelimited",
        "retriable-headers",
        "reset-before-request",
        "http3-post-connect-failure",
    ];

    /// Reads Istio's `retryOn`: comma-separated Envoy conditions and HTTP status codes, blanks
    /// around each ignored as Istio's translation does. The tokens it could not apply come back
    /// with why, in order.
    pub(crate) fn parse(text: &str) -> (Self, Vec<(&str, Skipped)>) {
        let mut on = Self::default();
        let mut skipped = Vec::new();
        for token in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if let Err(why) = on.apply(token) {
                skipped.push((token, why));
            }
        }
        (on, skipped)
    }

    fn apply(&mut self, token: &str) -> Result<(), Skipped> {
        match token {
            "5xx" => self.server_error = true,
            "gateway-error" => self.gateway_error = true,
            "reset" => self.reset = true,
            "connect-failure" => self.connect_failure = true,
            "refused-stream" => self.refused_stream = true,
            // The codes themselves come as bare numbers: Istio adds this token for them.
            "retriable-status-codes" => {}
            // Envoy retries only 409 (Conflict) under this name.
            "retriable-4xx" => self.add_status(409),
            _ if Self::UNSUPPORTED.contains(&token) => return Err(Skipped::Unsupported),
            _ => match Self::GRPC.iter().find(|(name, _)| *name == token) {
                Some(&(_, code)) => self.grpc.insert(code),
                None => self.add_status(http_status(token).ok_or(Skipped::Unknown)?),
            },
        }
        Ok(())
    }

    /// The gRPC conditions (Envoy's `x-envoy-retry-grpc-on`), by the status each retries.
    const GRPC: [(&'static str, u16); 5] = [
        ("cancelled", GrpcCodes::CANCELLED),
        ("deadline-exceeded", GrpcCodes::DEADLINE_EXCEEDED),
        ("resource-exhausted", GrpcCodes::RESOURCE_EXHAUSTED),
        ("internal", GrpcCodes::INTERNAL),
        ("unavailable", GrpcCodes::UNAVAILABLE),
    ];

    fn add_status(&mut self, status: u16) {
        if !self.status_codes.contains(&status) {
            self.status_codes.push(status);
        }
    }
}

/// The conditions as `retryOn` would write them (status codes bare), for `strait describe`.
impl fmt::Display for RetryOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flags = [
            (self.server_error, "5xx"),
            (self.gateway_error, "gateway-error"),
            (self.reset, "reset"),
            (self.connect_failure, "connect-failure"),
            (self.refused_stream, "refused-stream"),
        ];
        let flags = flags
            .iter()
            .filter(|(on, _)| *on)
            .map(|&(_, name)| name.to_owned());
        let grpc = Self::GRPC
            .iter()
            .filter(|&&(_, code)| self.grpc.contains(code))
            .map(|&(name, _)| name.to_owned());
        let codes = self.status_codes.iter().map(u16::to_string);
        let tokens: Vec<String> = flags.chain(grpc).chain(codes).collect();
        if tokens.is_empty() {
            return f.write_str("nothing");
        }
        f.write_str(&tokens.join(","))
    }
}

/// A status code with a standard reason phrase: what Istio takes for one (Go's
/// `http.StatusText`, which knows the same codes).
fn http_status(token: &str) -> Option<u16> {
    let status = http::StatusCode::from_bytes(token.as_bytes()).ok()?;
    status.canonical_reason().map(|_| status.as_u16())
}

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
    fn conditions_read_back_as_retry_on_writes_them() {
        let written = "5xx,reset,connect-failure,unavailable,cancelled,409,503";
        let (on, skipped) = RetryOn::parse(written);
        assert!(skipped.is_empty());
        assert_eq!(
            on.to_string(),
            "5xx,reset,connect-failure,cancelled,unavailable,409,503"
        );
        assert_eq!(RetryOn::parse(&on.to_string()).0, on);
        assert_eq!(RetryOn::default().to_string(), "nothing");
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
