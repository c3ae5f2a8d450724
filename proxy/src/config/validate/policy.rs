//! DestinationRule traffic policies: what Istio would refuse, what strait cannot do as written,
//! and what another rule for the same host overrides.

use std::collections::HashMap;

use super::first_seen;
use crate::config::{
    diagnostics::{Diagnostic, Finding},
    policy::{consistent_hash, HashKeyProblem},
    resources::{DestinationRule, LoadBalancerSettings, Resources, SimpleLb, TrafficPolicy},
    rules::{DestinationRules, Ranked},
};

/// What strait does instead of a load balancer it does not implement.
const FALLBACK: &str =
    "requests are balanced by strait's default (least request, weighted by latency)";

/// Checks one DestinationRule on its own.
pub(super) fn check(rule: &DestinationRule) -> Vec<Finding> {
    let spec = &rule.spec;
    let host = spec
        .traffic_policy
        .as_deref()
        .map(|policy| (policy, "spec.trafficPolicy".to_owned()));
    let subsets = spec.subsets.iter().enumerate().filter_map(|(i, subset)| {
        let policy = subset.traffic_policy.as_ref()?;
        Some((policy, format!("spec.subsets[{i}].trafficPolicy")))
    });
    host.into_iter()
        .chain(subsets)
        .flat_map(|(policy, field)| traffic_policy(policy, &field))
        .collect()
}

fn traffic_policy(policy: &TrafficPolicy, field: &str) -> Vec<Finding> {
    let mut findings: Vec<Finding> = load_balancer(policy.load_balancer.as_ref(), field)
        .into_iter()
        .collect();
    let mut ports = HashMap::new();
    for (i, settings) in policy.port_level_settings.iter().enumerate() {
        let field = format!("{field}.portLevelSettings[{i}]");
        findings.extend(load_balancer(settings.load_balancer.as_ref(), &field));
        let number = settings.port.number;
        if let Some(first) = first_seen(&mut ports, number, i) {
            let message =
                format!("port {number} already has portLevelSettings[{first}], which applies: this entry is ignored");
            findings.push(Finding::warning(format!("{field}.port.number"), message));
        }
    }
    findings
}

fn load_balancer(settings: Option<&LoadBalancerSettings>, field: &str) -> Option<Finding> {
    let settings = settings?;
    let field = format!("{field}.loadBalancer");
    match (settings.simple, &settings.consistent_hash) {
        (Some(_), Some(_)) => Some(Finding::error(
            field,
            "simple and consistentHash are mutually exclusive: set one",
        )),
        (Some(SimpleLb::Passthrough), None) => Some(Finding::warning(
            format!("{field}.simple"),
            format!("PASSTHROUGH is not supported by strait; {FALLBACK}"),
        )),
        (None, Some(written)) => consistent_hash(written).err().map(|problem| {
            let field = format!("{field}.consistentHash");
            match problem {
                HashKeyProblem::Several => Finding::error(field, problem.message()),
                _ => Finding::warning(
                    field,
                    format!("{}; requests are balanced at random", problem.message()),
                ),
            }
        }),
        _ => None,
    }
}

/// Rules for one host merge (see [`crate::config::rules`]): a traffic policy or subset that an
/// earlier rule already sets is ignored, and each such one is named with the rule that wins.
pub(super) fn check_merged(resources: &Resources) -> Vec<Diagnostic> {
    let rules = DestinationRules::new(resources);
    let mut diagnostics = Vec::new();
    for (host, ranked) in rules.hosts() {
        diagnostics.extend(overridden_policies(host, ranked));
        diagnostics.extend(overridden_subsets(host, ranked));
    }
    diagnostics
}

fn overridden_policies(host: &str, ranked: &[Ranked<'_>]) -> Vec<Diagnostic> {
    let mut setters = ranked
        .iter()
        .filter(|r| r.rule.resource.spec.traffic_policy.is_some());
    let Some(winner) = setters.next() else {
        return Vec::new();
    };
    setters
        .map(|later| {
            let message = format!(
                "{host} takes its traffic policy from {}: this one is ignored",
                first_rule(winner, later)
            );
            place(later, Finding::warning("spec.trafficPolicy", message))
        })
        .collect()
}

fn overridden_subsets(host: &str, ranked: &[Ranked<'_>]) -> Vec<Diagnostic> {
    let mut definers: HashMap<&str, &Ranked<'_>> = HashMap::new();
    let mut diagnostics = Vec::new();
    for later in ranked {
        for (i, subset) in later.rule.resource.spec.subsets.iter().enumerate() {
            let winner = *definers.entry(subset.name.as_str()).or_insert(later);
            if std::ptr::eq(winner, later) {
                continue;
            }
            let message = format!(
                "subset {} of {host} is defined by {}: this one is ignored",
                subset.name,
                first_rule(winner, later)
            );
            diagnostics.push(place(
                later,
                Finding::warning(format!("spec.subsets[{i}].name"), message),
            ));
        }
    }
    diagnostics
}

/// `DestinationRule NS/NAME (FILE#DOC), which goes first because ...`
fn first_rule(winner: &Ranked<'_>, later: &Ranked<'_>) -> String {
    let meta = &winner.rule.resource.metadata;
    format!(
        "DestinationRule {}/{} ({}), which goes first because {}",
        meta.namespace,
        meta.name,
        winner.rule.source,
        winner.precedence.why_before(&later.precedence)
    )
}

fn place(ranked: &Ranked<'_>, finding: Finding) -> Diagnostic {
    finding.place(&ranked.rule.source, &ranked.rule.subject())
}
