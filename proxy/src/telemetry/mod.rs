//! Telemetry: Prometheus metrics with Istio's standard names and labels, so existing dashboards
//! work, and the kernel's counters read from BPF maps at scrape time.

pub mod access_log;
pub mod endpoints;
mod flags;
#[cfg(test)]
mod grafana_tests;
pub mod kernel;
pub mod logging;
mod peers;
pub mod process;
pub mod reloads;
pub mod requests;
pub mod traffic;

pub use self::{
    flags::ResponseFlags,
    peers::{Peer, Peers},
};

use std::{sync::Arc, time::Duration};

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

use self::traffic::{Edge, Outcome, Traffic};

/// Istio's `reporter` label: strait reports from the client's side of the connection.
pub const REPORTER: &str = "source";

/// The labels of Istio's TCP metrics that strait knows today.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TcpLabels {
    pub reporter: &'static str,
    pub destination_service: String,
    pub destination_service_name: String,
    pub destination_service_namespace: String,
    pub request_protocol: &'static str,
    pub response_flags: ResponseFlags,
    pub connection_security_policy: &'static str,
    /// Last: a flattened set takes the encoder with it.
    #[prometheus(flatten)]
    pub peers: Peers,
}

impl TcpLabels {
    /// A connection between `peers` for the Service `service_name` in `namespace`.
    pub fn new(
        peers: Peers,
        service_name: &str,
        namespace: &str,
        response_flags: ResponseFlags,
    ) -> Self {
        Self {
            reporter: REPORTER,
            destination_service: crate::config::fqdn(service_name, namespace),
            destination_service_name: service_name.to_string(),
            destination_service_namespace: namespace.to_string(),
            request_protocol: "tcp",
            response_flags,
            connection_security_policy: "none",
            peers,
        }
    }
}

/// Istio's `istio_tcp_*` counters.
#[derive(Default)]
pub struct TcpMetrics {
    pub opened: Family<TcpLabels, Counter>,
    pub closed: Family<TcpLabels, Counter>,
    /// Bytes sent to the client (the response direction).
    pub sent_bytes: Family<TcpLabels, Counter>,
    /// Bytes received from the client (the request direction).
    pub received_bytes: Family<TcpLabels, Counter>,
    /// Where each closed connection is counted for the dashboard too.
    traffic: Arc<Traffic>,
}

impl TcpMetrics {
    fn new(traffic: Arc<Traffic>) -> Self {
        Self {
            traffic,
            ..Self::default()
        }
    }

    pub fn connection_opened(&self, labels: &TcpLabels) {
        self.opened.get_or_create(labels).inc();
    }

    /// A connection ended (`labels` with its flags); `bytes` (from the client, to the client)
    /// when it was relayed, and how long it lasted.
    pub fn connection_closed(
        &self,
        labels: &TcpLabels,
        bytes: Option<(u64, u64)>,
        lasted: Duration,
    ) {
        self.closed.get_or_create(labels).inc();
        if let Some((from_client, to_client)) = bytes {
            self.received_bytes
                .get_or_create(labels)
                .inc_by(from_client);
            self.sent_bytes.get_or_create(labels).inc_by(to_client);
        }
        let edge = Edge {
            source: labels.peers.source.clone(),
            destination_service: labels.destination_service.clone(),
            protocol: labels.request_protocol,
        };
        let outcome = Outcome::Tcp(labels.response_flags);
        self.traffic.record(edge, outcome, Some(lasted));
    }
}

/// The registry and the metrics the proxy updates on its paths.
pub struct Metrics {
    registry: Registry,
    pub tcp: Arc<TcpMetrics>,
    pub requests: Arc<requests::RequestMetrics>,
    /// The live summary the L7 and TCP metrics feed, for the admin dashboard.
    pub traffic: Arc<Traffic>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let traffic = Arc::new(Traffic::default());
        let tcp = Arc::new(TcpMetrics::new(traffic.clone()));
        // Counter names get their `_total` suffix from the library.
        registry.register(
            "istio_tcp_connections_opened",
            "TCP connections opened",
            tcp.opened.clone(),
        );
        registry.register(
            "istio_tcp_connections_closed",
            "TCP connections closed",
            tcp.closed.clone(),
        );
        registry.register(
            "istio_tcp_sent_bytes",
            "Bytes sent to the client during the connection",
            tcp.sent_bytes.clone(),
        );
        registry.register(
            "istio_tcp_received_bytes",
            "Bytes received from the client during the connection",
            tcp.received_bytes.clone(),
        );
        let requests = Arc::new(requests::RequestMetrics::register(
            &mut registry,
            traffic.clone(),
        ));
        Self {
            registry,
            tcp,
            requests,
            traffic,
        }
    }

    /// Adds a collector read at every scrape (the kernel counters).
    pub fn register_collector(
        &mut self,
        collector: Box<dyn prometheus_client::collector::Collector>,
    ) {
        self.registry.register_collector(collector);
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        encode(&mut out, &self.registry).expect("encoding metrics into a String");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
