//! Which workloads a Service selects and the port each serves a Service port on: the rules of
//! Kubernetes' endpoints controller, shared by the model and by validation.

use std::{fmt, net::IpAddr};

use crate::config::resources::{self, Labels, PortNumber, Resources, TargetPort};

/// What a Service can select: Pods by `metadata.labels`, WorkloadEntries by `spec.labels`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Workload<'a> {
    Pod(&'a resources::Pod),
    Entry(&'a resources::WorkloadEntry),
}

impl<'a> Workload<'a> {
    pub fn labels(self) -> &'a Labels {
        match self {
            Self::Pod(pod) => &pod.metadata.labels,
            Self::Entry(entry) => &entry.spec.labels,
        }
    }

    pub fn namespace(self) -> &'a str {
        match self {
            Self::Pod(pod) => &pod.metadata.namespace,
            Self::Entry(entry) => &entry.metadata.namespace,
        }
    }

    /// The address traffic goes to, when the workload can take traffic at all.
    pub fn ip(self) -> Option<IpAddr> {
        match self {
            Self::Pod(pod) => pod.is_serving().then(|| pod.ip()).flatten(),
            Self::Entry(entry) => entry.ip(),
        }
    }

    /// The port this workload serves `port` on: `targetPort` as a number, or the workload's port
    /// of that name (a container port for the same protocol; a WorkloadEntry `spec.ports` key);
    /// no `targetPort` means the Service port's own number.
    pub fn target_port(self, port: &resources::ServicePort) -> Option<PortNumber> {
        match (&port.target_port, self) {
            (None, _) => Some(port.port),
            (Some(TargetPort::Number(number)), _) => Some(*number),
            (Some(TargetPort::Name(name)), Self::Pod(pod)) => pod.named_port(name, port.protocol),
            (Some(TargetPort::Name(name)), Self::Entry(entry)) => {
                entry.spec.ports.get(name).copied()
            }
        }
    }

    pub fn source(self) -> EndpointSource {
        match self {
            Self::Pod(pod) => EndpointSource::Pod(pod.metadata.name.clone()),
            Self::Entry(entry) => EndpointSource::WorkloadEntry(entry.metadata.name.clone()),
        }
    }
}

/// Where an endpoint came from, for logs, metrics and `strait describe`. The namespace is the
/// Service's.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndpointSource {
    Pod(String),
    WorkloadEntry(String),
}

impl EndpointSource {
    /// The Pod's or WorkloadEntry's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Pod(name) | Self::WorkloadEntry(name) => name,
        }
    }
}

impl fmt::Display for EndpointSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pod(name) => write!(f, "pod/{name}"),
            Self::WorkloadEntry(name) => write!(f, "workloadentry/{name}"),
        }
    }
}

/// The workloads `service` selects that can take traffic: same namespace, every selector label
/// matching, an IP, and for Pods Running and ready. No selector selects nothing.
pub(crate) fn selected<'a>(
    service: &resources::Service,
    resources: &'a Resources,
) -> Vec<Workload<'a>> {
    let selector = &service.spec.selector;
    if selector.is_empty() {
        return Vec::new();
    }
    let pods = resources
        .of::<resources::Pod>()
        .map(|pod| Workload::Pod(pod.resource));
    let entries = resources
        .of::<resources::WorkloadEntry>()
        .map(|entry| Workload::Entry(entry.resource));
    pods.chain(entries)
        .filter(|workload| workload.namespace() == service.metadata.namespace)
        .filter(|workload| {
            selector
                .iter()
                .all(|(key, value)| workload.labels().get(key) == Some(value))
        })
        .filter(|workload| workload.ip().is_some())
        .collect()
}
