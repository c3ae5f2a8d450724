//! The resolved model the proxy serves: Services with their ports, each port classified and with
//! its endpoints, traffic policy and HTTP routes. Built once per accepted load, never changed
//! after (share it in an `Arc`).

mod endpoints;

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, SocketAddr},
};

pub use self::endpoints::EndpointSource;
pub(crate) use self::endpoints::{selected, Workload};
use super::{
    bindings::{Binding, Bindings},
    hosts::{self, split_authority, Host, ServiceName},
    policy::TrafficPolicy,
    resources::{self, PortProtocol, Resources, TargetPort},
    route::{self, HttpRoute},
    rules::{DestinationRules, Merged},
};
use crate::classify::{classify, Classification};

/// One address traffic for a Service port can go to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub source: EndpointSource,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServicePort {
    pub port: u16,
    pub name: Option<String>,
    pub protocol: PortProtocol,
    /// As written, or the port's own number when absent.
    pub target_port: TargetPort,
    pub classification: Classification,
    /// Sorted, so two loads of the same files give the same order.
    pub endpoints: Vec<Endpoint>,
    /// From the DestinationRule for the Service, for this port.
    pub traffic_policy: TrafficPolicy,
    /// For each subset the DestinationRule defines: the host's policy under the subset's own.
    pub subset_policies: BTreeMap<String, TrafficPolicy>,
    /// In order, never empty: the first a request matches is its route (see
    /// [`route`](super::route)).
    pub routes: Vec<HttpRoute>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    pub name: String,
    pub namespace: String,
    /// Primary first; IPv4-mapped IPv6 written as IPv4. Empty: headless, unassigned or
    /// ExternalName, reachable by name only and never captured.
    pub cluster_ips: Vec<IpAddr>,
    pub ports: Vec<ServicePort>,
}

impl Service {
    pub fn fqdn(&self) -> String {
        hosts::fqdn(&self.name, &self.namespace)
    }

    fn tcp_ports(&self) -> impl Iterator<Item = &ServicePort> {
        self.ports
            .iter()
            .filter(|port| port.protocol == PortProtocol::Tcp)
    }

    fn build(service: &resources::Service, resources: &Resources, config: &PortConfig<'_>) -> Self {
        let workloads = selected(service, resources);
        Self {
            name: service.metadata.name.clone(),
            namespace: service.metadata.namespace.clone(),
            cluster_ips: service
                .spec
                .cluster_ips()
                .into_iter()
                .map(|ip| ip.to_canonical())
                .collect(),
            ports: service
                .spec
                .ports
                .iter()
                .map(|port| build_port(port, &workloads, config))
                .collect(),
        }
    }
}

/// What configures a Service's ports besides the Service itself.
struct PortConfig<'a> {
    rules: Merged<'a>,
    /// The VirtualServices bound to the Service in the mesh, first first.
    virtual_services: &'a [Binding<'a>],
}

fn build_port(
    port: &resources::ServicePort,
    workloads: &[Workload<'_>],
    config: &PortConfig<'_>,
) -> ServicePort {
    let rules = &config.rules;
    let mut endpoints: Vec<Endpoint> = workloads
        .iter()
        .filter_map(|workload| {
            let addr = SocketAddr::new(workload.ip()?, workload.target_port(port)?.get());
            Some(Endpoint {
                addr,
                source: workload.source(),
            })
        })
        .collect();
    endpoints.sort();
    let number = port.port.get();
    let subset_policies = rules
        .subsets
        .iter()
        .map(|subset| {
            let policy = TrafficPolicy::resolve(
                rules.traffic_policy,
                subset.traffic_policy.as_ref(),
                number,
            );
            (subset.name.clone(), policy)
        })
        .collect();
    ServicePort {
        port: number,
        name: port.name.clone(),
        protocol: port.protocol,
        target_port: port
            .target_port
            .clone()
            .unwrap_or(TargetPort::Number(port.port)),
        classification: classify(port.app_protocol.as_deref(), port.name.as_deref()),
        endpoints,
        traffic_policy: TrafficPolicy::resolve(rules.traffic_policy, None, number),
        subset_policies,
        routes: route::routes_for_port(
            config
                .virtual_services
                .iter()
                .map(|binding| binding.virtual_service.resource),
            number,
        ),
    }
}

/// A Service port found by a lookup.
#[derive(Clone, Copy, Debug)]
pub struct ServicePortRef<'a> {
    service: &'a Service,
    port: &'a ServicePort,
}

impl<'a> ServicePortRef<'a> {
    pub fn service(&self) -> &'a Service {
        self.service
    }

    pub fn service_port(&self) -> &'a ServicePort {
        self.port
    }

    /// The Service port number.
    pub fn port(&self) -> u16 {
        self.port.port
    }

    pub fn name(&self) -> Option<&'a str> {
        self.port.name.as_deref()
    }

    pub fn classification(&self) -> &'a Classification {
        &self.port.classification
    }

    pub fn endpoints(&self) -> &'a [Endpoint] {
        &self.port.endpoints
    }

    /// The port's HTTP routes, in order (see [`Model::http_route`]).
    pub fn routes(&self) -> &'a [HttpRoute] {
        &self.port.routes
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PortIndex {
    service: usize,
    port: usize,
}

