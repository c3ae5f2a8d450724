//! The resolved model the proxy serves: Services with their ports, each port classified and with
//! its endpoints, traffic policy, subsets ([`Backend`]s) and HTTP routes. Built once per
//! accepted load, never changed after (share it in an `Arc`).

mod backends;
mod endpoints;
mod enrollment;

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use self::backends::{PortBackends, Serving};
pub(crate) use self::endpoints::{Workload, Workloads};
pub use self::{backends::Backend, endpoints::EndpointSource, enrollment::EnrolledPod};
use super::{
    bindings::Bindings,
    gateway::Gateways,
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
    /// Every endpoint, under the DestinationRule's traffic policy for this port.
    pub backend: Arc<Backend>,
    /// Each subset the DestinationRules for the Service define, by name: its endpoints, under
    /// the host's policy under the subset's own.
    pub subsets: BTreeMap<String, Arc<Backend>>,
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

    /// The Service with its ports' routes left empty: they may name any Service, so the model
    /// resolves them once every Service is built.
    fn build(service: &resources::Service, workloads: &Workloads<'_>, rules: &Merged<'_>) -> Self {
        let workloads = workloads.selected(service);
        let name = ServiceName {
            name: service.metadata.name.clone(),
            namespace: service.metadata.namespace.clone(),
        };
        Self {
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
                .map(|port| build_port(&name, port, &workloads, rules))
                .collect(),
            name: name.name,
            namespace: name.namespace,
        }
    }
}

fn build_port(
    service: &ServiceName,
    port: &resources::ServicePort,
    workloads: &[Workload<'_>],
    rules: &Merged<'_>,
) -> ServicePort {
    let number = port.port.get();
    let serving: Vec<(Endpoint, Serving<'_>)> = workloads
        .iter()
        .filter_map(|workload| {
            let addr = SocketAddr::new(workload.ip()?, workload.target_port(port)?.get());
            let endpoint = Endpoint {
                addr,
                source: workload.source(),
            };
            Some((endpoint, (addr, workload.labels())))
        })
        .collect();
    let (mut endpoints, serving): (Vec<Endpoint>, Vec<Serving<'_>>) = serving.into_iter().unzip();
    endpoints.sort();
    let classification = classify(port.app_protocol.as_deref(), port.name.as_deref());
    let backends = PortBackends::new(service, number, classification.protocol, &serving, rules);
    ServicePort {
        port: number,
        name: port.name.clone(),
        protocol: port.protocol,
        target_port: port
            .target_port
            .clone()
            .unwrap_or(TargetPort::Number(port.port)),
        classification,
        endpoints,
        backend: backends.whole,
        subsets: backends.subsets,
        routes: Vec::new(),
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

    /// Every endpoint of the port with its traffic policy: where Istio's default route goes.
    pub fn backend(&self) -> &'a Arc<Backend> {
        &self.port.backend
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
    gateways: Gateways,
    /// Pods and WorkloadEntries by IP: where requests come from, for `sourceLabels` matches.
    sources: HashMap<IpAddr, route::Source>,
    /// The pods to capture, on every node.
    enrolled: Vec<EnrolledPod>,
}

impl Model {
    /// Resolves validated resources. Should two Services claim the same name or address anyway,
    /// the first in load order keeps it.
    pub fn from_resources(resources: &Resources) -> Self {
        let rules = DestinationRules::new(resources);
        let workloads = Workloads::of(resources);
        let mut services: Vec<Service> = resources
            .of::<resources::Service>()
            .map(|service| {
                let meta = &service.resource.metadata;
                let fqdn = hosts::fqdn(&meta.name, &meta.namespace);
                let rules = Merged::of(rules.for_service(&fqdn));
                Service::build(service.resource, &workloads, &rules)
            })
            .collect();
        // Stable: among duplicates the first in load order comes first, and dedup keeps it.
        services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        services.dedup_by(|later, first| {
            (&later.namespace, &later.name) == (&first.namespace, &first.name)
        });

        let mut model = Self {
            services,
            sources: sources(resources),
            enrolled: enrollment::enrolled(resources),
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
        let bindings = Bindings::new(resources);
        model.add_routes(&bindings);
        model.gateways = Gateways::build(resources, &bindings, &model);
        model
    }

    /// Every Gateway, its servers and routes; which are served is `--gateway-labels`' choice.
    pub fn gateways(&self) -> &Gateways {
        &self.gateways
    }

    /// Each port's routes, from the VirtualServices bound to its Service in the mesh.
    fn add_routes(&mut self, bindings: &Bindings<'_>) {
        let routes: Vec<Vec<Vec<HttpRoute>>> = self
            .services
            .iter()
            .map(|service| {
                let virtual_services = bindings.for_mesh_service(&service.fqdn());
                service
                    .ports
                    .iter()
                    .map(|port| {
                        let bound = virtual_services
                            .iter()
                            .map(|binding| binding.virtual_service.resource);
                        route::routes_for_port(bound, port.port, &port.backend, self)
                    })
                    .collect()
            })
            .collect();
        let ports = self
            .services
            .iter_mut()
            .flat_map(|service| &mut service.ports);
        for (port, routes) in ports.zip(routes.into_iter().flatten()) {
            port.routes = routes;
        }
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
        &service.port.backend.traffic_policy
    }

    /// The policy for a subset of a Service port; `None` when no DestinationRule defines it.
    pub fn subset_traffic_policy<'a>(
        &self,
        service: &ServicePortRef<'a>,
        subset: &str,
    ) -> Option<&'a TrafficPolicy> {
        let backend = service.port.subsets.get(subset)?;
        Some(&backend.traffic_policy)
    }

    /// The route a request for a Service port takes: the first of the port's routes it
    /// matches. `None`: the port's VirtualService routes none of it, and the request has no
    /// route (Envoy's NR).
    pub fn http_route<'a, 'r>(
        &self,
        port: &ServicePortRef<'a>,
        request: impl Into<route::RequestHead<'r>>,
    ) -> Option<&'a HttpRoute> {
        let (number, request) = (port.port(), request.into());
        port.routes()
            .iter()
            .find(|route| route.matches(request, number))
    }

    /// The workload (Pod or WorkloadEntry) at `ip`, for routes matching on the client.
    pub fn source(&self, ip: IpAddr) -> Option<&route::Source> {
        self.sources.get(&ip.to_canonical())
    }

    /// The pods enrolled on `node` (ambient mode's labels), whose connections are captured.
    pub fn enrolled_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a EnrolledPod> {
        self.enrolled.iter().filter(move |pod| pod.node == node)
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

/// Every workload with an IP, whether it serves or not (a client need not be ready); when two
/// claim one IP, the first in load order.
fn sources(resources: &Resources) -> HashMap<IpAddr, route::Source> {
    let pods = resources
        .of::<resources::Pod>()
        .map(|pod| (Workload::Pod(pod.resource), pod.resource.ip()));
    let entries = resources
        .of::<resources::WorkloadEntry>()
        .map(|entry| (Workload::Entry(entry.resource), entry.resource.ip()));
    let mut sources = HashMap::new();
    for (workload, ip) in pods.chain(entries) {
        let Some(ip) = ip else { continue };
        sources.entry(ip).or_insert_with(|| {
            route::Source::new(
                workload.source().name().to_owned(),
                workload.namespace().to_owned(),
                workload.labels().clone(),
            )
        });
    }
    sources
}

/// The single item, if there is exactly one.
fn only<T>(mut items: impl Iterator<Item = T>) -> Option<T> {
    let first = items.next()?;
    items.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests;
