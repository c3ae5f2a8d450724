//! Envoy's response flags: why a request or connection did not get a normal answer.

use std::fmt;

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

/// One of Envoy's short flag names, or `-` for none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResponseFlags(&'static str);

impl ResponseFlags {
    pub const NONE: Self = Self("-");
    /// No healthy upstream: the Service port has no endpoints.
    pub const NO_HEALTHY_UPSTREAM: Self = Self("UH");
    /// Upstream connection failure.
    pub const UPSTREAM_CONNECT_FAILURE: Self = Self("UF");
    /// No route configured for the destination.
    pub const NO_ROUTE: Self = Self("NR");
    /// Upstream overflow: the connection pool's limits were reached.
    pub const UPSTREAM_OVERFLOW: Self = Self("UO");
    /// The client went away before the response ended.
    pub const DOWNSTREAM_TERMINATION: Self = Self("DC");
    /// The upstream reset the stream or connection.
    pub const UPSTREAM_RESET: Self = Self("UR");

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for ResponseFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl EncodeLabelValue for ResponseFlags {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        EncodeLabelValue::encode(&self.0, encoder)
    }
}
