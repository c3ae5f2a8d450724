//! Two documents for one resource, or two Services for one cluster IP: the API server would have
//! refused the second, so the first in load order stays and the later one is dropped.

use std::{collections::HashMap, net::IpAddr};

use super::first_seen;
use crate::config::{
    diagnostics::{Diagnostic, Finding, Source},
    kinds::Kind,
    resources::{Located, Object, Resource, Resources},
};

pub(super) fn remove(resources: &mut Resources) -> Vec<Diagnostic> {
    let mut names = HashMap::new();
    let mut cluster_ips = HashMap::new();
    let mut diagnostics = Vec::new();
    resources.retain(|item| {
        // The IP check only looks, so a dropped document claims nothing.
        match taken_cluster_ip(&cluster_ips, item).or_else(|| duplicate_name(&mut names, item)) {
            Some(finding) => {
                diagnostics.push(finding.place(&item.source, &item.subject()));
                false
            }
            None => {
                cluster_ips.extend(service_ips(item).into_iter().map(|ip| (ip, owner(item))));
                true
            }
        }
    });
    diagnostics
}

fn duplicate_name(
    names: &mut HashMap<(Kind, String, String), Source>,
    item: &Located<Resource>,
) -> Option<Finding> {
    let meta = item.resource.metadata();
    let key = (
        item.resource.kind(),
        meta.namespace.clone(),
        meta.name.clone(),
    );
    let first = first_seen(names, key, item.source.clone())?;
    Some(Finding::error(
        "metadata.name",
        format!("{} is already defined at {first}", owner(item)),
    ))
}

fn taken_cluster_ip(owners: &HashMap<IpAddr, String>, item: &Located<Resource>) -> Option<Finding> {
    let (ip, first) = service_ips(item)
        .into_iter()
        .find_map(|ip| Some((ip, owners.get(&ip)?)))?;
    Some(Finding::error(
        "spec.clusterIP",
        format!("{ip} is already the cluster IP of {first}"),
    ))
}

fn service_ips(item: &Located<Resource>) -> Vec<IpAddr> {
    match &item.resource {
        Resource::Service(service) => service.spec.cluster_ips(),
        _ => Vec::new(),
    }
}

/// `Kind namespace/name`, for messages.
fn owner(item: &Located<Resource>) -> String {
    let (kind, meta) = (item.resource.kind(), item.resource.metadata());
    if kind.is_namespaced() {
        format!("{kind} {}/{}", meta.namespace, meta.name)
    } else {
        format!("{kind} {}", meta.name)
    }
}
