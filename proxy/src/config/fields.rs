//! What to say about a field strait did not read. Nothing is dropped silently except standard
//! Kubernetes fields that cannot change how strait routes (what `kubectl get -o yaml` adds:
//! `status`, `metadata.resourceVersion`, node-port and load-balancer settings, a Pod's container images...).
//! Fields of the Istio API that strait does not implement are "not supported"; anything else is
//! taken for a typo and named as an unknown field.

use self::Status::{Standard, Unknown, Unsupported};
use super::{decode::FieldPath, diagnostics::Finding, kinds::Kind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// A standard field with no bearing on strait: silent.
    Standard,
    Unsupported,
    Unknown,
}

/// A table row: a field pattern (indices blanked, as [`FieldPath::pattern`]) covering the field
/// and everything under it. The first row that covers a field decides.
type Rule = (&'static str, Status);

const COMMON: &[Rule] = &[
    ("apiVersion", Standard),
    ("kind", Standard),
    ("status", Standard),
    ("metadata.resourceVersion", Standard),
    ("metadata.generation", Standard),
    ("metadata.generateName", Standard),
    ("metadata.selfLink", Standard),
    ("metadata.managedFields", Standard),
    ("metadata.ownerReferences", Standard),
    ("metadata.finalizers", Standard),
    ("metadata.deletionTimestamp", Standard),
    ("metadata.deletionGracePeriodSeconds", Standard),
];

const SERVICE: &[Rule] = &[
    // Node ports, load balancers and external traffic: outside strait's path, which is pod to
    // cluster IP. `externalName` is covered by type ExternalName having no cluster IP.
    ("spec.ports[].nodePort", Standard),
    ("spec.externalTrafficPolicy", Standard),
    ("spec.healthCheckNodePort", Standard),
    ("spec.loadBalancerIP", Standard),
    ("spec.loadBalancerSourceRanges", Standard),
    ("spec.loadBalancerClass", Standard),
    ("spec.allocateLoadBalancerNodePorts", Standard),
    ("spec.externalName", Standard),
    ("spec.ipFamilies", Standard),
    ("spec.ipFamilyPolicy", Standard),
    ("spec.sessionAffinityConfig", Standard),
    ("spec.externalIPs", Unsupported),
    ("spec.publishNotReadyAddresses", Unsupported),
    ("spec.trafficDistribution", Unsupported),
];

const POD: &[Rule] = &[
    ("spec.containers[].ports[].hostPort", Standard),
    ("spec.containers[].ports[].hostIP", Standard),
    // Container ports decide named targetPorts: a typo there matters.
    ("spec.containers[].ports", Unknown),
    // Everything else in a Pod spec is the kubelet's business.
    ("spec", Standard),
];

const NAMESPACE: &[Rule] = &[("spec", Standard)];

const WORKLOAD_ENTRY: &[Rule] = &[
    ("spec.weight", Unsupported),
    ("spec.locality", Unsupported),
    ("spec.network", Unsupported),
    ("spec.serviceAccount", Unsupported),
];

const VIRTUAL_SERVICE: &[Rule] = &[
    ("spec.tcp", Unsupported),
    ("spec.tls[].match[].destinationSubnets", Unsupported),
    ("spec.tls[].match[].sourceLabels", Unsupported),
    ("spec.tls[].match[].sourceNamespace", Unsupported),
    ("spec.exportTo", Unsupported),
    ("spec.http[].match[].queryParams", Unsupported),
    ("spec.http[].match[].scheme", Unsupported),
    ("spec.http[].match[].ignoreUriCase", Unsupported),
    ("spec.http[].match[].withoutHeaders", Unsupported),
    ("spec.http[].match[].gateways", Unsupported),
    ("spec.http[].match[].statPrefix", Unsupported),
    ("spec.http[].redirect", Unsupported),
    ("spec.http[].directResponse", Unsupported),
    ("spec.http[].delegate", Unsupported),
    ("spec.http[].corsPolicy", Unsupported),
    ("spec.http[].retries.retryRemoteLocalities", Unsupported),
    ("spec.http[].retries.retryIgnorePreviousHosts", Unsupported),
    ("spec.http[].retries.backoff", Unsupported),
    ("spec.http[].fault.delay.exponentialDelay", Unsupported),
    ("spec.http[].fault.abort.http2Error", Unsupported),
];

const DESTINATION_RULE: &[Rule] = &[
    ("spec.exportTo", Unsupported),
    ("spec.workloadSelector", Unsupported),
];

/// Where a DestinationRule holds a traffic policy: the same fields are read at each.
const TRAFFIC_POLICY_ROOTS: &[&str] = &[
    "spec.trafficPolicy.portLevelSettings[]",
    "spec.trafficPolicy",
    "spec.subsets[].trafficPolicy.portLevelSettings[]",
    "spec.subsets[].trafficPolicy",
];

/// Under a traffic policy root.
const TRAFFIC_POLICY: &[Rule] = &[
    ("tls", Unsupported),
    ("tunnel", Unsupported),
    ("proxyProtocol", Unsupported),
    ("retryBudget", Unsupported),
    ("loadBalancer.localityLbSetting", Unsupported),
    ("loadBalancer.warmupDurationSecs", Unsupported),
    ("loadBalancer.warmup", Unsupported),
    (
        "loadBalancer.consistentHash.httpCookie.attributes",
        Unsupported,
    ),
    ("connectionPool.tcp.tcpKeepalive", Unsupported),
    ("connectionPool.tcp.maxConnectionDuration", Unsupported),
    ("connectionPool.tcp.idleTimeout", Unsupported),
    ("connectionPool.http.useClientProtocol", Unsupported),
    ("outlierDetection.consecutiveErrors", Unsupported),
    (
        "outlierDetection.consecutiveLocalOriginFailures",
        Unsupported,
    ),
    (
        "outlierDetection.splitExternalLocalOriginErrors",
        Unsupported,
    ),
];

const GATEWAY: &[Rule] = &[
    ("spec.servers[].bind", Unsupported),
    ("spec.servers[].defaultEndpoint", Unsupported),
    ("spec.servers[].port.targetPort", Unsupported),
    ("spec.servers[].tls.httpsRedirect", Unsupported),
    ("spec.servers[].tls.serverCertificate", Unsupported),
    ("spec.servers[].tls.privateKey", Unsupported),
    ("spec.servers[].tls.caCertificates", Unsupported),
    ("spec.servers[].tls.caCrl", Unsupported),
    ("spec.servers[].tls.credentialNames", Unsupported),
    ("spec.servers[].tls.tlsCertificates", Unsupported),
    ("spec.servers[].tls.subjectAltNames", Unsupported),
    ("spec.servers[].tls.verifyCertificateSpki", Unsupported),
    ("spec.servers[].tls.verifyCertificateHash", Unsupported),
    ("spec.servers[].tls.minProtocolVersion", Unsupported),
    ("spec.servers[].tls.maxProtocolVersion", Unsupported),
    ("spec.servers[].tls.cipherSuites", Unsupported),
];

fn rules(kind: Kind) -> &'static [Rule] {
    match kind {
        Kind::Service => SERVICE,
        Kind::Pod => POD,
        Kind::Namespace => NAMESPACE,
        Kind::WorkloadEntry => WORKLOAD_ENTRY,
        Kind::VirtualService => VIRTUAL_SERVICE,
        Kind::DestinationRule => DESTINATION_RULE,
        Kind::Gateway => GATEWAY,
        Kind::Secret | Kind::ConfigMap => &[],
    }
}

