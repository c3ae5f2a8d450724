//! Which workloads a Service selects and the port each serves a Service port on: the rules of
//! Kubernetes' endpoints controller, shared by the model and by validation.

use std::{collections::HashMap, fmt, net::IpAddr};

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

/// The workloads of a load that can take traffic (an IP, and for Pods Running and ready), by
/// namespace and label: a Service's selector is answered from the workloads that carry its
/// first label, not by a look at every workload of the cluster.
pub(crate) struct Workloads<'a> {
    by_label: HashMap<(&'a str, &'a str, &'a str), Vec<Workload<'a>>>,
}

impl<'a> Workloads<'a> {
    pub fn of(resources: &'a Resources) -> Self {
        let pods = resources
            .of::<resources::Pod>()
            .map(|pod| Workload::Pod(pod.resource));
        let entries = resources
            .of::<resources::WorkloadEntry>()
            .map(|entry| Workload::Entry(entry.resource));
        let mut by_label: HashMap<_, Vec<Workload<'a>>> = HashMap::new();
        // Load order within each label, pods first, as the first of two on one IP wins.
        for workload in pods.chain(entries).filter(|w| w.ip().is_some()) {
            for (key, value) in workload.labels() {
                let at = (workload.namespace(), key.as_str(), value.as_str());
                by_label.entry(at).or_default().push(workload);
            }
        }
        Self { by_label }
    }

    /// The workloads `service` selects: same namespace, every selector label matching. No
    /// selector selects nothing.
    pub fn selected(&self, service: &resources::Service) -> Vec<Workload<'a>> {
        let selector = &service.spec.selector;
        let Some((key, value)) = selector.iter().next() else {
            return Vec::new();
        };
        let at = (
            service.metadata.namespace.as_str(),
            key.as_str(),
            value.as_str(),
        );
        let Some(candidates) = self.by_label.get(&at) else {
            return Vec::new();
        };
        candidates
            .iter()
            .filter(|workload| {
                selector
                    .iter()
                    .all(|(key, value)| workload.labels().get(key) == Some(value))
            })
            .copied()
            .collect()
    }
}
