//! Service and endpoint checks.

use std::collections::HashMap;

use super::first_seen;
use crate::config::{
    diagnostics::{Diagnostic, Finding},
    model::Workloads,
    resources::{
        ClusterIp, InternalTrafficPolicy, Resources, Service, ServiceSpec, SessionAffinity,
        TargetPort, WorkloadEntry,
    },
};

pub(super) fn check(service: &Service) -> Vec<Finding> {
    let spec = &service.spec;
    let mut findings = ports(spec);
    findings.extend(cluster_ips(spec));
    findings.extend(unsupported_settings(spec));
    findings
}

/// What the API server would refuse: a port number (per protocol) or name used twice, or an
/// unnamed port among several.
fn ports(spec: &ServiceSpec) -> Vec<Finding> {
    let mut findings = Vec::new();
    let (mut numbers, mut names) = (HashMap::new(), HashMap::new());
    for (index, port) in spec.ports.iter().enumerate() {
        let field = |name: &str| format!("spec.ports[{index}].{name}");
        if let Some(first) = first_seen(&mut numbers, (port.port, port.protocol), index) {
            let message = format!(
                "port {}/{} is already spec.ports[{first}]",
                port.port,
                port.protocol.as_str()
            );
            findings.push(Finding::error(field("port"), message));
        }
        match &port.name {
            Some(name) => {
                if let Some(first) = first_seen(&mut names, name.as_str(), index) {
                    findings.push(Finding::error(
                        field("name"),
                        format!("{name} is already spec.ports[{first}]'s name"),
                    ));
                }
            }
            None if spec.ports.len() > 1 => {
                findings.push(Finding::error(
                    field("name"),
                    "required when a Service has more than one port",
                ));
            }
            None => {}
        }
    }
    findings
}

/// `clusterIPs[0]` is `clusterIP` when both are written.
fn cluster_ips(spec: &ServiceSpec) -> Option<Finding> {
    let primary = *spec.cluster_ips.first()?;
    (spec.cluster_ip != ClusterIp::Unassigned && spec.cluster_ip != primary)
        .then(|| Finding::error("spec.clusterIPs[0]", "must equal spec.clusterIP"))
}

/// Settings that change which endpoint gets traffic, which strait does not honour yet.
fn unsupported_settings(spec: &ServiceSpec) -> Vec<Finding> {
    let mut findings = Vec::new();
    if spec.session_affinity == SessionAffinity::ClientIp {
        let message =
            "ClientIP is not supported by strait, which balances each connection; ignored";
        findings.push(Finding::warning("spec.sessionAffinity", message));
    }
    if spec.internal_traffic_policy == InternalTrafficPolicy::Local {
        let message =
            "Local is not supported by strait, which uses the endpoints on every node; ignored";
        findings.push(Finding::warning("spec.internalTrafficPolicy", message));
    }
    findings
}

pub(super) fn check_workload_entry(entry: &WorkloadEntry) -> Vec<Finding> {
    match (&entry.spec.address, entry.ip()) {
        (_, Some(_)) => Vec::new(),
        (None, None) => vec![Finding::warning(
            "spec.address",
            "missing: this WorkloadEntry is no endpoint",
        )],
        (Some(address), None) => {
            let message =
                format!("{address} is not an IP address, which strait needs: no endpoint");
            vec![Finding::warning("spec.address", message)]
        }
    }
}

/// A named `targetPort` that none of the selected endpoints defines leaves the port without
/// endpoints. A Service that selects nothing (yet) is not reported: Pods come and go.
pub(super) fn check_named_target_ports(resources: &Resources) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    let selectable = Workloads::of(resources);
    for service in resources.of::<Service>() {
        let workloads = selectable.selected(service.resource);
        if workloads.is_empty() {
            continue;
        }
        for (index, port) in service.resource.spec.ports.iter().enumerate() {
            let Some(TargetPort::Name(name)) = &port.target_port else {
                continue;
            };
            if workloads
                .iter()
                .all(|workload| workload.target_port(port).is_none())
            {
                let message = format!(
                    "none of the {} selected endpoints has a {} port named {name}: no endpoints",
                    workloads.len(),
                    port.protocol.as_str()
                );
                let finding = Finding::warning(format!("spec.ports[{index}].targetPort"), message);
                diagnostics.push(finding.place(&service.source, &service.subject()));
            }
        }
    }
    diagnostics
}
