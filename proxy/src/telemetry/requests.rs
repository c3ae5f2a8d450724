//! Istio's request metrics for the L7 path: `istio_requests_total`,
//! `istio_request_duration_milliseconds`, `istio_request_bytes` and `istio_response_bytes`, one
//! sample per request when its response ends.

use std::{sync::Arc, time::Duration};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

use super::{
    traffic::{Edge, Outcome, Traffic},
    Peers, ResponseFlags, REPORTER,
};

/// Istio's default duration buckets, in milliseconds, so its dashboards' quantiles line up.
pub(super) const DURATION_BUCKETS_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// Istio's size buckets, in bytes: 1 to 10^8 by powers of ten.
const SIZE_BUCKETS: [f64; 9] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub reporter: &'static str,
    pub destination_service: String,
    pub destination_service_name: String,
    pub destination_service_namespace: String,
    /// `grpc` or `http`.
    pub request_protocol: &'static str,
    pub response_code: u16,
    /// The gRPC status as a number; empty for plain HTTP (as Istio reports it).
    pub grpc_response_status: String,
    pub response_flags: ResponseFlags,
    pub connection_security_policy: &'static str,
    /// The client's workload and the endpoint's, `unknown` where the address is no Pod or
    /// WorkloadEntry strait knows. Last: a flattened set takes the encoder with it.
    #[prometheus(flatten)]
    pub peers: Peers,
}

type RequestHistogram = Family<RequestLabels, Histogram, fn() -> Histogram>;

pub struct RequestMetrics {
    requests: Family<RequestLabels, Counter>,
    duration_ms: RequestHistogram,
    request_bytes: RequestHistogram,
    response_bytes: RequestHistogram,
    traffic: Arc<Traffic>,
}

impl RequestMetrics {
    /// Registers the metrics; every request is also counted in `traffic`.
    pub fn register(registry: &mut Registry, traffic: Arc<Traffic>) -> Self {
        let metrics = Self {
            requests: Family::default(),
            duration_ms: Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS_MS)),
            request_bytes: Family::new_with_constructor(|| Histogram::new(SIZE_BUCKETS)),
            response_bytes: Family::new_with_constructor(|| Histogram::new(SIZE_BUCKETS)),
            traffic,
        };
        registry.register("istio_requests", "Requests", metrics.requests.clone());
        registry.register(
            "istio_request_duration_milliseconds",
            "Request duration, from the request to the end of the response",
            metrics.duration_ms.clone(),
        );
        registry.register(
            "istio_request_bytes",
            "Request body sizes",
            metrics.request_bytes.clone(),
        );
        registry.register(
            "istio_response_bytes",
            "Response body sizes",
            metrics.response_bytes.clone(),
        );
        metrics
    }

    pub fn record(&self, outcome: &RequestOutcome, duration: Duration) {
        let labels = outcome.labels();
        self.requests.get_or_create(&labels).inc();
        self.duration_ms
            .get_or_create(&labels)
            .observe(duration.as_secs_f64() * 1000.0);
        self.request_bytes
            .get_or_create(&labels)
            .observe(outcome.request_bytes as f64);
        self.response_bytes
            .get_or_create(&labels)
            .observe(outcome.response_bytes as f64);
        let edge = Edge {
            source: outcome.peers.source.clone(),
            destination_service: labels.destination_service,
            protocol: labels.request_protocol,
        };
        self.traffic
            .record(edge, outcome.dashboard_outcome(), Some(duration));
    }
}

/// What is known of a request when it ends.
#[derive(Clone, Debug)]
pub struct RequestOutcome {
    pub peers: Peers,
    /// `None` when the request matched no Service.
    pub service: Option<(String, String)>,
    pub grpc: bool,
    pub response_code: u16,
    pub grpc_status: Option<u16>,
    pub flags: ResponseFlags,
    /// Body bytes read from the client.
    pub request_bytes: u64,
    /// Body bytes sent to the client.
    pub response_bytes: u64,
}

impl RequestOutcome {
    /// The gRPC status when there is one, else the HTTP status class.
    fn dashboard_outcome(&self) -> Outcome {
        match self.grpc_status {
            Some(status) if self.grpc => Outcome::GrpcStatus(status),
            _ => Outcome::HttpClass(self.response_code / 100),
        }
    }

    fn labels(&self) -> RequestLabels {
        let (name, namespace) = self
            .service
            .clone()
            .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
        let destination_service = match &self.service {
            Some((name, namespace)) => crate::config::fqdn(name, namespace),
            None => "unknown".into(),
        };
        RequestLabels {
            reporter: REPORTER,
            destination_service,
            destination_service_name: name,
            destination_service_namespace: namespace,
            request_protocol: if self.grpc { "grpc" } else { "http" },
            response_code: self.response_code,
            grpc_response_status: self.grpc_status.map(|s| s.to_string()).unwrap_or_default(),
            response_flags: self.flags,
            connection_security_policy: "none",
            peers: self.peers.clone(),
        }
    }
}
