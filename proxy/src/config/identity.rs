//! How Istio's telemetry names a workload, derived from its Pod's (or WorkloadEntry's) labels
//! as Istio derives them, so that strait's metrics carry the values Istio's would and its
//! dashboards group them the same way.

use crate::config::resources::Labels;

/// What Istio's `source_*` and `destination_*` workload labels say of a workload.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadIdentity {
    /// `*_workload`: the canonical service. (Istio names the Deployment that owns the Pod;
    /// strait sees Pods, not their owners, and the canonical service is the closest.)
    pub workload: String,
    pub namespace: String,
    /// `*_app`: the `app` label.
    pub app: String,
    /// `*_version`: the `version` label.
    pub version: String,
    /// `*_canonical_service`: `service.istio.io/canonical-name`, else `app.kubernetes.io/name`,
    /// else `app`, else the workload's own name.
    pub canonical_service: String,
    /// `*_canonical_revision`: `service.istio.io/canonical-revision`, else
    /// `app.kubernetes.io/version`, else `version`, else `latest`.
    pub canonical_revision: String,
}

/// Istio's value for a label it cannot know.
pub const UNKNOWN: &str = "unknown";

impl WorkloadIdentity {
    /// The identity of the Pod or WorkloadEntry `name` in `namespace` with `labels`.
    pub fn of(name: &str, namespace: &str, labels: &Labels) -> Self {
        let first = |keys: &[&str]| keys.iter().find_map(|key| labels.get(*key)).cloned();
        let canonical_service = first(&[
            "service.istio.io/canonical-name",
            "app.kubernetes.io/name",
            "app",
        ])
        .unwrap_or_else(|| name.to_owned());
        let canonical_revision = first(&[
            "service.istio.io/canonical-revision",
            "app.kubernetes.io/version",
            "version",
        ])
        .unwrap_or_else(|| "latest".to_owned());
        Self {
            workload: canonical_service.clone(),
            namespace: namespace.to_owned(),
            app: first(&["app"]).unwrap_or_else(|| UNKNOWN.to_owned()),
            version: first(&["version"]).unwrap_or_else(|| UNKNOWN.to_owned()),
            canonical_service,
            canonical_revision,
        }
    }

    /// A client or endpoint that is no workload strait knows.
    pub fn unknown() -> Self {
        Self {
            workload: UNKNOWN.to_owned(),
            namespace: UNKNOWN.to_owned(),
            app: UNKNOWN.to_owned(),
            version: UNKNOWN.to_owned(),
            canonical_service: UNKNOWN.to_owned(),
            canonical_revision: UNKNOWN.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(labels: &[(&str, &str)]) -> WorkloadIdentity {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        WorkloadIdentity::of("web-7d9f-x2k", "shop", &labels)
    }

    #[test]
    fn named_as_istio_names_the_canonical_service() {
        assert_eq!(identity(&[]).workload, "web-7d9f-x2k");
        assert_eq!(identity(&[("app", "web")]).workload, "web");
        let both = identity(&[("app", "web"), ("app.kubernetes.io/name", "storefront")]);
        assert_eq!(
            (both.workload.as_str(), both.app.as_str()),
            ("storefront", "web")
        );
        let canonical = identity(&[
            ("app", "web"),
            ("service.istio.io/canonical-name", "shopfront"),
        ]);
        assert_eq!(canonical.canonical_service, "shopfront");
        assert_eq!(canonical.workload, "shopfront");
    }

    #[test]
    fn versioned_as_istio_versions_the_canonical_revision() {
        let none = identity(&[]);
        assert_eq!(
            (none.version.as_str(), none.canonical_revision.as_str()),
            ("unknown", "latest")
        );
        let v2 = identity(&[("version", "v2")]);
        assert_eq!(
            (v2.version.as_str(), v2.canonical_revision.as_str()),
            ("v2", "v2")
        );
        let revision = identity(&[
            ("version", "v2"),
            ("service.istio.io/canonical-revision", "2.1"),
        ]);
        assert_eq!(revision.canonical_revision, "2.1");
        assert_eq!(revision.namespace, "shop");
    }
}