/// Only TCP Service ports are indexed by address or authority: strait proxies TCP, and a UDP
/// port may share a number with a TCP one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    /// Sorted by namespace, then name.
    services: Vec<Service>,
    by_name: HashMap<ServiceName, usize>,
    by_ip: HashMap<IpAddr, usize>,
    by_addr: HashMap<SocketAddr, PortIndex>,
}

impl Model {
    /// Resolves validated resources. Should two Services claim the same name or address anyway,
    /// the first in load order keeps it.
    pub fn from_resources(resources: &Resources) -> Self {
        let rules = DestinationRules::new(resources);
        let bindings = Bindings::new(resources);
        let mut services: Vec<Service> = resources
            .of::<resources::Service>()
            .map(|service| {
                let meta = &service.resource.metadata;
                let fqdn = hosts::fqdn(&meta.name, &meta.namespace);
                let config = PortConfig {
                    rules: Merged::of(rules.for_service(&fqdn)),
                    virtual_services: bindings.for_mesh_service(&fqdn),
                };
                Service::build(service.resource, resources, &config)
            })
            .collect();
        // Stable: among duplicates the first in load order comes first, and dedup keeps it.
        services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        services.dedup_by(|later, first| {
            (&later.namespace, &later.name) == (&first.namespace, &first.name)
        });

        let mut model = Self {
            services,
            ..Self::default()
        };
        for (index, service) in model.services.iter().enumerate() {
            let key = ServiceName {
                name: service.name.clone(),
                namespace: service.namespace.clone(),
            };
            model.by_name.insert(key, index);
            for &ip in &service.cluster_ips {
                model.by_ip.entry(ip).or_insert(index);
                for (port_index, port) in service.ports.iter().enumerate() {
                    if port.protocol == PortProtocol::Tcp {
                        let addr = SocketAddr::new(ip, port.port);
                        model.by_addr.entry(addr).or_insert(PortIndex {
                            service: index,
                            port: port_index,
                        });
                    }
                }
            }
        }
        model
    }

    /// Services by namespace, then name.
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.iter()
    }

    pub fn service(&self, name: &str, namespace: &str) -> Option<&Service> {
        let key = ServiceName {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
        };
        self.by_name.get(&key).map(|&index| &self.services[index])
    }

    /// The TCP Service port at a cluster IP and port (an original destination).
    pub fn service_port_by_addr(&self, addr: SocketAddr) -> Option<ServicePortRef<'_>> {
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        self.by_addr.get(&addr).map(|index| self.port_ref(*index))
    }

    /// The TCP Service port an HTTP authority names: `name.ns.svc.cluster.local[:port]`,
    /// `name.ns.svc[:port]`, `name.ns[:port]`, `name[:port]` (namespace `default`) or
    /// `VIP[:port]`. Without a port in the authority: `default_port` (the scheme's) when the
    /// Service has it, else the Service's only TCP port.
    pub fn service_port_by_authority(
        &self,
        authority: &str,
        default_port: Option<u16>,
    ) -> Option<ServicePortRef<'_>> {
        let (host, port) = split_authority(authority)?;
        let index = match host {
            Host::Ip(ip) => *self.by_ip.get(&ip.to_canonical())?,
            Host::Name(name) => *self
                .by_name
                .get(&ServiceName::parse(name, resources::DEFAULT_NAMESPACE)?)?,
        };
        let service = &self.services[index];
        let port = match port {
            Some(number) => service.tcp_ports().find(|p| p.port == number)?,
            None => default_port
                .and_then(|number| service.tcp_ports().find(|p| p.port == number))
                .or_else(|| only(service.tcp_ports()))?,
        };
        Some(ServicePortRef { service, port })
    }

    /// The traffic policy in effect for a Service port: its DestinationRule's, with Istio's
    /// defaults for what it does not set.
    pub fn traffic_policy<'a>(&self, service: &ServicePortRef<'a>) -> &'a TrafficPolicy {
        &service.port.traffic_policy
    }

    /// The policy for a subset of a Service port; `None` when no DestinationRule defines it.
    pub fn subset_traffic_policy<'a>(
        &self,
        service: &ServicePortRef<'a>,
        subset: &str,
    ) -> Option<&'a TrafficPolicy> {
        service.port.subset_policies.get(subset)
    }

    /// The route a request for a Service port takes: the first of the port's routes it
    /// matches. `None`: the port's VirtualService routes none of it, and the request has no
    /// route (Envoy's NR).
    pub fn http_route<'a, B>(
        &self,
        port: &ServicePortRef<'a>,
        request: &http::Request<B>,
    ) -> Option<&'a HttpRoute> {
        let number = port.port();
        port.routes()
            .iter()
            .find(|route| route.matches(request, number))
    }

    /// Every (cluster IP, TCP port): what the kernel must capture. Sorted.
    pub fn captured_addrs(&self) -> Vec<SocketAddr> {
        let mut addrs: Vec<SocketAddr> = self.by_addr.keys().copied().collect();
        addrs.sort();
        addrs
    }

    fn port_ref(&self, index: PortIndex) -> ServicePortRef<'_> {
        let service = &self.services[index.service];
        ServicePortRef {
            service,
            port: &service.ports[index.port],
        }
    }
}

/// The single item, if there is exactly one.
fn only<T>(mut items: impl Iterator<Item = T>) -> Option<T> {
    let first = items.next()?;
    items.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests;
