//! The live state of each endpoint of each cluster, as `/clusters`, the config dump's endpoint
//! health and the `strait_endpoint_*` metrics show it: the request balancers' counts, latency
//! estimate and ejections, with the pooled connections open to the endpoint.
//!
//! Read when asked (a request to the admin server, a scrape), from the current model's clusters:
//! an endpoint no request has reached yet shows zeros and healthy.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
};
use tokio::sync::watch;

use crate::{
    admin::config_dump::backends,
    balance::{BalanceKey, EndpointStats},
    config::{Backend, Model},
};

/// Where the live state comes from: the L7 proxy, which owns the balancers and the pools.
pub trait EndpointSource: Send + Sync {
    /// What the request balancers remember, per balance key and endpoint.
    fn balanced(&self) -> Vec<EndpointStats>;
    /// Pooled upstream connections (HTTP/2 and HTTP/1.1) open to `endpoint`. The pools are per
    /// address, so every cluster the endpoint is in shows the same connections.
    fn connections(&self, endpoint: SocketAddr) -> usize;
}

/// One endpoint of one cluster, now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndpointState {
    /// Requests in flight.
    pub active: usize,
    /// Requests sent (tries, retries included) since the balancer first picked it.
    pub total: u64,
    pub connections: usize,
    /// The peak-EWMA latency estimate.
    pub latency: Duration,
    pub times_ejected: u64,
    /// While outlier detection has it ejected: how long until it is back.
    pub ejected_for: Option<Duration>,
}

impl EndpointState {
    pub fn is_ejected(&self) -> bool {
        self.ejected_for.is_some()
    }
}

/// One read of the live state, to look endpoints up in.
pub struct Live<'a> {
    balanced: HashMap<(BalanceKey, SocketAddr), EndpointStats>,
    source: Option<&'a dyn EndpointSource>,
    now: Instant,
}

impl<'a> Live<'a> {
    pub fn read(source: &'a dyn EndpointSource) -> Self {
        let balanced = source.balanced().into_iter();
        Self {
            balanced: balanced.map(|s| ((s.key.clone(), s.endpoint), s)).collect(),
            source: Some(source),
            now: Instant::now(),
        }
    }

    /// Before any traffic: every endpoint at zero and healthy.
    pub fn idle() -> Self {
        Self {
            balanced: HashMap::new(),
            source: None,
            now: Instant::now(),
        }
    }

    /// `endpoint` as a member of `backend`'s cluster (its balance key).
    pub fn state(&self, backend: &Backend, endpoint: SocketAddr) -> EndpointState {
        let connections = self.source.map_or(0, |s| s.connections(endpoint));
        let Some(stats) = self.balanced.get(&(backend.key.clone(), endpoint)) else {
            return EndpointState {
                connections,
                ..EndpointState::default()
            };
        };
        EndpointState {
            active: stats.active,
            total: stats.total,
            connections,
            latency: stats.ewma,
            times_ejected: stats.times_ejected,
            ejected_for: stats
                .ejected_until
                .and_then(|until| until.checked_duration_since(self.now))
                .filter(|left| !left.is_zero()),
        }
    }
}

/// One endpoint of one cluster with its live state.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointRow {
    /// Istio's cluster name, `outbound|PORT|SUBSET|FQDN`.
    pub cluster: String,
    pub endpoint: SocketAddr,
    pub state: EndpointState,
}

/// Every endpoint of every cluster of `model`, in the config dump's order.
pub fn endpoint_rows(model: &Model, live: &Live) -> Vec<EndpointRow> {
    backends(model)
        .flat_map(|backend| {
            let cluster = backend.cluster_name();
            backend.endpoints.iter().map(move |&endpoint| EndpointRow {
                cluster: cluster.clone(),
                endpoint,
                state: live.state(backend, endpoint),
            })
        })
        .collect()
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    cluster: String,
    endpoint: String,
}

/// `strait_endpoint_*`, read from the live state at scrape time.
pub struct EndpointCollector {
    source: Arc<dyn EndpointSource>,
    model: watch::Receiver<Arc<Model>>,
}

impl EndpointCollector {
    pub fn new(source: Arc<dyn EndpointSource>, model: watch::Receiver<Arc<Model>>) -> Self {
        Self { source, model }
    }
}

impl std::fmt::Debug for EndpointCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EndpointCollector")
    }
}

type Gauge = fn(&EndpointState) -> i64;

const GAUGES: [(&str, &str, Gauge); 3] = [
    (
        "strait_endpoint_active_requests",
        "Requests in flight to the endpoint, per cluster",
        |s| i64::try_from(s.active).unwrap_or(i64::MAX),
    ),
    (
        "strait_endpoint_connections",
        "Pooled upstream connections open to the endpoint (shared by the clusters it is in)",
        |s| i64::try_from(s.connections).unwrap_or(i64::MAX),
    ),
    (
        "strait_endpoint_ejected",
        "1 while outlier detection has ejected the endpoint from the cluster, else 0",
        |s| i64::from(s.is_ejected()),
    ),
];

impl Collector for EndpointCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let model = self.model.borrow().clone();
        let rows: Vec<(EndpointLabels, EndpointState)> =
            endpoint_rows(&model, &Live::read(self.source.as_ref()))
                .into_iter()
                .map(|row| {
                    let labels = EndpointLabels {
                        cluster: row.cluster,
                        endpoint: row.endpoint.to_string(),
                    };
                    (labels, row.state)
                })
                .collect();
        for (name, help, value) in GAUGES {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (labels, state) in &rows {
                ConstGauge::new(value(state)).encode(family.encode_family(labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "strait_endpoint_requests",
            "Requests sent to the endpoint (each try), per cluster",
            None,
            MetricType::Counter,
        )?;
        for (labels, state) in &rows {
            ConstCounter::new(state.total).encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
