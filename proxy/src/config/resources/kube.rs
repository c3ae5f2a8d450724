//! Kubernetes core `v1` kinds, as far as strait reads them. Standard fields strait has no use for
//! are left out and pass silently (see [`crate::config::fields`]).

use std::{collections::BTreeMap, net::IpAddr};

use serde::Deserialize;

use super::{ClusterIp, Labels, ObjectMeta, PortNumber, TargetPort};

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Service {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ServiceSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Empty: no selector, so no endpoints (as in Kubernetes).
    #[serde(default)]
    pub selector: Labels,
    #[serde(default, rename = "clusterIP")]
    pub cluster_ip: ClusterIp,
    #[serde(default, rename = "clusterIPs")]
    pub cluster_ips: Vec<ClusterIp>,
    #[serde(default, rename = "type")]
    pub service_type: ServiceType,
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    #[serde(default)]
    pub session_affinity: SessionAffinity,
    #[serde(default)]
    pub internal_traffic_policy: InternalTrafficPolicy,
}

impl ServiceSpec {
    /// The cluster IPs, primary first: `clusterIPs` when set, else `clusterIP`. Empty for headless,
    /// unassigned and ExternalName Services, which are reached by name only.
    pub fn cluster_ips(&self) -> Vec<IpAddr> {
        if self.service_type == ServiceType::ExternalName {
            return Vec::new();
        }
        let all = if self.cluster_ips.is_empty() {
            std::slice::from_ref(&self.cluster_ip)
        } else {
            &self.cluster_ips
        };
        all.iter().filter_map(|ip| ip.ip()).collect()
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum ServiceType {
    #[default]
    #[serde(rename = "ClusterIP")]
    ClusterIp,
    NodePort,
    LoadBalancer,
    ExternalName,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum SessionAffinity {
    #[default]
    #[serde(rename = "None")]
    NoAffinity,
    #[serde(rename = "ClientIP")]
    ClientIp,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum InternalTrafficPolicy {
    #[default]
    Cluster,
    Local,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: PortNumber,
    /// Absent: the same as `port`.
    pub target_port: Option<TargetPort>,
    #[serde(default)]
    pub protocol: PortProtocol,
    pub app_protocol: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PortProtocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

impl PortProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Pod {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PodSpec,
    #[serde(default)]
    pub status: PodStatus,
}

impl Pod {
    /// The Pod's primary IP.
    pub fn ip(&self) -> Option<IpAddr> {
        self.status
            .pod_ip
            .or_else(|| self.status.pod_ips.first().map(|pod_ip| pod_ip.ip))
    }

    /// Running and not reported unready: what Kubernetes would publish as a ready endpoint.
    /// A Pod written by hand has no conditions and counts as ready.
    pub fn is_serving(&self) -> bool {
        let unready = self
            .status
            .conditions
            .iter()
            .any(|c| c.condition_type == "Ready" && c.status != "True");
        self.status.phase == Some(PodPhase::Running) && !unready
    }

    /// The number of the container port called `name` for `protocol`.
    pub fn named_port(&self, name: &str, protocol: PortProtocol) -> Option<PortNumber> {
        self.spec
            .containers
            .iter()
            .flat_map(|container| &container.ports)
            .find(|port| port.name.as_deref() == Some(name) && port.protocol == protocol)
            .map(|port| port.container_port)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default)]
    pub containers: Vec<Container>,
    /// The node it was scheduled to.
    pub node_name: Option<String>,
    /// In the node's network namespace: never captured.
    #[serde(default)]
    pub host_network: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Container {
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    pub name: Option<String>,
    pub container_port: PortNumber,
    #[serde(default)]
    pub protocol: PortProtocol,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct PodStatus {
    pub phase: Option<PodPhase>,
    #[serde(rename = "podIP")]
    pub pod_ip: Option<IpAddr>,
    #[serde(default, rename = "podIPs")]
    pub pod_ips: Vec<PodIp>,
    #[serde(default)]
    pub conditions: Vec<PodCondition>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PodIp {
    pub ip: IpAddr,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PodCondition {
    #[serde(rename = "type")]
    pub condition_type: String,
    pub status: String,
}

/// Read for gateway certificates (`credentialName`) by a later issue.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    pub metadata: ObjectMeta,
    #[serde(rename = "type")]
    pub secret_type: Option<String>,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    #[serde(default)]
    pub string_data: BTreeMap<String, String>,
    pub immutable: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMap {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    #[serde(default)]
    pub binary_data: BTreeMap<String, String>,
    pub immutable: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Namespace {
    pub metadata: ObjectMeta,
}
