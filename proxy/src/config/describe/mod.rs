//! `strait describe service NAME[.NAMESPACE]`: what the config makes of one Service, as
//! `istioctl x describe svc` tells it. For each port: its classification and why, its
//! endpoints, the DestinationRules and policy that apply, its subsets, the VirtualService whose
//! routes it takes and what each route does; then every problem the load found in those
//! resources, including documents that were dropped but name the Service's host.
//!
//! Everything comes from the same load and model `strait run` builds ([`text`] writes it), so
//! what is described is what is served.

mod text;

use std::{io::Write, path::PathBuf};

use super::{
    bindings::{Binding, Bindings, Scope},
    diagnostics::Subject,
    documents,
    hosts::{canonical_host, hosts_covering, ServiceName},
    load::load,
    model::{Model, Service},
    resources::{self, DestinationRule, Located, Resources, VirtualService},
    rules::{DestinationRules, Ranked},
    Diagnostic,
};

/// Exit codes, as `strait validate`'s: 0 described, 1 no such Service, 2 usage or read errors.
pub fn describe_command(paths: &[PathBuf], service: &str, out: &mut impl Write) -> i32 {
    let Some(name) = ServiceName::parse(service, "default") else {
        let _ = writeln!(
            out,
            "error: {service} is not a Service name (NAME[.NAMESPACE])"
        );
        return 2;
    };
    let loaded = match load(paths) {
        Ok(loaded) => loaded,
        Err(err) => {
            let _ = writeln!(out, "error: {err}");
            return 2;
        }
    };
    let model = Model::from_resources(&loaded.resources);
    let Some(service) = model.service(&name.name, &name.namespace) else {
        let known: Vec<String> = model
            .services()
            .map(|s| format!("{}/{}", s.namespace, s.name))
            .collect();
        let _ = writeln!(
            out,
            "error: no Service {name} in the config (Services: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
        return 1;
    };
    let described = Described::gather(service, &loaded.resources, &loaded.diagnostics);
    match text::write(out, &described) {
        Ok(()) => 0,
        Err(_) => 2,
    }
}

/// One Service and everything in the load that bears on it.
pub(crate) struct Described<'a> {
    pub service: &'a Service,
    pub resource: Option<Located<&'a resources::Service>>,
    /// First first: the first one's traffic policy applies, subsets merge by name.
    pub rules: Vec<Located<&'a DestinationRule>>,
    /// The mesh VirtualServices bound to its host, first first: the first routes each port it
    /// has routes for.
    pub virtual_services: Vec<Located<&'a VirtualService>>,
    /// VirtualServices at gateways with a route here, and the gateways they are bound to.
    pub ingress: Vec<(Located<&'a VirtualService>, Vec<String>)>,
    /// Problems in any of the above, and dropped documents that name its host.
    pub problems: Vec<&'a Diagnostic>,
}

impl<'a> Described<'a> {
    fn gather(
        service: &'a Service,
        resources: &'a Resources,
        diagnostics: &'a [Diagnostic],
    ) -> Self {
        let fqdn = service.fqdn();
        let resource = resources.of::<resources::Service>().find(|s| {
            let meta = &s.resource.metadata;
            meta.name == service.name && meta.namespace == service.namespace
        });
        let rules = DestinationRules::new(resources)
            .for_service(&fqdn)
            .iter()
            .map(|Ranked { rule, .. }| rule.clone())
            .collect();
        let virtual_services = Bindings::new(resources)
            .for_mesh_service(&fqdn)
            .iter()
            .map(
                |Binding {
                     virtual_service, ..
                 }| virtual_service.clone(),
            )
            .collect();
        let ingress = routed_from_gateways(resources, &fqdn);
        let mut described = Self {
            service,
            resource,
            rules,
            virtual_services,
            ingress,
            problems: Vec::new(),
        };
        described.problems = diagnostics
            .iter()
            .filter(|d| described.concerns(d) || dropped_document_names(d, &fqdn))
            .collect();
        described
    }

    /// Whether `diagnostic` is about one of the resources described.
    fn concerns(&self, diagnostic: &Diagnostic) -> bool {
        let subject = Subject {
            kind: diagnostic.kind.clone(),
            namespace: diagnostic.namespace.clone(),
            name: diagnostic.name.clone(),
        };
        let rules = self.rules.iter().map(Located::subject);
        let routes = self.virtual_services.iter().map(Located::subject);
        let ingress = self.ingress.iter().map(|(vs, _)| vs.subject());
        self.resource
            .iter()
            .map(Located::subject)
            .chain(rules)
            .chain(routes)
            .chain(ingress)
            .any(|described| described == subject)
    }
}

/// VirtualServices bound to gateways (not the mesh) with a destination on the Service `fqdn`.
fn routed_from_gateways<'a>(
    resources: &'a Resources,
    fqdn: &str,
) -> Vec<(Located<&'a VirtualService>, Vec<String>)> {
    resources
        .of::<VirtualService>()
        .filter_map(|vs| {
            let gateways: Vec<String> = Scope::of(vs.resource)
                .into_iter()
                .filter(|scope| matches!(scope, Scope::Gateway(_)))
                .map(|scope| scope.to_string())
                .collect();
            let namespace = &vs.resource.metadata.namespace;
            let routes_here = vs
                .resource
                .spec
                .http
                .iter()
                .flat_map(|http| &http.route)
                .any(|route| canonical_host(&route.destination.host, namespace) == fqdn);
            (!gateways.is_empty() && routes_here).then_some((vs, gateways))
        })
        .collect()
}

/// Whether `diagnostic` dropped a DestinationRule or VirtualService document whose host (as far
/// as it can still be read) covers the Service `fqdn`: it would have applied had it loaded.
fn dropped_document_names(diagnostic: &Diagnostic, fqdn: &str) -> bool {
    let rule_or_routes = matches!(
        diagnostic.kind.as_deref(),
        Some("DestinationRule" | "VirtualService")
    );
    if !(diagnostic.is_error() && rule_or_routes) {
        return false;
    }
    let Some(spec) = read_document(diagnostic) else {
        return false;
    };
    let namespace = diagnostic.namespace.as_deref().unwrap_or("default");
    let hosts = spec
        .get("host")
        .into_iter()
        .chain(
            spec.get("hosts")
                .and_then(|h| h.as_sequence())
                .into_iter()
                .flatten(),
        )
        .filter_map(|host| host.as_str());
    let covering: Vec<String> = hosts_covering(fqdn).collect();
    hosts
        .map(|host| canonical_host(host, namespace))
        .any(|host| covering.contains(&host))
}

/// The `spec` of the document a diagnostic is about, read loosely.
fn read_document(diagnostic: &Diagnostic) -> Option<serde_yaml::Value> {
    let text = std::fs::read_to_string(&diagnostic.file).ok()?;
    let document = documents::split(&text)
        .into_iter()
        .find(|d| d.number == diagnostic.document)?;
    let value: serde_yaml::Value = serde_yaml::from_str(document.text).ok()?;
    value.get("spec").cloned()
}

#[cfg(test)]
mod tests;
