//! A route's `fault`, as Istio hands it to Envoy's fault filter.
//!
//! - `delay`: requests wait `fixedDelay` before they are sent on; `abort`: requests are answered
//!   at once with `httpStatus`, or with `grpcStatus` (HTTP 200, trailers only). Each draws on its
//!   own; a request both delayed and aborted is aborted after the delay. Envoy flags them DI and
//!   FI.
//! - `percentage` absent means no request at all, whatever Istio's reference says: its
//!   translation leaves Envoy's share at 0 (istio/istio#36303, where Istio chose to change the
//!   documentation). A delay falls back to the deprecated integer `percent`, which is 0 when
//!   absent too. Validation warns.
//! - A fault that can never apply (0 %, no `fixedDelay`, no status) is no fault.

use std::{fmt, time::Duration};

use http::StatusCode;

use super::Percentage;
use crate::config::resources::{self, AbortStatus as WrittenStatus, GrpcStatus, IstioDuration};

/// What a route injects; `Default`: nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fault {
    pub delay: Option<Delay>,
    pub abort: Option<Abort>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delay {
    pub duration: Duration,
    /// Never zero.
    pub percentage: Percentage,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Abort {
    pub status: AbortStatus,
    /// Never zero.
    pub percentage: Percentage,
}

/// What an aborted request is answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortStatus {
    Http(StatusCode),
    /// A gRPC status code, sent with HTTP 200.
    Grpc(u16),
}

/// As `strait describe` and `/config_dump` tell it: `delay 10s on 100% (DI); abort ...`.
impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let delay = self.delay.map(|d| {
            let duration = humantime::format_duration(d.duration);
            format!("delay {duration} on {} (DI)", d.percentage)
        });
        let abort = self
            .abort
            .map(|a| format!("abort with {} on {} (FI)", a.status, a.percentage));
        let parts: Vec<String> = delay.into_iter().chain(abort).collect();
        if parts.is_empty() {
            return f.write_str("none");
        }
        f.write_str(&parts.join("; "))
    }
}

impl fmt::Display for AbortStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Http(status) => write!(f, "HTTP {}", status.as_u16()),
            Self::Grpc(code) => match GrpcStatus::from_code(code) {
                Some(status) => write!(f, "gRPC {code} {}", status.name()),
                None => write!(f, "gRPC {code}"),
            },
        }
    }
}

impl Fault {
    pub fn is_none(&self) -> bool {
        self.delay.is_none() && self.abort.is_none()
    }

    pub(crate) fn from_spec(spec: Option<&resources::Fault>) -> Self {
        let Some(spec) = spec else {
            return Self::default();
        };
        Self {
            delay: spec.delay.as_ref().and_then(Delay::from_spec),
            abort: spec.abort.as_ref().and_then(Abort::from_spec),
        }
    }
}

impl Delay {
    fn from_spec(spec: &resources::FaultDelay) -> Option<Self> {
        // `percentage`, else the deprecated `percent`, else none.
        let percentage = spec
            .percentage
            .map(Percentage::from)
            .or(spec.percent.map(Percentage::from))
            .unwrap_or(Percentage::NEVER);
        if percentage.is_never() {
            return None;
        }
        Some(Self {
            duration: spec.fixed_delay.map(IstioDuration::get)?,
            percentage,
        })
    }
}

impl Abort {
    fn from_spec(spec: &resources::FaultAbort) -> Option<Self> {
        let percentage = spec.percentage.map_or(Percentage::NEVER, Percentage::from);
        if percentage.is_never() {
            return None;
        }
        let status = match spec.status? {
            WrittenStatus::Http(status) => AbortStatus::Http(status.get()),
            WrittenStatus::Grpc(status) => AbortStatus::Grpc(status.code()),
        };
        Some(Self { status, percentage })
    }
}
