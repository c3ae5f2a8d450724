//! Istio's request metrics for the L7 path: `istio_requests_total` and
//! `istio_request_duration_milliseconds`, one sample per request when its response ends.

use std::{sync::Arc, time::Duration};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

use super::{
    traffic::{Edge, Outcome, SourceWorkload, Traffic},
    ResponseFlags, REPORTER,
};

/// Istio's default duration buckets, in milliseconds, so its dashboards' quantiles line up.
pub(super) const DURATION_BUCKETS_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub reporter: &'static str,
    /// The client's workload (see [`Source::workload`](crate::config::route::Source)), or
    /// `unknown` when its address is no Pod or WorkloadEntry strait knows.
    pub source_workload: String,
    pub source_workload_namespace: String,
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
}

type DurationHistogram = Family<RequestLabels, Histogram, fn() -> Histogram>;

pub struct RequestMetrics {
    requests: Family<RequestLabels, Counter>,
    duration_ms: DurationHistogram,
    traffic: Arc<Traffic>,
}

impl RequestMetrics {
    /// Registers the metrics; every request is also counted in `traffic`.
    pub fn register(registry: &mut Registry, traffic: Arc<Traffic>) -> Self {
        let metrics = Self {
            requests: Family::default(),
            duration_ms: Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS_MS)),
            traffic,
        };
        registry.register("istio_requests", "Requests", metrics.requests.clone());
        registry.register(
            "istio_request_duration_milliseconds",
            "Request duration, from the request to the end of the response",
            metrics.duration_ms.clone(),
        );
        metrics
    }

    pub fn record(&self, outcome: &RequestOutcome, duration: Duration) {
        let labels = outcome.labels();
        self.requests.get_or_create(&labels).inc();
        self.duration_ms
            .get_or_create(&labels)
            .observe(duration.as_secs_f64() * 1000.0);
        let edge = Edge {
            source: outcome.source.clone(),
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
    pub source: SourceWorkload,
    /// `None` when the request matched no Service.
    pub service: Option<(String, String)>,
    pub grpc: bool,
    pub response_code: u16,
    pub grpc_status: Option<u16>,
    pub flags: ResponseFlags,
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
            source_workload: self.source.workload.clone(),
            source_workload_namespace: self.source.namespace.clone(),
            destination_service,
            destination_service_name: name,
            destination_service_namespace: namespace,
            request_protocol: if self.grpc { "grpc" } else { "http" },
            response_code: self.response_code,
            grpc_response_status: self.grpc_status.map(|s| s.to_string()).unwrap_or_default(),
            response_flags: self.flags,
            connection_security_policy: "none",
        }
    }
}
