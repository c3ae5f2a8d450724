//! `cargo xtask lab --scenario NAME`: the seed's stories, played on the lab's gRPC Service
//! (`greeter-grpc`, reached through eBPF capture). Each story is a module here with the
//! manifests it adds in `tests/lab/scenarios/NAME.yaml`; `demo` is the lab's own round
//! (`round.rs`). A new story is a variant, a module and a manifest file.

mod canary;
mod chaos;
mod header;
mod ingress;
mod retries;

use std::{ffi::OsString, path::PathBuf};

use anyhow::Result;
use clap::ValueEnum;
use strait_tests::{
    greeter::{CallOptions, CallReport, CallSummary, Implementation, ServeOptions},
    lab::{Lab, Pod},
};

use super::{round::Round, GRPC_SERVICE, REPLICAS};
use crate::cargo;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// A TCP call and 30 gRPC calls over one connection: strait balances each call.
    Demo,
    /// The seed's canary: 90 % of the calls to version v1, 10 % to v2.
    Canary,
    /// A client marked `x-canary: true` reaches only v2; others get the 90/10 split.
    Header,
    /// The seed's chaos test: a 10 s delay on every call; calls with a 2 s deadline end then.
    Chaos,
    /// replica-2 fails every call with UNAVAILABLE; strait retries, every call succeeds.
    Retries,
    /// The TLS ingress Gateway: a client calls greeter.example.com:443 over TLS (SNI, ALPN h2)
    /// and its calls are balanced one by one.
    Ingress,
}

/// What a round showed, and what is wrong with it (a `--once` check fails on any problem).
pub struct Played {
    pub report: String,
    pub problems: Vec<String>,
}

impl Scenario {
    pub fn name(self) -> String {
        self.to_possible_value()
            .expect("no variant is skipped")
            .get_name()
            .to_owned()
    }

    /// One line saying what the scenario shows.
    pub fn story(self) -> String {
        let value = self.to_possible_value().expect("no variant is skipped");
        value
            .get_help()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    /// The Services (FQDNs) the scenario's rounds call, as the dashboard lists them.
    pub fn services(self) -> Vec<&'static str> {
        let grpc = "greeter-grpc.default.svc.cluster.local";
        match self {
            Scenario::Demo => vec!["greeter.default.svc.cluster.local", grpc],
            _ => vec![grpc],
        }
    }

    /// The manifests the scenario adds to the lab's own, if any.
    pub fn manifests(self) -> Option<PathBuf> {
        let file = format!("tests/lab/scenarios/{}.yaml", self.name());
        (self != Scenario::Demo).then(|| cargo::workspace_root().join(file))
    }

    /// What strait needs besides the manifests (made now, for this lab).
    pub fn strait_args(self, lab: &Lab) -> Result<Vec<OsString>> {
        match self {
            Scenario::Ingress => ingress::strait_args(lab),
            _ => Ok(Vec::new()),
        }
    }

    /// Removes what [`strait_args`](Self::strait_args) made.
    pub fn clean(self, lab: &Lab) {
        if self == Scenario::Ingress {
            ingress::clean(lab);
        }
    }

    /// The options of a replica's gRPC Greeter (`options` names it).
    pub fn greeter(self, options: ServeOptions) -> ServeOptions {
        match self {
            Scenario::Retries => retries::greeter(options),
            _ => options,
        }
    }

    /// Plays one round from `client`. `check` is a `--once` round: more calls where a share is
    /// checked, and the share checked.
    pub fn play(self, lab: &mut Lab, client: &Pod, check: bool) -> Result<Played> {
        match self {
            Scenario::Demo => {
                let round = Round::play(lab, client)?;
                Ok(Played {
                    report: round.report(),
                    problems: round.problems(),
                })
            }
            Scenario::Canary => canary::play(lab, client, check),
            Scenario::Header => header::play(lab, client, check),
            Scenario::Chaos => chaos::play(lab, client),
            Scenario::Retries => retries::play(lab, client, check),
            Scenario::Ingress => ingress::play(lab, client),
        }
    }
}

/// The `version` label of each replica's Pod (`tests/lab/manifests/lab.yaml`).
fn version(replica: &str) -> &'static str {
    match replica {
        "replica-3" => "v2",
        _ => "v1",
    }
}

/// Calls from `client` to the gRPC Service over one connection, tuned by `tune`.
fn grpc_calls(
    lab: &mut Lab,
    client: &Pod,
    tune: impl FnOnce(CallOptions) -> CallOptions,
) -> Result<CallReport> {
    let options = tune(CallOptions::new(GRPC_SERVICE.parse()?));
    lab.greeter_call(client, Implementation::Rust, &options)
}

/// Calls answered by replicas of `version`.
fn version_calls(summary: &CallSummary, version: &str) -> u64 {
    REPLICAS
        .iter()
        .filter(|replica| self::version(replica) == version)
        .map(|replica| summary.from_instance(replica))
        .sum()
}

/// `v1 902 (90.2 %), v2 98 (9.8 %)`: calls by the version that answered.
fn version_shares(summary: &CallSummary) -> String {
    ["v1", "v2"]
        .map(|version| {
            let calls = version_calls(summary, version);
            let percent = 100.0 * calls as f64 / summary.calls.max(1) as f64;
            format!("{version} {calls} ({percent:.1} %)")
        })
        .join(", ")
}

/// A problem when some calls failed: how many, by status.
fn failures(summary: &CallSummary, what: &str) -> Option<String> {
    (summary.ok < summary.calls).then(|| {
        format!(
            "{} of {} {what} failed: {:?}",
            summary.calls - summary.ok,
            summary.calls,
            summary.by_code
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(by_instance: &[(&str, u64)]) -> CallSummary {
        let mut summary = CallSummary::default();
        for (name, n) in by_instance {
            summary.by_instance.insert(name.to_string(), *n);
            summary.calls += n;
        }
        summary.ok = summary.calls;
        summary
    }

    #[test]
    fn shares_are_by_version() {
        let summary = summary(&[("replica-1", 450), ("replica-2", 452), ("replica-3", 98)]);
        assert_eq!(version_shares(&summary), "v1 902 (90.2 %), v2 98 (9.8 %)");
        assert_eq!(failures(&summary, "calls"), None);
    }

    #[test]
    fn every_scenario_but_the_demo_has_its_manifests() {
        for scenario in Scenario::value_variants() {
            assert!(!scenario.story().is_empty(), "{scenario:?}");
            match scenario.manifests() {
                Some(path) => assert!(path.is_file(), "{}", path.display()),
                None => assert_eq!(*scenario, Scenario::Demo),
            }
        }
    }
}
