//! Istio Gateways, resolved: each Gateway's servers (port, hosts, how TLS is served) and, per
//! port, the routes of the VirtualServices bound to it, as an ingress gateway's Envoy gets them.
//!
//! - A server is served as `Plain` (HTTP, HTTP2 or GRPC without `tls`), `Terminate` (HTTPS, or
//!   HTTP/HTTP2/GRPC with `tls`: SIMPLE, or MUTUAL with client certificates) or `Passthrough`
//!   (TLS or HTTPS with PASSTHROUGH: relayed by SNI, never decrypted). What cannot be served
//!   (another protocol or mode, a bad credential) is left out and reported by validation
//!   ([`server_mode`] says why to both).
//! - HTTP routes: at a gateway Istio merges the `http[]` of every VirtualService bound to it for
//!   a host, first first ([`Bindings`]), when a server on the port serves that host to the
//!   VirtualService's namespace. Built with the mesh's route code: a request that no route
//!   takes has none (NR); there is no default route at a gateway.
//! - TLS routes: a VirtualService's `tls[]` whose `match[].sniHosts` name the connection's SNI.

mod credential;
pub mod hosts;

use std::{collections::BTreeMap, sync::Arc};

pub use self::credential::{Credential, CredentialError};
use self::hosts::{best_match, covers, intersect, ServerHost};
use super::{
    bindings::{Bindings, Scope},
    resources::{self, Labels, Resources, VirtualService},
    route::{self, Destinations, HttpRoute, Resolve, RouteDestination},
};

/// The gateways this strait serves, and on which port a connection or request arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayTarget {
    /// `--gateway-labels`: the Gateways whose selector is a subset of these are served.
    pub labels: Arc<Labels>,
    pub port: u16,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gateways {
    all: Vec<Gateway>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Gateway {
    pub namespace: String,
    pub name: String,
    pub selector: Labels,
    /// Those that can be served, in order.
    pub servers: Vec<Server>,
    /// Those that cannot, by index in `spec.servers`, and why.
    pub unserved: Vec<(usize, Unserved)>,
    /// Per port, each VirtualService host bound here with its merged routes.
    http_routes: BTreeMap<u16, BTreeMap<String, Vec<HttpRoute>>>,
    /// Per port, in load order.
    tls_routes: BTreeMap<u16, Vec<TlsRoute>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    pub port: u16,
    pub hosts: Vec<ServerHost>,
    pub mode: ServerMode,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ServerMode {
    /// Cleartext HTTP/1.1 or HTTP/2.
    Plain,
    /// TLS terminated with this credential (MUTUAL: it verifies clients).
    Terminate(Arc<Credential>),
    /// TLS relayed by SNI.
    Passthrough,
}

impl ServerMode {
    pub fn is_tls(&self) -> bool {
        !matches!(self, Self::Plain)
    }
}

/// One `tls[]` route of a VirtualService bound to a gateway port.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsRoute {
    /// Lower case; patterns as [`hosts::covers`] reads them.
    pub sni_hosts: Vec<String>,
    pub destinations: Destinations,
}

/// Why a server is not served; `field` is under `spec.servers[N]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unserved {
    pub field: &'static str,
    pub message: String,
    /// The Secret it names is not in the config. Not a fault of the manifests (Secrets are
    /// usually made in the cluster, not written beside the routes), so `strait validate` says
    /// nothing; a strait that serves the Gateway logs it.
    pub secret_missing: bool,
}

/// How `server` of `gateway` is served, or why it is not.
pub(crate) fn server_mode(
    gateway: &resources::Gateway,
    server: &resources::Server,
    resources: &Resources,
) -> Result<ServerMode, Unserved> {
    let protocol = server.port.protocol.to_ascii_uppercase();
    let http = matches!(protocol.as_str(), "HTTP" | "HTTP2" | "GRPC");
    let mode = server.tls.as_ref().map(|tls| {
        // Istio's proto default, mode 0.
        tls.mode
            .as_deref()
            .unwrap_or("PASSTHROUGH")
            .to_ascii_uppercase()
    });
    let unsupported = |field, message: String| {
        Err(Unserved {
            field,
            message,
            secret_missing: false,
        })
    };
    match (protocol.as_str(), mode.as_deref()) {
        (_, None) if http => Ok(ServerMode::Plain),
        ("HTTPS", None) => unsupported("tls", "HTTPS needs tls settings; the server is not served".into()),
        ("HTTPS" | "TLS", Some("PASSTHROUGH")) => Ok(ServerMode::Passthrough),
        (_, Some(mode @ ("SIMPLE" | "MUTUAL"))) if http || protocol == "HTTPS" => {
            let tls = server.tls.as_ref().expect("a mode comes with tls");
            let Some(name) = tls.credential_name.as_deref() else {
                let message = format!("{mode} needs a credentialName; the server is not served");
                return unsupported("tls.credentialName", message);
            };
            let meta = &gateway.metadata;
            Credential::load(resources, &meta.namespace, name, mode == "MUTUAL")
                .map(|credential| ServerMode::Terminate(Arc::new(credential)))
                .map_err(|err| Unserved {
                    field: "tls.credentialName",
                    message: format!("{err}; the server is not served"),
                    secret_missing: matches!(err, CredentialError::NotLoaded(_)),
                })
        }
        (_, Some(mode)) if mode != "SIMPLE" && mode != "MUTUAL" && mode != "PASSTHROUGH" => {
            unsupported("tls.mode", format!("{mode} is not supported by strait; the server is not served"))
        }
        _ => unsupported(
            "port.protocol",
            format!(
                "{} with TLS mode {} is not supported by strait (HTTP, HTTP2, GRPC, HTTPS with SIMPLE or MUTUAL, TLS or HTTPS with PASSTHROUGH); the server is not served",
                server.port.protocol,
                mode.as_deref().unwrap_or("none")
            ),
        ),
    }
}

