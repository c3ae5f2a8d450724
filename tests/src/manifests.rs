//! Manifests for tests that build their own labs: the few shapes they need, as YAML documents.

use std::{fmt::Display, fs, net::SocketAddr, path::PathBuf};

use anyhow::{Context, Result};

/// A ClusterIP Service in namespace `default` selecting `app: <app>`, with one port.
pub struct Service<'a> {
    pub name: &'a str,
    pub app: &'a str,
    pub vip: SocketAddr,
    pub port_name: &'a str,
    pub app_protocol: Option<&'a str>,
    /// A number, or the name of a container port.
    pub target_port: &'a dyn Display,
}

impl Service<'_> {
    pub fn yaml(&self) -> String {
        let app_protocol = self
            .app_protocol
            .map(|p| format!("    appProtocol: {p}\n"))
            .unwrap_or_default();
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  \
             clusterIP: {ip}\n  selector:\n    app: {app}\n  ports:\n  - name: {port_name}\n    port: {port}\n    \
             targetPort: {target}\n{app_protocol}",
            name = self.name,
            ip = self.vip.ip(),
            app = self.app,
            port_name = self.port_name,
            port = self.vip.port(),
            target = self.target_port,
        )
    }
}

/// A Running Pod labelled `app: <app>` at `ip`, with named container ports.
pub fn pod(name: &str, app: &str, ip: impl Display, ports: &[(&str, u16)]) -> String {
    labelled_pod(name, &[("app", app)], ip, ports)
}

/// A Running Pod with `labels` at `ip`, with named container ports.
pub fn labelled_pod(
    name: &str,
    labels: &[(&str, &str)],
    ip: impl Display,
    ports: &[(&str, u16)],
) -> String {
    let labels: String = labels
        .iter()
        .map(|(key, value)| format!("    {key}: {value}\n"))
        .collect();
    let ports: String = ports
        .iter()
        .map(|(name, port)| format!("    - name: {name}\n      containerPort: {port}\n"))
        .collect();
    let ports = if ports.is_empty() {
        String::new()
    } else {
        format!("    ports:\n{ports}")
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  labels:\n{labels}\
         spec:\n  containers:\n  - name: app\n    image: test\n{ports}status:\n  phase: Running\n  podIP: {ip}\n"
    )
}

/// Documents joined into one multi-document file.
pub fn documents(docs: impl IntoIterator<Item = String>) -> String {
    docs.into_iter().map(|d| format!("---\n{d}")).collect()
}

/// A DestinationRule for `host` whose load balancer is round robin: tests that count shares
/// per replica use it, since the default balancer's latency-driven spread on a busy machine
/// would blur them.
pub fn round_robin(host: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
         metadata: {{name: {host}-round-robin, namespace: default}}\n\
         spec: {{host: {host}, trafficPolicy: {{loadBalancer: {{simple: ROUND_ROBIN}}}}}}\n"
    )
}

/// A VirtualService named `name` splitting `host` between its DestinationRule subsets v1 and
/// v2 by `weights`, in the shape of the seed's `grpc-canary`.
pub fn canary(name: &str, host: &str, weights: [u32; 2]) -> String {
    let routes: String = ["v1", "v2"]
        .iter()
        .zip(weights)
        .map(|(subset, weight)| {
            format!(
                "    - destination:\n        host: {host}\n        subset: {subset}\n      \
                 weight: {weight}\n"
            )
        })
        .collect();
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\n  \
         namespace: default\nspec:\n  hosts:\n  - {host}\n  http:\n  - route:\n{routes}"
    )
}

/// `fixtures/seed-manifests.yaml`: the manifests users have today, as written.
pub fn seed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/seed-manifests.yaml")
}

/// The seed manifests, whole.
pub fn seed() -> Result<String> {
    let path = seed_path();
    fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// The seed manifests with the document `kind`/`name` replaced by `document`, in its place
/// (the seed's load order decides between VirtualServices bound to one host, so it is kept).
/// Fails when the seed has no such document, so a renamed one is not silently kept.
pub fn seed_replacing(kind: &str, name: &str, document: &str) -> Result<String> {
    let seed = seed()?;
    let mut documents: Vec<&str> = seed.split("\n---\n").collect();
    let is_it = |doc: &str| {
        doc.lines().any(|l| l == format!("kind: {kind}"))
            && doc.lines().any(|l| l == format!("  name: {name}"))
    };
    let mut found = documents.iter_mut().filter(|doc| is_it(doc));
    let (Some(it), None) = (found.next(), found.next()) else {
        anyhow::bail!("the seed has no single {kind} {name}");
    };
    *it = document.trim_end();
    let mut text = documents.join("\n---\n");
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's canary, written by [`canary`], is the seed's own document.
    #[test]
    fn canaries_have_the_seeds_shape() {
        let seed = seed().unwrap();
        let written = canary(
            "grpc-canary",
            "grpc-service.default.svc.cluster.local",
            [90, 10],
        );
        assert!(seed.contains(&written), "{written}");
        let replaced = seed_replacing("VirtualService", "grpc-canary", &written).unwrap();
        assert_eq!(replaced, seed);
        let other = canary("grpc-canary", "h", [1, 2]);
        let replaced = seed_replacing("VirtualService", "grpc-canary", &other).unwrap();
        assert!(!replaced.contains(&written) && replaced.contains(&other));
        assert!(replaced.find(&other) < replaced.find("name: grpc-with-retries\n"));
        assert!(seed_replacing("VirtualService", "nothing", &other).is_err());
    }
}
