//! Which VirtualServices bind each host, in each scope, first first in Istio's order
//! ([`Precedence`]). The model takes a Service's routes from here and validation names the
//! hosts bound twice, so both read the same order.
//!
//! Hosts are compared canonical ([`canonical_host`]): short names are in the VirtualService's
//! namespace. A Service takes the VirtualServices bound to its own name, else those of the most
//! specific wildcard covering it, as Istio does.

use std::{collections::BTreeMap, fmt};

use super::{
    hosts::{canonical_host, hosts_covering},
    precedence::Precedence,
    resources::{Located, Resources, VirtualService},
};

/// Where a VirtualService applies.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Scope {
    /// The reserved gateway name `mesh`, and the default: client-side routing, strait's
    /// outbound side.
    Mesh,
    /// A Gateway, as `namespace/name`.
    Gateway(String),
}

impl Scope {
    /// One entry of `spec.gateways`; a bare name is in `namespace`.
    pub fn parse(reference: &str, namespace: &str) -> Self {
        match reference {
            "mesh" => Self::Mesh,
            qualified if qualified.contains('/') => Self::Gateway(qualified.to_owned()),
            name => Self::Gateway(format!("{namespace}/{name}")),
        }
    }

    pub(crate) fn of(service: &VirtualService) -> Vec<Self> {
        let gateways = &service.spec.gateways;
        if gateways.is_empty() {
            return vec![Self::Mesh];
        }
        gateways
            .iter()
            .map(|gateway| Self::parse(gateway, &service.metadata.namespace))
            .collect()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mesh => f.write_str("the mesh"),
            Self::Gateway(name) => write!(f, "gateway {name}"),
        }
    }
}

/// One host bound in one scope by one VirtualService.
#[derive(Clone, Debug)]
pub(crate) struct Binding<'a> {
    pub virtual_service: Located<&'a VirtualService>,
    pub precedence: Precedence,
    /// Which of its `spec.hosts` (the first, if it lists the host twice).
    pub host_index: usize,
    /// Its place among the VirtualServices in load order.
    load_order: usize,
}

/// Every (scope, canonical host) with the VirtualServices that bind it, first first.
pub(crate) struct Bindings<'a> {
    by_scope_host: BTreeMap<(Scope, String), Vec<Binding<'a>>>,
}

impl<'a> Bindings<'a> {
    pub fn new(resources: &'a Resources) -> Self {
        let mut by_scope_host: BTreeMap<(Scope, String), Vec<Binding<'a>>> = BTreeMap::new();
        for (load_order, service) in resources.of::<VirtualService>().enumerate() {
            let meta = &service.resource.metadata;
            let precedence = Precedence::of(meta, load_order);
            for (host_index, host) in service.resource.spec.hosts.iter().enumerate() {
                for scope in Scope::of(service.resource) {
                    let binding = Binding {
                        virtual_service: service.clone(),
                        precedence: precedence.clone(),
                        host_index,
                        load_order,
                    };
                    let key = (scope, canonical_host(host, &meta.namespace));
                    by_scope_host.entry(key).or_default().push(binding);
                }
            }
        }
        for bindings in by_scope_host.values_mut() {
            bindings.sort_by(|a, b| {
                (&a.precedence, a.load_order, a.host_index).cmp(&(
                    &b.precedence,
                    b.load_order,
                    b.host_index,
                ))
            });
            // A VirtualService that lists a host twice binds it once.
            bindings.dedup_by_key(|binding| binding.load_order);
        }
        Self { by_scope_host }
    }

    /// Every (scope, host) with its bindings, first first.
    pub fn iter(&self) -> impl Iterator<Item = (&Scope, &str, &[Binding<'a>])> {
        self.by_scope_host
            .iter()
            .map(|((scope, host), bindings)| (scope, host.as_str(), bindings.as_slice()))
    }

    /// The mesh's VirtualServices for the Service `fqdn`, first first: those bound to its name,
    /// else to the most specific wildcard covering it; empty when none is.
    pub fn for_mesh_service(&self, fqdn: &str) -> &[Binding<'a>] {
        hosts_covering(fqdn)
            .find_map(|host| self.by_scope_host.get(&(Scope::Mesh, host)))
            .map_or(&[], Vec::as_slice)
    }
}
