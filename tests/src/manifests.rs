//! Manifests for tests that build their own labs: the few shapes they need, as YAML documents.

use std::{fmt::Display, net::SocketAddr};

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
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  labels:\n    app: {app}\n\
         spec:\n  containers:\n  - name: app\n    image: test\n{ports}status:\n  phase: Running\n  podIP: {ip}\n"
    )
}

/// Documents joined into one multi-document file.
pub fn documents(docs: impl IntoIterator<Item = String>) -> String {
    docs.into_iter().map(|d| format!("---\n{d}")).collect()
}
