//! Envoy's response flags: why a request or connection did not get a normal answer.

use std::fmt;

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

/// A set of Envoy's response flags, shown as Envoy shows them: short names joined by commas in
/// Envoy's order (`UF,URX`), or `-` for none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ResponseFlags(u16);

impl ResponseFlags {
    pub const NONE: Self = Self(0);
    /// No healthy upstream: the Service port has no endpoints.
    pub const NO_HEALTHY_UPSTREAM: Self = Self(1 << 0);
    /// The route's timeout (or the request's `grpc-timeout`) expired.
    pub const UPSTREAM_REQUEST_TIMEOUT: Self = Self(1 << 1);
    /// The upstream reset the stream or connection.
    pub const UPSTREAM_RESET: Self = Self(1 << 2);
    /// Upstream connection failure.
    pub const UPSTREAM_CONNECT_FAILURE: Self = Self(1 << 3);
    /// Upstream overflow: the connection pool's limits were reached.
    pub const UPSTREAM_OVERFLOW: Self = Self(1 << 4);
    /// No route configured for the destination.
    pub const NO_ROUTE: Self = Self(1 << 5);
    /// The client went away before the response ended.
    pub const DOWNSTREAM_TERMINATION: Self = Self(1 << 6);
    /// Retries were exhausted: the answer is the last try's.
    pub const RETRY_LIMIT_EXCEEDED: Self = Self(1 << 7);
    /// The route's fault injection delayed the request.
    pub const DELAY_INJECTED: Self = Self(1 << 8);
    /// The route's fault injection aborted the request.
    pub const FAULT_INJECTED: Self = Self(1 << 9);
    /// strait gave up on the upstream stream itself: the endpoint broke the protocol.
    pub const LOCAL_RESET: Self = Self(1 << 10);

    /// In Envoy's order (its `ResponseFlagUtils` table).
    const NAMES: [(Self, &'static str); 11] = [
        (Self::NO_HEALTHY_UPSTREAM, "UH"),
        (Self::UPSTREAM_REQUEST_TIMEOUT, "UT"),
        (Self::UPSTREAM_RESET, "UR"),
        (Self::LOCAL_RESET, "LR"),
        (Self::UPSTREAM_CONNECT_FAILURE, "UF"),
        (Self::UPSTREAM_OVERFLOW, "UO"),
        (Self::NO_ROUTE, "NR"),
        (Self::DELAY_INJECTED, "DI"),
        (Self::FAULT_INJECTED, "FI"),
        (Self::DOWNSTREAM_TERMINATION, "DC"),
        (Self::RETRY_LIMIT_EXCEEDED, "URX"),
    ];

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for ResponseFlags {
    type Output = Self;

    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl std::ops::BitOrAssign for ResponseFlags {
    fn bitor_assign(&mut self, other: Self) {
        self.0 |= other.0;
    }
}

impl fmt::Display for ResponseFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        let mut names = Self::NAMES
            .iter()
            .filter(|(flag, _)| self.contains(*flag))
            .map(|(_, name)| name);
        if let Some(first) = names.next() {
            f.write_str(first)?;
        }
        names.try_for_each(|name| write!(f, ",{name}"))
    }
}

impl EncodeLabelValue for ResponseFlags {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        use fmt::Write;
        write!(encoder, "{self}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_flags_as_envoy_does() {
        assert_eq!(ResponseFlags::NONE.to_string(), "-");
        assert_eq!(ResponseFlags::NO_ROUTE.to_string(), "NR");
        let flags = ResponseFlags::RETRY_LIMIT_EXCEEDED | ResponseFlags::UPSTREAM_CONNECT_FAILURE;
        assert_eq!(flags.to_string(), "UF,URX");
    }
}