fn covers(rule: &str, pattern: &str) -> bool {
    pattern
        .strip_prefix(rule)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

fn status(kind: Kind, field: &FieldPath) -> Status {
    let pattern = field.pattern();
    let in_policy = || (kind == Kind::DestinationRule).then(|| traffic_policy_status(&pattern))?;
    lookup(COMMON.iter().chain(rules(kind)), &pattern)
        .or_else(in_policy)
        .unwrap_or(Unknown)
}

/// A DestinationRule field under one of its traffic policies, looked up relative to it.
fn traffic_policy_status(pattern: &str) -> Option<Status> {
    let relative = TRAFFIC_POLICY_ROOTS.iter().find_map(|root| {
        pattern
            .strip_prefix(root)
            .and_then(|rest| rest.strip_prefix('.'))
    })?;
    lookup(TRAFFIC_POLICY, relative)
}

fn lookup<'a>(rules: impl IntoIterator<Item = &'a Rule>, pattern: &str) -> Option<Status> {
    rules
        .into_iter()
        .find(|(rule, _)| covers(rule, pattern))
        .map(|&(_, status)| status)
}

/// Warnings for the fields a document had that strait did not read.
pub(crate) fn ignored(kind: Kind, fields: &[FieldPath]) -> Vec<Finding> {
    fields
        .iter()
        .filter_map(|field| {
            let message = match status(kind, field) {
                Standard => return None,
                Unsupported => "not supported by strait; ignored",
                Unknown => "unknown field; ignored",
            };
            Some(Finding::warning(field.to_string(), message))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::config::{decode::decode, resources};

    fn warnings<T: for<'de> Deserialize<'de>>(kind: Kind, yaml: &str) -> Vec<String> {
        let decoded = decode::<T>(serde_yaml::from_str(yaml).unwrap()).unwrap();
        ignored(kind, &decoded.ignored)
            .into_iter()
            .map(|f| format!("{}: {}", f.field.unwrap_or_default(), f.message))
            .collect()
    }

    #[test]
    fn kubectl_output_is_quiet() {
        let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: a, uid: x, resourceVersion: '1'}\n\
                    spec: {ports: [{port: 80, nodePort: 30080}], ipFamilies: [IPv4], externalTrafficPolicy: Cluster}\n\
                    status: {loadBalancer: {}}";
        assert!(warnings::<resources::Service>(Kind::Service, yaml).is_empty());
        let pod = "metadata: {name: p}\nspec: {nodeName: n, containers: [{name: c, image: i, ports: [{containerPort: 80, hostPort: 80}]}]}";
        assert!(warnings::<resources::Pod>(Kind::Pod, pod).is_empty());
    }

    #[test]
    fn typos_and_unsupported_fields_are_named() {
        let yaml = "metadata: {name: a, lables: {}}\nspec: {ports: [{port: 80, tagetPort: 8080}], externalIPs: [1.2.3.4]}";
        assert_eq!(
            warnings::<resources::Service>(Kind::Service, yaml),
            [
                "metadata.lables: unknown field; ignored",
                "spec.ports[0].tagetPort: unknown field; ignored",
                "spec.externalIPs: not supported by strait; ignored",
            ]
        );
        let pod =
            "metadata: {name: p}\nspec: {containers: [{ports: [{containerPort: 80, nmae: grpc}]}]}";
        assert_eq!(
            warnings::<resources::Pod>(Kind::Pod, pod),
            ["spec.containers[0].ports[0].nmae: unknown field; ignored"]
        );
        let vs = "metadata: {name: v}\nspec: {hosts: [a], http: [{redirect: {uri: /b}, mirror: {host: b}, route: []}], tcp: []}";
        assert_eq!(
            warnings::<resources::VirtualService>(Kind::VirtualService, vs),
            [
                "spec.http[0].redirect: not supported by strait; ignored",
                "spec.tcp: not supported by strait; ignored"
            ]
        );
    }

    #[test]
    fn traffic_policy_fields_are_read_or_named_wherever_a_policy_is() {
        let policy = "{connectionPool: {tcp: {maxConnections: 1, tcpKeepalive: {time: 7200s}}, \
                      http: {maxRetries: 3, useClientProtocol: true}}, tls: {mode: ISTIO_MUTUAL}, \
                      loadBalancer: {simple: RANDOM, warmupDurationSecs: 10s}, \
                      outlierDetection: {consecutive5xxErrors: 3, consecutiveErorrs: 2}}";
        let dr = format!(
            "metadata: {{name: d}}\nspec: {{host: a, trafficPolicy: {{portLevelSettings: [\
             {{port: {{number: 80}}, connectionPool: {{tcp: {{maxConections: 1}}}}}}]}}, \
             subsets: [{{name: v1, trafficPolicy: {policy}}}]}}"
        );
        assert_eq!(
            warnings::<resources::DestinationRule>(Kind::DestinationRule, &dr),
            [
                "spec.trafficPolicy.portLevelSettings[0].connectionPool.tcp.maxConections: unknown field; ignored",
                "spec.subsets[0].trafficPolicy.connectionPool.tcp.tcpKeepalive: not supported by strait; ignored",
                "spec.subsets[0].trafficPolicy.connectionPool.http.useClientProtocol: not supported by strait; ignored",
                "spec.subsets[0].trafficPolicy.tls: not supported by strait; ignored",
                "spec.subsets[0].trafficPolicy.loadBalancer.warmupDurationSecs: not supported by strait; ignored",
                "spec.subsets[0].trafficPolicy.outlierDetection.consecutiveErorrs: unknown field; ignored",
            ]
        );
    }

    #[test]
    fn a_rule_covers_whole_segments_only() {
        assert!(covers("spec", "spec.x"));
        assert!(covers("spec.tcp", "spec.tcp[].route"));
        assert!(!covers("spec.tcp", "spec.tcpx"));
    }
}
