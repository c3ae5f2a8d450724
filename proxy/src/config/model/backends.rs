//! What route destinations resolve to: a Service port, whole or one DestinationRule subset of
//! it, with its endpoints and traffic policy (Envoy's cluster `outbound|PORT|SUBSET|HOST`).
//! Built once per model and shared by every route that goes there, so a request finds its
//! endpoints, policy and balancer key without building any of them.

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc};

use super::{only, Model, ServicePort};
use crate::{
    balance::BalanceKey,
    classify::Protocol,
    config::{
        hosts::{self, ServiceName},
        policy::TrafficPolicy,
        resources::{Destination, Labels},
        route::{Resolve, Target, Unresolved},
        rules::Merged,
    },
};

/// One set of endpoints to balance requests over, and how.
#[derive(Debug, PartialEq)]
pub struct Backend {
    pub service: ServiceName,
    /// `name.namespace.svc.cluster.local`.
    pub fqdn: String,
    pub port: u16,
    /// What the port speaks: which HTTP its endpoints get.
    pub protocol: Protocol,
    /// `None`: every endpoint of the port.
    pub subset: Option<String>,
    /// Balancing and load state across reloads: `(FQDN, port)`, or `("FQDN|SUBSET", port)`,
    /// so that each subset balances on its own as an Envoy cluster does.
    pub key: BalanceKey,
    /// Sorted. For a subset, those of the workloads that carry every label of the subset.
    pub endpoints: Vec<SocketAddr>,
    /// The DestinationRule's, for the port; for a subset, the subset's over it.
    pub traffic_policy: TrafficPolicy,
}

impl Backend {
    /// Istio's name for the Envoy cluster of a Service port or subset:
    /// `outbound|PORT|SUBSET|FQDN`.
    pub fn cluster_name(&self) -> String {
        hosts::cluster_name(&self.fqdn, self.port, self.subset.as_deref())
    }
}

/// An endpoint of a Service port, with the labels of the workload behind it.
pub(super) type Serving<'a> = (SocketAddr, &'a Labels);

/// A Service port's backends: the whole port, and each subset its DestinationRules define.
pub(super) struct PortBackends {
    pub whole: Arc<Backend>,
    pub subsets: BTreeMap<String, Arc<Backend>>,
}

impl PortBackends {
    pub fn new(
        service: &ServiceName,
        port: u16,
        protocol: Protocol,
        serving: &[Serving<'_>],
        rules: &Merged<'_>,
    ) -> Self {
        let fqdn = service.fqdn();
        let backend = |subset: Option<(&str, &Labels)>, policy| {
            let mut endpoints: Vec<SocketAddr> = serving
                .iter()
                .filter(|(_, labels)| subset.is_none_or(|(_, wanted)| carries(labels, wanted)))
                .map(|&(addr, _)| addr)
                .collect();
            endpoints.sort();
            let name = subset.map(|(name, _)| name.to_owned());
            let key = match &name {
                Some(name) => (format!("{fqdn}|{name}"), port),
                None => (fqdn.clone(), port),
            };
            Arc::new(Backend {
                service: service.clone(),
                fqdn: fqdn.clone(),
                port,
                protocol,
                subset: name,
                key,
                endpoints,
                traffic_policy: policy,
            })
        };
        let whole = backend(
            None,
            TrafficPolicy::resolve(rules.traffic_policy, None, port),
        );
        let subsets = rules
            .subsets
            .iter()
            .map(|subset| {
                let policy = TrafficPolicy::resolve(
                    rules.traffic_policy,
                    subset.traffic_policy.as_ref(),
                    port,
                );
                let built = backend(Some((&subset.name, &subset.labels)), policy);
                (subset.name.clone(), built)
            })
            .collect();
        Self { whole, subsets }
    }
}

/// Whether `labels` has every one of `wanted` (a subset with none selects every endpoint).
fn carries(labels: &Labels, wanted: &Labels) -> bool {
    wanted
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

impl Resolve for Model {
    fn resolve(&self, destination: &Destination, namespace: &str, request_port: u16) -> Target {
        match self.backend_for(destination, namespace, request_port) {
            Ok(backend) => Target::Backend(backend),
            Err(why) => Target::Unresolved(why),
        }
    }
}

impl Model {
    fn backend_for(
        &self,
        destination: &Destination,
        namespace: &str,
        request_port: u16,
    ) -> Result<Arc<Backend>, Unresolved> {
        let no_service = || Unresolved::NoService {
            host: destination.host.clone(),
        };
        let name = ServiceName::parse(&destination.host, namespace).ok_or_else(no_service)?;
        let service = self
            .service(&name.name, &name.namespace)
            .ok_or_else(no_service)?;
        // Istio counts every port of the Service here, UDP ones too.
        let number = destination
            .port
            .map(|selector| selector.number.get())
            .or_else(|| only(service.ports.iter()).map(|port| port.port))
            .unwrap_or(request_port);
        let port: &ServicePort = service
            .tcp_ports()
            .find(|port| port.port == number)
            .ok_or_else(|| Unresolved::NoPort {
                service: name.clone(),
                port: number,
            })?;
        let Some(subset) = &destination.subset else {
            return Ok(port.backend.clone());
        };
        port.subsets
            .get(subset)
            .cloned()
            .ok_or_else(|| Unresolved::NoSubset {
                service: name,
                subset: subset.clone(),
            })
    }
}
