//! Semantic checks, beyond what decoding catches. Errors drop their document (Kubernetes or
//! Istio would reject it); warnings name what will not work as written but load anyway.
//!
//! - Per document: Service ports and cluster IPs; WorkloadEntry addresses; DestinationRule
//!   traffic policies; VirtualService HTTP routes (header names, timeouts, retries, weights,
//!   faults, header changes, rewrites, mirror percentages).
//! - Across documents: duplicates (the first in load order stays), named `targetPort`s no
//!   selected endpoint defines, VirtualService destinations and mirrors (hosts, ports,
//!   subsets), gateways and hosts bound
//!   twice, Gateway servers that cannot be served (mode, protocol, credential Secret), and
//!   DestinationRule policies and subsets another rule for the host overrides.

mod duplicates;
mod gateways;
mod http_routes;
mod policy;
mod routing;
mod services;

use std::{
    collections::{hash_map::Entry, HashMap},
    hash::Hash,
};

use super::{
    diagnostics::{Diagnostic, Finding},
    resources::{Resource, Resources},
};

/// Checks one decoded document on its own.
pub(crate) fn document(resource: &Resource) -> Vec<Finding> {
    match resource {
        Resource::Service(service) => services::check(service),
        Resource::WorkloadEntry(entry) => services::check_workload_entry(entry),
        Resource::DestinationRule(rule) => policy::check(rule),
        Resource::VirtualService(service) => http_routes::check(service),
        _ => Vec::new(),
    }
}

/// Checks the documents against each other, dropping the duplicates.
pub(crate) fn across(resources: &mut Resources) -> Vec<Diagnostic> {
    let mut diagnostics = duplicates::remove(resources);
    diagnostics.extend(services::check_named_target_ports(resources));
    diagnostics.extend(routing::check(resources));
    diagnostics.extend(policy::check_merged(resources));
    diagnostics.extend(gateways::check(resources));
    diagnostics
}

/// Records `key` as seen `at`; if it was seen before, returns where instead.
fn first_seen<K: Hash + Eq, V: Clone>(seen: &mut HashMap<K, V>, key: K, at: V) -> Option<V> {
    match seen.entry(key) {
        Entry::Occupied(first) => Some(first.get().clone()),
        Entry::Vacant(slot) => {
            slot.insert(at);
            None
        }
    }
}

#[cfg(test)]
mod tests;