impl Gateways {
    pub(crate) fn build(
        resources: &Resources,
        bindings: &Bindings<'_>,
        resolve: &impl Resolve,
    ) -> Self {
        let all = resources
            .of::<resources::Gateway>()
            .map(|gateway| Gateway::build(gateway.resource, resources, bindings, resolve))
            .collect();
        Self { all }
    }

    /// The Gateways whose selector is a subset of `labels`.
    pub fn served<'a>(&'a self, labels: &'a Labels) -> impl Iterator<Item = &'a Gateway> + 'a {
        self.all
            .iter()
            .filter(|gateway| gateway.selected_by(labels))
    }

    /// Every served server on `target`'s port, with its gateway.
    pub fn servers_on<'a>(
        &'a self,
        target: &GatewayTarget,
    ) -> impl Iterator<Item = (&'a Gateway, &'a Server)> + 'a {
        let (labels, port) = (target.labels.clone(), target.port);
        self.all
            .iter()
            .filter(move |gateway| gateway.selected_by(&labels))
            .flat_map(move |gateway| {
                let on_port = gateway.servers.iter().filter(move |s| s.port == port);
                on_port.map(move |server| (gateway, server))
            })
    }

    /// The server on `target`'s port for `host` (an SNI or a request's host): the most specific
    /// host pattern wins, the first in order among equals; `None` when no server serves it.
    pub fn server_for<'a>(
        &'a self,
        target: &GatewayTarget,
        host: &str,
    ) -> Option<(&'a Gateway, &'a Server)> {
        let host = host.to_ascii_lowercase();
        let candidates: Vec<(&Gateway, &Server, &str)> = self
            .servers_on(target)
            .flat_map(|(gateway, server)| {
                server
                    .hosts
                    .iter()
                    .map(move |h| (gateway, server, h.host.as_str()))
            })
            .collect();
        let (index, _) = best_match(candidates.iter().map(|(_, _, h)| *h), &host)?;
        let (gateway, server, _) = candidates[index];
        Some((gateway, server))
    }

    /// The HTTP route a request for `host` (no port) takes at `target`: the routes of the
    /// gateway whose server serves the host, for the most specific VirtualService host that
    /// covers it, the first that matches. `None`: no route (NR).
    pub fn http_route<'a>(
        &'a self,
        target: &GatewayTarget,
        host: &str,
        request: route::RequestHead<'_>,
    ) -> Option<&'a HttpRoute> {
        let (gateway, _) = self.server_for(target, host)?;
        let by_host = gateway.http_routes.get(&target.port)?;
        let host = host.to_ascii_lowercase();
        let (_, best) = best_match(by_host.keys().map(String::as_str), &host)?;
        by_host[best]
            .iter()
            .find(|route| route.matches(request, target.port))
    }

    /// The TLS route for a connection whose ClientHello named `sni`, at a PASSTHROUGH server.
    pub fn tls_route<'a>(&'a self, target: &GatewayTarget, sni: &str) -> Option<&'a TlsRoute> {
        let (gateway, server) = self.server_for(target, sni)?;
        if server.mode != ServerMode::Passthrough {
            return None;
        }
        let sni = sni.to_ascii_lowercase();
        gateway
            .tls_routes
            .get(&target.port)?
            .iter()
            .find(|route| route.sni_hosts.iter().any(|pattern| covers(pattern, &sni)))
    }
}

impl Gateway {
    fn selected_by(&self, labels: &Labels) -> bool {
        let selector = &self.selector;
        selector
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
    }

