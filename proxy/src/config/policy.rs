//! What a DestinationRule's traffic policy means for one Service port: every setting resolved,
//! Istio's default where nothing is written.
//!
//! Istio resolves a policy in parts, not field by field: load balancer, connection pool and
//! outlier detection (and TLS, which strait does not do). A `portLevelSettings` entry for the
//! port replaces every part, and a part it leaves out gets the default, not the host-level one
//! (Istio's documentation says so and its `MergeTrafficPolicy` does so). A subset's policy, its
//! own port-level settings applied first the same way, replaces the parts it sets.

use std::{num::NonZeroU32, time::Duration};

use http::HeaderName;

use super::resources::{
    self, ConnectionPoolSettings, ConsistentHashLb, H2Upgrade, IntPercent, IstioDuration,
    LoadBalancerSettings, PoolLimit, SimpleLb,
};
use crate::balance::{ConsistentHash, HashKey, LbPolicy};

/// Istio's "unlimited" for connection pool counts (Envoy's circuit breakers): 2^32-1.
pub const UNLIMITED: u32 = u32::MAX;

/// The policy in effect for a Service port (or one of its subsets).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrafficPolicy {
    pub load_balancer: LbPolicy,
    pub connection_pool: ConnectionPool,
    /// `None`: no `outlierDetection` written, so no endpoint is ever ejected (Istio's default).
    pub outlier_detection: Option<OutlierDetection>,
}

impl TrafficPolicy {
    /// The policy for Service port `port` under a DestinationRule's host-level policy and, for
    /// a subset, the subset's own.
    pub(crate) fn resolve(
        host: Option<&resources::TrafficPolicy>,
        subset: Option<&resources::TrafficPolicy>,
        port: u16,
    ) -> Self {
        let host = Parts::for_port(host, port);
        let parts = match subset {
            Some(subset) => Parts::for_port(Some(subset), port).over(host),
            None => host,
        };
        parts.resolve()
    }
}

/// `connectionPool`. Like Envoy's circuit breakers, the totals (connections, requests,
/// pending requests, retries) count across all endpoints of the Service port together; the
/// per-connection settings apply to each connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionPool {
    /// `tcp.maxConnections`: connections open at once, in total.
    pub max_connections: u32,
    /// `tcp.connectTimeout`: 10 s by default.
    pub connect_timeout: Duration,
    /// `http.http1MaxPendingRequests`: requests waiting for a connection, in total.
    pub http1_max_pending_requests: u32,
    /// `http.http2MaxRequests`: requests in flight, in total.
    pub http2_max_requests: u32,
    /// `http.maxRequestsPerConnection`: requests one connection carries before it is replaced;
    /// `None`: no limit.
    pub max_requests_per_connection: Option<NonZeroU32>,
    /// `http.maxRetries`: retries in flight, in total.
    pub max_retries: u32,
    /// `http.idleTimeout`: an upstream connection with no request for this long is closed;
    /// 1 h by default.
    pub idle_timeout: Duration,
    /// `http.h2UpgradePolicy`.
    pub h2_upgrade: H2UpgradePolicy,
    /// `http.maxConcurrentStreams`: streams on one HTTP/2 connection; `None`: as many as the
    /// endpoint allows.
    pub max_concurrent_streams: Option<NonZeroU32>,
}

impl ConnectionPool {
    const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

    fn from_settings(settings: Option<&ConnectionPoolSettings>) -> Self {
        let settings = settings.copied().unwrap_or_default();
        let (tcp, http) = (
            settings.tcp.unwrap_or_default(),
            settings.http.unwrap_or_default(),
        );
        Self {
            max_connections: or_unlimited(tcp.max_connections),
            connect_timeout: or(tcp.connect_timeout, Self::DEFAULT_CONNECT_TIMEOUT),
            http1_max_pending_requests: or_unlimited(http.http1_max_pending_requests),
            http2_max_requests: or_unlimited(http.http2_max_requests),
            max_requests_per_connection: http.max_requests_per_connection.and_then(PoolLimit::get),
            max_retries: or_unlimited(http.max_retries),
            idle_timeout: or(http.idle_timeout, Self::DEFAULT_IDLE_TIMEOUT),
            h2_upgrade: http
                .h2_upgrade_policy
                .map_or_else(H2UpgradePolicy::default, H2UpgradePolicy::from),
            max_concurrent_streams: http.max_concurrent_streams.and_then(PoolLimit::get),
        }
    }
}

