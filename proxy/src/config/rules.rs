//! Which DestinationRules apply to a Service, and what several of them for one host amount to.
//!
//! A rule's `host` is read as VirtualService hosts are (short names in the rule's namespace,
//! `name.ns`, FQDN). A Service takes the rules for its exact FQDN, else those for the most
//! specific wildcard host covering it (`*.ns.svc.cluster.local`, then `*.svc.cluster.local`,
//! ... `*`), as Istio does. Rules for one host merge as Istio merges them, first in
//! [`Precedence`] order first: the first traffic policy applies, and a subset is added when no
//! earlier rule defined one of that name.

use std::collections::HashMap;

use super::{
    hosts::{canonical_host, hosts_covering},
    precedence::Precedence,
    resources::{DestinationRule, Located, Resources, Subset, TrafficPolicy},
};

/// A rule and its place in its host's order.
pub(crate) struct Ranked<'a> {
    pub rule: Located<&'a DestinationRule>,
    pub precedence: Precedence,
}

/// The DestinationRules of a load by canonical host, each host's first first.
pub(crate) struct DestinationRules<'a> {
    by_host: HashMap<String, Vec<Ranked<'a>>>,
}

impl<'a> DestinationRules<'a> {
    pub fn new(resources: &'a Resources) -> Self {
        let mut by_host: HashMap<String, Vec<Ranked<'a>>> = HashMap::new();
        for (load_order, rule) in resources.of::<DestinationRule>().enumerate() {
            let meta = &rule.resource.metadata;
            let host = canonical_host(&rule.resource.spec.host, &meta.namespace);
            let precedence = Precedence::of(meta, load_order);
            by_host
                .entry(host)
                .or_default()
                .push(Ranked { rule, precedence });
        }
        for rules in by_host.values_mut() {
            rules.sort_by(|a, b| a.precedence.cmp(&b.precedence));
        }
        Self { by_host }
    }

    /// The rules that apply to the Service `fqdn`, first first; empty when none does.
    pub fn for_service(&self, fqdn: &str) -> &[Ranked<'a>] {
        hosts_covering(fqdn)
            .find_map(|host| self.by_host.get(&host))
            .map_or(&[], Vec::as_slice)
    }

    /// Every host with its rules, first first.
    pub fn hosts(&self) -> impl Iterator<Item = (&str, &[Ranked<'a>])> {
        self.by_host
            .iter()
            .map(|(host, rules)| (host.as_str(), rules.as_slice()))
    }
}

/// What the rules for one host amount to.
#[derive(Clone, Debug, Default)]
pub(crate) struct Merged<'a> {
    pub traffic_policy: Option<&'a TrafficPolicy>,
    /// By name, the first definition of each.
    pub subsets: Vec<&'a Subset>,
}

impl<'a> Merged<'a> {
    pub fn of(rules: &[Ranked<'a>]) -> Self {
        let mut merged = Self::default();
        for Ranked { rule, .. } in rules {
            let spec = &rule.resource.spec;
            merged.traffic_policy = merged.traffic_policy.or(spec.traffic_policy.as_deref());
            for subset in &spec.subsets {
                if !merged.subsets.iter().any(|taken| taken.name == subset.name) {
                    merged.subsets.push(subset);
                }
            }
        }
        merged
    }
}