    fn build(
        spec: &resources::Gateway,
        resources: &Resources,
        bindings: &Bindings<'_>,
        resolve: &impl Resolve,
    ) -> Self {
        let meta = &spec.metadata;
        let mut servers = Vec::new();
        let mut unserved = Vec::new();
        for (index, server) in spec.spec.servers.iter().enumerate() {
            match server_mode(spec, server, resources) {
                Ok(mode) => servers.push(Server {
                    port: server.port.number.get(),
                    hosts: server
                        .hosts
                        .iter()
                        .map(|host| ServerHost::parse(host, &meta.namespace))
                        .collect(),
                    mode,
                }),
                Err(why) => unserved.push((index, why)),
            }
        }
        let scope = Scope::Gateway(format!("{}/{}", meta.namespace, meta.name));
        let mut gateway = Self {
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            selector: spec.spec.selector.clone(),
            servers,
            unserved,
            http_routes: BTreeMap::new(),
            tls_routes: BTreeMap::new(),
        };
        gateway.http_routes = gateway.build_http_routes(&scope, bindings, resolve);
        gateway.tls_routes = gateway.build_tls_routes(&scope, resources, resolve);
        gateway
    }

    fn ports(&self, serving: impl Fn(&ServerMode) -> bool) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .servers
            .iter()
            .filter(|server| serving(&server.mode))
            .map(|server| server.port)
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// Whether a server on `port` serves `host` to VirtualServices of `namespace`.
    fn admits(&self, port: u16, host: &str, namespace: &str) -> bool {
        self.servers
            .iter()
            .filter(|s| s.port == port)
            .any(|server| {
                server
                    .hosts
                    .iter()
                    .any(|h| h.allows_namespace(namespace) && intersect(&h.host, host))
            })
    }

    fn build_http_routes(
        &self,
        scope: &Scope,
        bindings: &Bindings<'_>,
        resolve: &impl Resolve,
    ) -> BTreeMap<u16, BTreeMap<String, Vec<HttpRoute>>> {
        let mut by_port = BTreeMap::new();
        for port in self.ports(|mode| *mode != ServerMode::Passthrough) {
            let mut by_host = BTreeMap::new();
            for (_, host, bound) in bindings.iter().filter(|(s, _, _)| *s == scope) {
                let routes: Vec<HttpRoute> = bound
                    .iter()
                    .map(|binding| binding.virtual_service.resource)
                    .filter(|vs| self.admits(port, host, &vs.metadata.namespace))
                    .flat_map(|vs| route::virtual_service_routes(vs, port, resolve))
                    .collect();
                if !routes.is_empty() {
                    by_host.insert(host.to_owned(), routes);
                }
            }
            by_port.insert(port, by_host);
        }
        by_port
    }

    fn build_tls_routes(
        &self,
        scope: &Scope,
        resources: &Resources,
        resolve: &impl Resolve,
    ) -> BTreeMap<u16, Vec<TlsRoute>> {
        let mut by_port = BTreeMap::new();
        for port in self.ports(|mode| *mode == ServerMode::Passthrough) {
            let routes = resources
                .of::<VirtualService>()
                .flat_map(|vs| {
                    let namespace = &vs.resource.metadata.namespace;
                    let routes = tls_routes(vs.resource, scope, port, resolve);
                    routes.into_iter().filter(move |route| {
                        let sni = route.sni_hosts.iter();
                        sni.clone().any(|host| self.admits(port, host, namespace))
                    })
                })
                .collect();
            by_port.insert(port, routes);
        }
        by_port
    }
}

/// The `tls[]` routes of `vs` with a match for gateway `scope` at `port`.
fn tls_routes(
    vs: &VirtualService,
    scope: &Scope,
    port: u16,
    resolve: &impl Resolve,
) -> Vec<TlsRoute> {
    let namespace = &vs.metadata.namespace;
    let binds = |gateways: &[String]| {
        gateways
            .iter()
            .any(|reference| Scope::parse(reference, namespace) == *scope)
    };
    vs.spec
        .tls
        .iter()
        .filter(|route| !route.route.is_empty())
        .filter_map(|route| {
            let sni_hosts: Vec<String> = route
                .matches
                .iter()
                .filter(|m| m.port.is_none_or(|p| p.get() == port))
                .filter(|m| match m.gateways.is_empty() {
                    true => binds(&vs.spec.gateways),
                    false => binds(&m.gateways),
                })
                .flat_map(|m| match m.sni_hosts.is_empty() {
                    // Istio requires sniHosts; the VirtualService's hosts are what it would allow.
                    true => &vs.spec.hosts,
                    false => &m.sni_hosts,
                })
                .map(|host| host.to_ascii_lowercase())
                .collect();
            if sni_hosts.is_empty() {
                return None;
            }
            let destinations = route
                .route
                .iter()
                .map(|to| RouteDestination {
                    weight: to.weight.unwrap_or(0),
                    ..RouteDestination::only(resolve.resolve(&to.destination, namespace, port))
                })
                .collect();
            Some(TlsRoute {
                sni_hosts,
                destinations: Destinations::weighted(destinations),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