impl Default for ConnectionPool {
    fn default() -> Self {
        Self::from_settings(None)
    }
}

/// Whether HTTP/1.1 requests go upstream as HTTP/2.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum H2UpgradePolicy {
    /// Also what `DEFAULT` means: Istio's mesh-wide default, which strait has no setting for.
    #[default]
    DoNotUpgrade,
    Upgrade,
}

impl From<H2Upgrade> for H2UpgradePolicy {
    fn from(written: H2Upgrade) -> Self {
        match written {
            H2Upgrade::Upgrade => Self::Upgrade,
            H2Upgrade::Default | H2Upgrade::DoNotUpgrade => Self::DoNotUpgrade,
        }
    }
}

/// `outlierDetection`: when an endpoint is ejected from balancing, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutlierDetection {
    /// Consecutive 5xx responses (gateway errors included) that eject; `None`: not counted.
    /// 5 by default.
    pub consecutive_5xx_errors: Option<NonZeroU32>,
    /// Consecutive 502, 503 or 504 responses (and connect failures) that eject; `None` (the
    /// default): not counted.
    pub consecutive_gateway_errors: Option<NonZeroU32>,
    /// How often ejections are reviewed: 10 s by default.
    pub interval: Duration,
    /// An ejection lasts this long times the endpoint's ejections so far: 30 s by default.
    pub base_ejection_time: Duration,
    /// Of the Service port's endpoints, at most this share is ejected at once: 10 % by default.
    pub max_ejection_percent: IntPercent,
    /// Below this share of healthy endpoints, ejection stops and all are used: 0 % by default.
    pub min_health_percent: IntPercent,
}

impl OutlierDetection {
    const DEFAULT_CONSECUTIVE_5XX_ERRORS: NonZeroU32 = NonZeroU32::new(5).unwrap();
    const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
    const DEFAULT_BASE_EJECTION_TIME: Duration = Duration::from_secs(30);
    const DEFAULT_MAX_EJECTION_PERCENT: IntPercent = IntPercent::new(10).unwrap();
    const DEFAULT_MIN_HEALTH_PERCENT: IntPercent = IntPercent::new(0).unwrap();

    fn from_settings(settings: &resources::OutlierDetection) -> Self {
        Self {
            consecutive_5xx_errors: settings
                .consecutive_5xx_errors
                .map_or(Some(Self::DEFAULT_CONSECUTIVE_5XX_ERRORS), NonZeroU32::new),
            consecutive_gateway_errors: settings
                .consecutive_gateway_errors
                .and_then(NonZeroU32::new),
            interval: or(settings.interval, Self::DEFAULT_INTERVAL),
            base_ejection_time: or(
                settings.base_ejection_time,
                Self::DEFAULT_BASE_EJECTION_TIME,
            ),
            // Istio reads 0 as not set.
            max_ejection_percent: settings
                .max_ejection_percent
                .filter(|percent| percent.get() > 0)
                .unwrap_or(Self::DEFAULT_MAX_EJECTION_PERCENT),
            min_health_percent: settings
                .min_health_percent
                .unwrap_or(Self::DEFAULT_MIN_HEALTH_PERCENT),
        }
    }
}

impl Default for OutlierDetection {
    /// An `outlierDetection: {}`.
    fn default() -> Self {
        Self::from_settings(&resources::OutlierDetection::default())
    }
}

/// The parts of a policy, as written, that apply to one port.
#[derive(Clone, Copy, Debug, Default)]
struct Parts<'a> {
    load_balancer: Option<&'a LoadBalancerSettings>,
    connection_pool: Option<&'a ConnectionPoolSettings>,
    outlier_detection: Option<&'a resources::OutlierDetection>,
    /// From a `portLevelSettings` entry, which replaces every part.
    port_level: bool,
}

impl<'a> Parts<'a> {
    fn for_port(policy: Option<&'a resources::TrafficPolicy>, port: u16) -> Self {
        let Some(policy) = policy else {
            return Self::default();
        };
        // The first entry for the port applies, as in Istio; validation reports the others.
        let port_level = policy
            .port_level_settings
            .iter()
            .find(|settings| settings.port.number.get() == port);
        match port_level {
            Some(settings) => Self {
                load_balancer: settings.load_balancer.as_ref(),
                connection_pool: settings.connection_pool.as_ref(),
                outlier_detection: settings.outlier_detection.as_ref(),
                port_level: true,
            },
            None => Self {
                load_balancer: policy.load_balancer.as_ref(),
                connection_pool: policy.connection_pool.as_ref(),
                outlier_detection: policy.outlier_detection.as_ref(),
                port_level: false,
            },
        }
    }

