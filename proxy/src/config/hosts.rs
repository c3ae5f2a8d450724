//! Service host names and authorities, in the forms a client in the cluster may use.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
};

/// The cluster's DNS domain. Fixed: strait has no API server to ask.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// `name.namespace.svc.cluster.local`: Istio's `destination_service`.
pub fn fqdn(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.svc.{CLUSTER_DOMAIN}")
}

/// Istio's name for the Envoy cluster of a Service port (and subset): `outbound|PORT|SUBSET|FQDN`,
/// as access logs, `/clusters` and `proxy-config` show it.
pub fn cluster_name(fqdn: &str, port: u16, subset: Option<&str>) -> String {
    format!("outbound|{port}|{}|{fqdn}", subset.unwrap_or(""))
}

/// A Service named by host.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceName {
    pub name: String,
    pub namespace: String,
}

impl ServiceName {
    /// Reads `name`, `name.ns`, `name.ns.svc` or `name.ns.svc.cluster.local` (any case, with or
    /// without the final dot) the way the cluster's DNS search path does: a bare name is in
    /// `namespace`. Anything else (more labels, a wildcard) names no Service.
    pub fn parse(host: &str, namespace: &str) -> Option<Self> {
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        let labels: Vec<&str> = host.split('.').collect();
        if !labels.iter().all(|label| is_dns_label(label)) {
            return None;
        }
        let (name, namespace) = match labels[..] {
            [name] => (name, namespace),
            [name, namespace] | [name, namespace, "svc"] => (name, namespace),
            [name, namespace, "svc", ref domain @ ..] if domain.join(".") == CLUSTER_DOMAIN => {
                (name, namespace)
            }
            _ => return None,
        };
        Some(Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
        })
    }

    pub fn fqdn(&self) -> String {
        fqdn(&self.name, &self.namespace)
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The one spelling of a host that Istio would compare: a Service's FQDN when the host can name
/// a Service (short names are in `namespace`), else the host itself in lower case.
pub fn canonical_host(host: &str, namespace: &str) -> String {
    match ServiceName::parse(host, namespace) {
        Some(service) => service.fqdn(),
        None => host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase(),
    }
}

/// The hosts whose configuration can apply to the Service `fqdn`, in the order Istio prefers
/// them: its own name, then each wildcard covering it, most specific first
/// (`*.ns.svc.cluster.local`, `*.svc.cluster.local`, ... `*`).
pub(crate) fn hosts_covering(fqdn: &str) -> impl Iterator<Item = String> + '_ {
    let wildcards = fqdn
        .match_indices('.')
        .map(|(dot, _)| &fqdn[dot..])
        .chain([""])
        .map(|suffix| format!("*{suffix}"));
    std::iter::once(fqdn.to_owned()).chain(wildcards)
}

/// The host part of an authority.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

/// Splits an HTTP authority (`host[:port]`, `ip:port`, `[v6]:port`, `[v6]`) into host and port.
pub fn split_authority(authority: &str) -> Option<(Host<'_>, Option<u16>)> {
    if let Ok(addr) = authority.parse::<SocketAddr>() {
        return Some((Host::Ip(addr.ip()), Some(addr.port())));
    }
    let bare = authority
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(authority);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some((Host::Ip(ip), None));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port.parse().ok()?)),
        None => (authority, None),
    };
    (!host.is_empty()).then_some((Host::Name(host), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(host: &str) -> Option<String> {
        ServiceName::parse(host, "team").map(|s| s.to_string())
    }

    #[test]
    fn service_host_forms() {
        assert_eq!(parse("web").as_deref(), Some("team/web"));
        assert_eq!(parse("web.prod").as_deref(), Some("prod/web"));
        assert_eq!(parse("web.prod.svc").as_deref(), Some("prod/web"));
        assert_eq!(
            parse("Web.Prod.svc.cluster.local.").as_deref(),
            Some("prod/web")
        );
        assert_eq!(parse("web.prod.svc.cluster.cluster.local"), None);
        assert_eq!(parse("grpc.example.com"), None);
        assert_eq!(parse("*.prod"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn canonical_hosts() {
        assert_eq!(
            canonical_host("server", "default"),
            "server.default.svc.cluster.local"
        );
        assert_eq!(
            canonical_host("GRPC.example.com", "default"),
            "grpc.example.com"
        );
    }

    #[test]
    fn covering_hosts_most_specific_first() {
        let hosts: Vec<String> = hosts_covering("web.shop.svc.cluster.local").collect();
        assert_eq!(
            hosts,
            [
                "web.shop.svc.cluster.local",
                "*.shop.svc.cluster.local",
                "*.svc.cluster.local",
                "*.cluster.local",
                "*.local",
                "*"
            ]
        );
    }

    #[test]
    fn authorities() {
        let ip = |s: &str| Host::Ip(s.parse().unwrap());
        assert_eq!(
            split_authority("web:8080"),
            Some((Host::Name("web"), Some(8080)))
        );
        assert_eq!(split_authority("web"), Some((Host::Name("web"), None)));
        assert_eq!(
            split_authority("10.0.0.1:80"),
            Some((ip("10.0.0.1"), Some(80)))
        );
        assert_eq!(split_authority("10.0.0.1"), Some((ip("10.0.0.1"), None)));
        assert_eq!(
            split_authority("[fd00::1]:80"),
            Some((ip("fd00::1"), Some(80)))
        );
        assert_eq!(split_authority("[fd00::1]"), Some((ip("fd00::1"), None)));
        assert_eq!(split_authority("web:http"), None);
        assert_eq!(split_authority(":80"), None);
    }
}
