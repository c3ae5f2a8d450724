//! A DestinationRule's `trafficPolicy` (host-wide, per port, per subset), as written. What it
//! means for a Service port, with Istio's defaults, is [`crate::config::policy`]. Fields strait
//! does not implement are left out and reported (see [`crate::config::fields`]).

use serde::Deserialize;

use super::{IntPercent, IstioDuration, PoolLimit, PortSelector};

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    pub load_balancer: Option<LoadBalancerSettings>,
    pub connection_pool: Option<ConnectionPoolSettings>,
    pub outlier_detection: Option<OutlierDetection>,
    /// Each replaces the whole policy for its port (see [`crate::config::policy`]).
    #[serde(default)]
    pub port_level_settings: Vec<PortTrafficPolicy>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortTrafficPolicy {
    pub port: PortSelector,
    pub load_balancer: Option<LoadBalancerSettings>,
    pub connection_pool: Option<ConnectionPoolSettings>,
    pub outlier_detection: Option<OutlierDetection>,
}

/// Istio's `oneof`: `simple` or `consistentHash` (checked in validation).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerSettings {
    pub simple: Option<SimpleLb>,
    pub consistent_hash: Option<ConsistentHashLb>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SimpleLb {
    Unspecified,
    /// Deprecated by Istio for `LEAST_REQUEST`, which it means.
    LeastConn,
    Random,
    /// To the request's original destination, with no balancing: not supported.
    Passthrough,
    RoundRobin,
    LeastRequest,
}

/// Istio's `oneof` hash key (one of the first four; checked in validation) and ring size.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsistentHashLb {
    pub http_header_name: Option<String>,
    pub http_cookie: Option<HttpCookie>,
    pub use_source_ip: Option<bool>,
    pub http_query_parameter_name: Option<String>,
    pub ring_hash: Option<RingHashSettings>,
    pub maglev: Option<MaglevSettings>,
    /// Deprecated by Istio for `ringHash.minimumRingSize`.
    pub minimum_ring_size: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RingHashSettings {
    pub minimum_ring_size: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaglevSettings {
    pub table_size: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct HttpCookie {
    pub name: String,
    pub path: Option<String>,
    /// As written: strait sets no cookie (see [`crate::balance::HashKey::Cookie`]). `0s` (a
    /// session cookie) is valid here, unlike in every other Istio duration.
    pub ttl: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
pub struct ConnectionPoolSettings {
    pub tcp: Option<TcpSettings>,
    pub http: Option<HttpSettings>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpSettings {
    pub max_connections: Option<PoolLimit>,
    pub connect_timeout: Option<IstioDuration>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpSettings {
    pub http1_max_pending_requests: Option<PoolLimit>,
    pub http2_max_requests: Option<PoolLimit>,
    pub max_requests_per_connection: Option<PoolLimit>,
    pub max_retries: Option<PoolLimit>,
    pub idle_timeout: Option<IstioDuration>,
    pub h2_upgrade_policy: Option<H2Upgrade>,
    pub max_concurrent_streams: Option<PoolLimit>,
}

/// Istio's `H2UpgradePolicy` as written; `DEFAULT` defers to the mesh's setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum H2Upgrade {
    Default,
    DoNotUpgrade,
    Upgrade,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    /// A `UInt32Value`: absent means Envoy's default (5), 0 turns the check off.
    #[serde(rename = "consecutive5xxErrors")]
    pub consecutive_5xx_errors: Option<u32>,
    /// Absent or 0: off.
    pub consecutive_gateway_errors: Option<u32>,
    pub interval: Option<IstioDuration>,
    pub base_ejection_time: Option<IstioDuration>,
    /// 0 means not set, as in Istio.
    pub max_ejection_percent: Option<IntPercent>,
    pub min_health_percent: Option<IntPercent>,
}