    /// A subset's parts over the host's.
    fn over(self, host: Self) -> Self {
        if self.port_level {
            return self;
        }
        Self {
            load_balancer: self.load_balancer.or(host.load_balancer),
            connection_pool: self.connection_pool.or(host.connection_pool),
            outlier_detection: self.outlier_detection.or(host.outlier_detection),
            port_level: false,
        }
    }

    fn resolve(self) -> TrafficPolicy {
        TrafficPolicy {
            load_balancer: self.load_balancer.map_or_else(LbPolicy::default, lb_policy),
            connection_pool: ConnectionPool::from_settings(self.connection_pool),
            outlier_detection: self.outlier_detection.map(OutlierDetection::from_settings),
        }
    }
}

fn lb_policy(settings: &LoadBalancerSettings) -> LbPolicy {
    if let Some(written) = &settings.consistent_hash {
        // Validation reports a hash that names no usable key: its requests go at random.
        return consistent_hash(written).map_or(LbPolicy::Random, LbPolicy::ConsistentHash);
    }
    match settings.simple {
        Some(SimpleLb::RoundRobin) => LbPolicy::RoundRobin,
        Some(SimpleLb::LeastRequest | SimpleLb::LeastConn) => LbPolicy::LeastRequest,
        Some(SimpleLb::Random) => LbPolicy::Random,
        // PASSTHROUGH is reported as unsupported and gets the default.
        Some(SimpleLb::Unspecified | SimpleLb::Passthrough) | None => LbPolicy::default(),
    }
}

/// Why a `consistentHash` hashes on nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HashKeyProblem {
    None,
    /// Istio's `oneof`: its validation refuses the rule.
    Several,
    BadHeaderName,
}

impl HashKeyProblem {
    pub fn message(self) -> &'static str {
        match self {
            Self::None => "names no hash key (httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName)",
            Self::Several => "names more than one hash key: set one",
            Self::BadHeaderName => "httpHeaderName is not a header name",
        }
    }
}

/// A `consistentHash` as the balancer uses it.
pub(crate) fn consistent_hash(
    written: &ConsistentHashLb,
) -> Result<ConsistentHash, HashKeyProblem> {
    let header = written.http_header_name.as_deref().map(|name| {
        HeaderName::from_bytes(name.as_bytes())
            .map(HashKey::Header)
            .map_err(|_| HashKeyProblem::BadHeaderName)
    });
    let cookie =
        (written.http_cookie.as_ref()).map(|cookie| Ok(HashKey::Cookie(cookie.name.clone())));
    let source_ip = (written.use_source_ip == Some(true)).then_some(Ok(HashKey::SourceIp));
    let parameter =
        (written.http_query_parameter_name.clone()).map(|name| Ok(HashKey::QueryParameter(name)));
    let mut keys = [header, cookie, source_ip, parameter].into_iter().flatten();
    let key = match (keys.next(), keys.next()) {
        (Some(key), None) => key?,
        (None, _) => return Err(HashKeyProblem::None),
        (Some(_), Some(_)) => return Err(HashKeyProblem::Several),
    };
    let ring_size = written
        .maglev
        .and_then(|maglev| maglev.table_size)
        .or(written.ring_hash.and_then(|ring| ring.minimum_ring_size))
        .or(written.minimum_ring_size)
        .filter(|&size| size > 0)
        .map_or(ConsistentHash::DEFAULT_RING_SIZE, |size| {
            u32::try_from(size)
                .unwrap_or(u32::MAX)
                .min(ConsistentHash::MAX_RING_SIZE)
        });
    Ok(ConsistentHash { key, ring_size })
}

fn or_unlimited(limit: Option<PoolLimit>) -> u32 {
    limit
        .and_then(PoolLimit::get)
        .map_or(UNLIMITED, NonZeroU32::get)
}

fn or(duration: Option<IstioDuration>, default: Duration) -> Duration {
    duration.map_or(default, IstioDuration::get)
}

#[cfg(test)]
mod tests;
