//! Which pods strait captures, as Istio's ambient mode enrolls them: a pod labelled
//! `istio.io/dataplane-mode=ambient`, or any pod in a namespace so labelled unless the pod says
//! `istio.io/dataplane-mode=none`; never a pod in the node's network namespace (`hostNetwork`),
//! one with an Istio sidecar, or one that has finished. The kernel learns them by cgroup
//! (`capture::enrollment`), so each needs its `metadata.uid` and the node it runs on.

use std::collections::HashMap;

use crate::config::resources::{self, Labels, PodPhase, Resources};

/// The label that enrolls a namespace or a pod, or opts a pod out.
pub const DATAPLANE_MODE: &str = "istio.io/dataplane-mode";
const AMBIENT: &str = "ambient";
const NONE: &str = "none";
/// What Istio's injector writes on a pod that got a sidecar.
const SIDECAR_STATUS: &str = "sidecar.istio.io/status";

/// An enrolled pod, by what finds its cgroup on its node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EnrolledPod {
    pub node: String,
    pub uid: String,
    pub namespace: String,
    pub name: String,
}

/// Every enrolled pod, sorted by node, then uid.
pub(super) fn enrolled(resources: &Resources) -> Vec<EnrolledPod> {
    let namespaces: HashMap<&str, &Labels> = resources
        .of::<resources::Namespace>()
        .map(|ns| {
            let meta = &ns.resource.metadata;
            (meta.name.as_str(), &meta.labels)
        })
        .collect();
    let mut pods: Vec<EnrolledPod> = resources
        .of::<resources::Pod>()
        .map(|pod| pod.resource)
        .filter(|pod| {
            let namespace = namespaces.get(pod.metadata.namespace.as_str()).copied();
            is_enrolled(pod, namespace)
        })
        .filter_map(|pod| {
            Some(EnrolledPod {
                node: pod.spec.node_name.clone()?,
                uid: pod.metadata.uid.clone()?,
                namespace: pod.metadata.namespace.clone(),
                name: pod.metadata.name.clone(),
            })
        })
        .collect();
    pods.sort();
    pods
}

fn is_enrolled(pod: &resources::Pod, namespace: Option<&Labels>) -> bool {
    let finished = matches!(
        pod.status.phase,
        Some(PodPhase::Succeeded | PodPhase::Failed)
    );
    if pod.spec.host_network || finished || pod.metadata.annotations.contains_key(SIDECAR_STATUS) {
        return false;
    }
    match pod.metadata.labels.get(DATAPLANE_MODE).map(String::as_str) {
        Some(AMBIENT) => true,
        Some(NONE) => false,
        _ => namespace
            .and_then(|labels| labels.get(DATAPLANE_MODE))
            .is_some_and(|mode| mode == AMBIENT),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::load_str;

    fn pod(name: &str, labels: &str, extra: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: shop, uid: uid-{name}, \
             labels: {{{labels}}}}}\nspec: {{nodeName: node-1{extra}}}\nstatus: {{phase: Running, podIP: 10.0.0.1}}\n---\n"
        )
    }

    fn enrolled_names(namespace_labels: &str, pods: &str) -> Vec<String> {
        let yaml = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: shop, labels: {{{namespace_labels}}}}}\n---\n{pods}"
        );
        let loaded = load_str(Path::new("e.yaml"), &yaml);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        enrolled(&loaded.resources)
            .into_iter()
            .map(|p| format!("{}/{}@{}", p.name, p.uid, p.node))
            .collect()
    }

    #[test]
    fn an_ambient_namespace_enrolls_its_pods_but_those_that_opt_out() {
        let pods = pod("web", "app: web", "")
            + &pod("batch", "istio.io/dataplane-mode: none", "")
            + &pod("agent", "", ", hostNetwork: true");
        assert_eq!(
            enrolled_names("istio.io/dataplane-mode: ambient", &pods),
            ["web/uid-web@node-1"]
        );
    }

    #[test]
    fn outside_an_ambient_namespace_only_a_pod_that_asks_is_enrolled() {
        let pods = pod("web", "app: web", "") + &pod("api", "istio.io/dataplane-mode: ambient", "");
        assert_eq!(enrolled_names("team: shop", &pods), ["api/uid-api@node-1"]);
    }

    #[test]
    fn sidecar_pods_and_finished_pods_are_not_enrolled() {
        let sidecar = "apiVersion: v1\nkind: Pod\nmetadata: {name: legacy, namespace: shop, uid: u1, \
                       annotations: {sidecar.istio.io/status: '{}'}}\nspec: {nodeName: node-1}\n---\n";
        let done = "apiVersion: v1\nkind: Pod\nmetadata: {name: job, namespace: shop, uid: u2}\n\
                    spec: {nodeName: node-1}\nstatus: {phase: Succeeded}\n---\n";
        let pods = format!("{sidecar}{done}");
        assert!(enrolled_names("istio.io/dataplane-mode: ambient", &pods).is_empty());
    }
}
