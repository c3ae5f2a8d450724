//! `cargo xtask lab`: strait on one machine, showing what it is for. Three replica pods each
//! serve two Services: `greeter` (10.96.0.10:80, plain TCP, the seed's scenario) and
//! `greeter-grpc` (10.96.0.11:50051, gRPC). Every 2 s a client pod plays a round: one TCP call
//! (a new connection, which strait balances as a whole) and 30 gRPC calls over ONE HTTP/2
//! connection, which strait balances call by call. Each reply names its replica; a round prints
//! who answered.
//!
//! The lab uses a fixed subnet (10.250.0.0/24) so that `tests/lab/manifests` can name the pod
//! addresses; the tests build labs of their own with generated manifests.

mod round;

use std::{
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use strait_tests::{
    greeter::{Implementation, ServeOptions},
    lab::{self, ChildHandle, Lab, LabConfig, Pod},
};

use crate::cargo;
use round::Round;

const PREFIX: &str = "demo";
const SUBNET_OCTET: u8 = 250;
const REPLICAS: [&str; 3] = ["replica-1", "replica-2", "replica-3"];
const TCP_PORT: u16 = 8080;
const GRPC_PORT: u16 = 50051;
const TCP_SERVICE: &str = "10.96.0.10:80";
const GRPC_SERVICE: &str = "10.96.0.11:50051";
/// From the start of one round to the start of the next.
const ROUND_EVERY: Duration = Duration::from_secs(2);
const ADMIN: &str = lab::STRAIT_ADMIN;
const STRAIT_GRACE: Duration = Duration::from_secs(10);

static STOP: AtomicBool = AtomicBool::new(false);

/// Removes every lab: this one and leftovers of crashed test runs.
pub fn down() -> Result<()> {
    ensure_root()?;
    Lab::down_leftovers("")?;
    println!("lab: nothing left");
    Ok(())
}

/// Builds, runs the lab and plays rounds until a stop signal; with `once`, plays one round and
/// fails unless it passed (see [`Round::problems`]).
pub fn run(once: bool) -> Result<()> {
    ensure_root()?;
    // A run after a crash starts clean.
    Lab::down_leftovers(PREFIX)?;
    crate::build_all()?;
    lab::ensure_bpffs()?;
    on_stop_signals()?;

    let config = LabConfig {
        prefix: PREFIX.into(),
        subnet_octet: SUBNET_OCTET,
    };
    let mut scenario = Scenario::start(config, &manifests_dir())?;
    scenario.strait.echo("[strait]");
    scenario.describe(once);
    let outcome = if once {
        scenario.play_once()
    } else {
        scenario.play_live()
    };
    scenario.tear_down()?;
    outcome
}

pub(crate) fn ensure_root() -> Result<()> {
    ensure!(
        lab::is_root(),
        "the lab needs root (network namespaces, cgroups, BPF): run it as root"
    );
    Ok(())
}

/// Ctrl-C (and SIGTERM, SIGHUP) set [`stop_requested`] instead of killing us, so teardown runs.
pub(crate) fn on_stop_signals() -> Result<()> {
    extern "C" fn stop(_: std::ffi::c_int) {
        STOP.store(true, Ordering::Relaxed);
    }
    let action = SigAction::new(SigHandler::Handler(stop), SaFlags::empty(), SigSet::empty());
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { sigaction(signal, &action) }.with_context(|| format!("handling {signal}"))?;
    }
    Ok(())
}

pub(crate) fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// `tests/lab/manifests`: the Services and Pods strait loads.
fn manifests_dir() -> PathBuf {
    cargo::workspace_root().join("tests/lab/manifests")
}

/// The lab with its replicas, client and strait running.
struct Scenario {
    lab: Lab,
    client: Pod,
    strait: ChildHandle,
}

impl Scenario {
    /// Builds the lab `config` names (its subnet must be the one `manifests` give the pods) and
    /// returns once every server listens and strait is ready.
    fn start(config: LabConfig, manifests: &Path) -> Result<Self> {
        let mut lab = Lab::with_config(config)?;
        for name in REPLICAS {
            start_replica(&mut lab, name, manifests)?;
        }
        let client = lab.add_pod("client")?;
        check_manifest_address(manifests, &client)?;
        let strait = lab.start_strait(manifests, &[] as &[&str])?;
        Ok(Self {
            lab,
            client,
            strait,
        })
    }

