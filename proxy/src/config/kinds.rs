//! The kinds strait reads and the API versions that serve them.

use std::fmt;

/// A kind strait reads. Kinds it does not read are reported and their documents skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Service,
    Pod,
    Secret,
    ConfigMap,
    Namespace,
    VirtualService,
    DestinationRule,
    Gateway,
    WorkloadEntry,
}

const CORE_VERSIONS: &[&str] = &["v1"];
/// Istio serves its networking kinds at all three versions with the same schema.
const ISTIO_VERSIONS: &[&str] = &[
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
];

impl Kind {
    const ALL: [Self; 9] = [
        Self::Service,
        Self::Pod,
        Self::Secret,
        Self::ConfigMap,
        Self::Namespace,
        Self::VirtualService,
        Self::DestinationRule,
        Self::Gateway,
        Self::WorkloadEntry,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "Service",
            Self::Pod => "Pod",
            Self::Secret => "Secret",
            Self::ConfigMap => "ConfigMap",
            Self::Namespace => "Namespace",
            Self::VirtualService => "VirtualService",
            Self::DestinationRule => "DestinationRule",
            Self::Gateway => "Gateway",
            Self::WorkloadEntry => "WorkloadEntry",
        }
    }

    pub fn from_name(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|known| known.as_str() == kind)
    }

    /// The `apiVersion`s that serve this kind.
    pub fn api_versions(self) -> &'static [&'static str] {
        match self {
            Self::Service | Self::Pod | Self::Secret | Self::ConfigMap | Self::Namespace => {
                CORE_VERSIONS
            }
            Self::VirtualService | Self::DestinationRule | Self::Gateway | Self::WorkloadEntry => {
                ISTIO_VERSIONS
            }
        }
    }

    pub fn is_served_by(self, api_version: &str) -> bool {
        self.api_versions().contains(&api_version)
    }

    /// Cluster-scoped kinds have no namespace.
    pub fn is_namespaced(self) -> bool {
        self != Self::Namespace
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(Kind::from_name("Deployment"), None);
        assert_eq!(
            Kind::from_name("service"),
            None,
            "kinds are case-sensitive, as in Kubernetes"
        );
    }

    #[test]
    fn versions() {
        assert!(Kind::DestinationRule.is_served_by("networking.istio.io/v1alpha3"));
        assert!(!Kind::DestinationRule.is_served_by("networking.io/v1"));
        assert!(!Kind::Service.is_served_by("networking.istio.io/v1"));
        assert!(Kind::WorkloadEntry.is_served_by("networking.istio.io/v1"));
    }
}
