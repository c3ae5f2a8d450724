//! `/config_dump`: the model strait serves, as JSON, in the four views `istioctl proxy-config`
//! shows of an Envoy: listeners (what is captured, and how each Service port is served), routes
//! (each port's HTTP routes in order), clusters (each Service port and subset with its policy)
//! and endpoints (each cluster's addresses, with their outlier state from the balancers).
//! Clusters are named as Istio names Envoy's: `outbound|PORT|SUBSET|FQDN`.
//!
//! These are views for people and `strait proxy-config`, built from the model on each request;
//! the field names are stable, the set may grow.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::{
    config::{Backend, HttpRoute, Model, RetryPolicy, Target},
    telemetry::endpoints::Live,
};

#[derive(Debug, Serialize, Deserialize)]
pub struct ConfigDump {
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteTable>,
    pub clusters: Vec<Cluster>,
    pub endpoints: Vec<ClusterEndpoint>,
}

/// A captured Service address and how its connections are served.
#[derive(Debug, Serialize, Deserialize)]
pub struct Listener {
    /// The Service address the kernel captures (cluster IP and port).
    pub address: SocketAddr,
    pub service: String,
    pub port: u16,
    /// `grpc`, `http2`, `http`, `tcp`...
    pub protocol: String,
    /// Which field decided the protocol.
    pub classified_by: String,
}

/// One Service port's HTTP routes, in the order requests are matched.
#[derive(Debug, Serialize, Deserialize)]
pub struct RouteTable {
    /// `FQDN:PORT`.
    pub name: String,
    pub routes: Vec<Route>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Route {
    pub name: String,
    /// Any one selects the route; empty: every request.
    pub matches: Vec<String>,
    pub destinations: Vec<WeightedCluster>,
    pub timeout_ms: Option<u128>,
    pub retries: Retries,
    pub fault: Option<String>,
    pub mirrors: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WeightedCluster {
    /// The cluster, when the destination names one.
    pub cluster: Option<String>,
    /// Why it names none: requests sent there get NR.
    pub unresolved: Option<String>,
    /// Share of the route's requests, in percent.
    pub percent: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Retries {
    pub attempts: u32,
    pub per_try_timeout_ms: Option<u128>,
    pub retry_on: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Cluster {
    pub name: String,
    pub service: String,
    pub port: u16,
    pub subset: Option<String>,
    pub protocol: String,
    pub load_balancer: String,
    pub max_connections: u32,
    pub http2_max_requests: u32,
    pub max_retries: u32,
    pub outlier_detection: bool,
    pub endpoints: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ClusterEndpoint {
    pub address: SocketAddr,
    pub cluster: String,
    /// istioctl's `STATUS`: `HEALTHY`, or `UNHEALTHY` while outlier detection has it ejected
    /// (strait runs no active health checks).
    pub health: String,
    /// istioctl's `OUTLIER CHECK`: `OK`, or `FAILED` while ejected.
    pub outlier: String,
}

impl ConfigDump {
    /// `live`: the balancers' state, for each endpoint's health.
    pub fn of(model: &Model, live: &Live) -> Self {
        let mut dump = Self {
            listeners: Vec::new(),
            routes: Vec::new(),
            clusters: Vec::new(),
            endpoints: Vec::new(),
        };
        for service in model.services() {
            let fqdn = service.fqdn();
            for port in &service.ports {
                dump.listeners
                    .extend(service.cluster_ips.iter().map(|&ip| Listener {
                        address: SocketAddr::new(ip, port.port),
                        service: fqdn.clone(),
                        port: port.port,
                        protocol: port.classification.protocol.to_string(),
                        classified_by: port.classification.reason.to_string(),
                    }));
                if port.classification.protocol.is_l7() {
                    dump.routes.push(RouteTable {
                        name: format!("{fqdn}:{}", port.port),
                        routes: port.routes.iter().map(Route::of).collect(),
                    });
                }
            }
        }
        for backend in backends(model) {
            dump.add_cluster(backend, live);
        }
        dump
    }

    fn add_cluster(&mut self, backend: &Backend, live: &Live) {
        let name = backend.cluster_name();
        let policy = &backend.traffic_policy;
        let pool = &policy.connection_pool;
        self.endpoints
            .extend(backend.endpoints.iter().map(|&address| {
                let ejected = live.state(backend, address).is_ejected();
                ClusterEndpoint {
                    address,
                    cluster: name.clone(),
                    health: if ejected { "UNHEALTHY" } else { "HEALTHY" }.to_owned(),
                    outlier: if ejected { "FAILED" } else { "OK" }.to_owned(),
                }
            }));
        self.clusters.push(Cluster {
            name,
            service: backend.fqdn.clone(),
            port: backend.port,
            subset: backend.subset.clone(),
            protocol: backend.protocol.to_string(),
            load_balancer: policy.load_balancer.to_string(),
            max_connections: pool.max_connections,
            http2_max_requests: pool.http2_max_requests,
            max_retries: pool.max_retries,
            outlier_detection: policy.outlier_detection.is_some(),
            endpoints: backend.endpoints.len(),
        });
    }
}

impl Route {
    fn of(route: &HttpRoute) -> Self {
        Self {
            name: route.route_name.clone(),
            matches: route.matches.iter().map(ToString::to_string).collect(),
            destinations: route
                .destinations
                .iter()
                .map(|(destination, share)| {
                    let cluster = target_cluster(&destination.target);
                    WeightedCluster {
                        unresolved: cluster.as_ref().err().cloned(),
                        cluster: cluster.ok(),
                        percent: share * 100.0,
                    }
                })
                .collect(),
            timeout_ms: route.timeout.map(|t| t.as_millis()),
            retries: Retries::of(&route.retries),
            fault: (!route.fault.is_none()).then(|| route.fault.to_string()),
            mirrors: route
                .mirrors
                .iter()
                .map(|m| match target_cluster(&m.target) {
                    Ok(cluster) | Err(cluster) => format!("{} {cluster}", m.percentage),
                })
                .collect(),
        }
    }
}

impl Retries {
    fn of(policy: &RetryPolicy) -> Self {
        Self {
            attempts: policy.attempts,
            per_try_timeout_ms: policy.per_try_timeout.map(|t| t.as_millis()),
            retry_on: policy.retry_on.to_string(),
        }
    }
}

/// Every cluster of `model`: per Service, per port, the whole port then each subset.
pub fn backends(model: &Model) -> impl Iterator<Item = &Backend> {
    model.services().flat_map(|service| {
        service.ports.iter().flat_map(|port| {
            std::iter::once(port.backend.as_ref()).chain(port.subsets.values().map(AsRef::as_ref))
        })
    })
}

fn target_cluster(target: &Target) -> Result<String, String> {
    target
        .backend()
        .map(|backend| backend.cluster_name())
        .map_err(ToString::to_string)
}

#[cfg(test)]
mod tests;