    fn describe(&self, once: bool) {
        let until = if once {
            "one round, then it is torn down"
        } else {
            "Ctrl-C tears it all down"
        };
        println!("lab: up ({}), {until}", self.lab.subnet());
        let node = self.lab.node_netns();
        let outbound = format!("{}:{}", self.lab.node_ip(), lab::OUTBOUND_PORT);
        println!("  node       {node}: strait, outbound {outbound}");
        for pod in self
            .lab
            .pods()
            .iter()
            .filter(|pod| pod.name != self.client.name)
        {
            println!(
                "  {:<10} {}: TCP server :{TCP_PORT}, gRPC Greeter :{GRPC_PORT}",
                pod.name, pod.ip
            );
        }
        println!(
            "  client     {}: a round every {} s, calling both Services",
            self.client.ip,
            ROUND_EVERY.as_secs()
        );
        println!(
            "  services   greeter {TCP_SERVICE} (TCP): 1 call on a new connection; strait \
             balances connections"
        );
        println!(
            "             greeter-grpc {GRPC_SERVICE} (gRPC): {} calls on ONE HTTP/2 \
             connection; strait balances each call",
            round::GRPC_CALLS
        );
        println!(
            "  look:      bpftool cgroup tree {}",
            self.lab.cgroup_dir().display()
        );
        println!("             ip netns exec {node} curl -s {ADMIN}/stats/prometheus");
    }

    /// Plays a round every [`ROUND_EVERY`] until a stop signal. A failed round is shown, not
    /// fatal: the lab keeps running.
    fn play_live(&mut self) -> Result<()> {
        let mut next = Instant::now();
        let mut number = 0;
        while !stop_requested() {
            number += 1;
            self.play_round(number)?;
            next += ROUND_EVERY;
            // Pacing, not synchronisation: the next round starts on the clock.
            let until_next = next.saturating_duration_since(Instant::now());
            lab::wait_until(until_next, stop_requested);
        }
        Ok(())
    }

    /// Plays one round and fails unless it passed ([`Round::problems`]). One round on a fresh
    /// strait is a sound check: the balancer starts every replica at the same estimate and
    /// marks one slower only after it answered, so each replica gets some of the calls.
    fn play_once(&mut self) -> Result<()> {
        let problems = self.play_round(1)?.problems();
        ensure!(problems.is_empty(), "{}", problems.join("\n"));
        println!("lab: every call answered; every replica answered gRPC calls over one connection");
        Ok(())
    }

    /// Plays and prints round `number`.
    fn play_round(&mut self, number: u64) -> Result<Round> {
        if let Some(status) = self.strait.try_wait()? {
            bail!("strait exited: {status}{}", self.strait.stderr_report());
        }
        let round = Round::play(&mut self.lab, &self.client)?;
        println!("round {number}\n{}", round.report());
        Ok(round)
    }

    fn tear_down(self) -> Result<()> {
        println!("lab: tearing down");
        let status = self.strait.stop(STRAIT_GRACE)?;
        println!("lab: strait exited: {status}");
        drop(self.lab);
        println!("lab: removed");
        Ok(())
    }
}

/// A replica pod: the TCP server and the gRPC Greeter, both naming it in their replies.
fn start_replica(lab: &mut Lab, name: &str, manifests: &Path) -> Result<()> {
    let pod = lab.add_pod(name)?;
    check_manifest_address(manifests, &pod)?;
    lab.serve_agent(&pod, TCP_PORT, name)?;
    let listen = SocketAddr::from(([0, 0, 0, 0], GRPC_PORT));
    let options = ServeOptions::new(listen, name);
    lab.serve_greeter(&pod, Implementation::Rust, &options)?;
    Ok(())
}

/// The static manifests fix the pods' addresses: fail early if the lab disagrees.
fn check_manifest_address(manifests: &Path, pod: &Pod) -> Result<()> {
    let path = manifests.join("lab.yaml");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        text.contains(&format!("podIP: {}", pod.ip)),
        "{} does not give {} the address {} the lab gave it",
        path.display(),
        pod.name,
        pod.ip
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `cargo xtask lab --once` checks, on the binaries already built (`cargo xtask
    /// test` builds them first).
    #[test]
    fn one_round_reaches_every_replica_over_one_grpc_connection() -> Result<()> {
        if !lab::require_privileges("one_round_reaches_every_replica_over_one_grpc_connection") {
            return Ok(());
        }
        // The lab's own subnet, so the checked-in manifests apply, but a prefix of its own: a
        // `cargo xtask lab` running meanwhile is left alone (labs are isolated from each other).
        let config = LabConfig {
            subnet_octet: SUBNET_OCTET,
            ..LabConfig::unique("xtask-lab-round")
        };
        let mut scenario = Scenario::start(config, &manifests_dir())?;
        scenario.play_once()
    }
}
