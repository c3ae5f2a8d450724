//! `cargo xtask lab`: strait on one machine, showing what it is for. Three replica pods each
//! serve two Services: `greeter` (10.96.0.10:80, plain TCP, the seed's scenario) and
//! `greeter-grpc` (10.96.0.11:50051, gRPC). Every 2 s a client pod plays a round: one TCP call
//! (a new connection, which strait balances as a whole) and 30 gRPC calls over ONE HTTP/2
//! connection, which strait balances call by call. Each reply names its replica; a round prints
//! who answered.
//!
//! `--scenario NAME` plays one of the seed's stories instead (`scenario/`), with the manifests
//! it adds from `tests/lab/scenarios`. `--screenshot PNG` keeps a picture of strait's live
//! dashboard with the lab's traffic on it (`screenshot.rs`).
//!
//! The lab uses a fixed subnet (10.250.0.0/24) so that `tests/lab/manifests` can name the pod
//! addresses; the tests build labs of their own with generated manifests.

mod round;
mod scenario;
mod screenshot;

use std::{
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use strait_tests::{
    greeter::{Implementation, ServeOptions},
    lab::{self, ChildHandle, Lab, LabConfig, Pod},
};

use crate::cargo;
pub use scenario::Scenario;

const PREFIX: &str = "demo";
const SUBNET_OCTET: u8 = 250;
pub(crate) const REPLICAS: [&str; 3] = ["replica-1", "replica-2", "replica-3"];
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

/// Builds, runs the lab and plays `scenario`'s rounds until a stop signal; with `once`, plays
/// one round and fails unless it passed (see [`scenario::Played::problems`]); with
/// `screenshot`, plays on (after the `once` round) until the dashboard is kept there.
pub fn run(scenario: Scenario, once: bool, screenshot: Option<&Path>) -> Result<()> {
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
    let mut running = Running::start(config, &manifests_dir(), scenario)?;
    running.strait.echo("[strait]");
    running.describe(match (once, screenshot) {
        (_, Some(_)) => "until the dashboard screenshot is taken, then it is torn down",
        (true, None) => "one round, then it is torn down",
        (false, None) => "Ctrl-C tears it all down",
    });
    let outcome = match (once, screenshot) {
        (true, None) => running.play_once(),
        (false, None) => running.play_live(),
        (once, Some(png)) => (if once { running.play_once() } else { Ok(()) })
            .and_then(|()| running.screenshot(png))
            .map(|_| println!("lab: dashboard screenshot: {}", png.display())),
    };
    running.tear_down()?;
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

/// The lab with its replicas, client and strait running, playing a scenario.
struct Running {
    lab: Lab,
    client: Pod,
    strait: ChildHandle,
    scenario: Scenario,
}

impl Running {
    /// Builds the lab `config` names (its subnet must be the one `manifests` give the pods) and
    /// returns once every server listens and strait is ready, with `scenario`'s manifests too.
    fn start(config: LabConfig, manifests: &Path, scenario: Scenario) -> Result<Self> {
        let mut lab = Lab::with_config(config)?;
        for name in REPLICAS {
            start_replica(&mut lab, name, manifests, scenario)?;
        }
        let client = lab.add_pod("client")?;
        check_manifest_address(manifests, &client)?;
        let mut extra = scenario.strait_args(&lab)?;
        if let Some(more) = scenario.manifests() {
            extra.extend(["--config".into(), more.into_os_string()]);
        }
        let strait = lab.start_strait(manifests, &extra)?;
        Ok(Self {
            lab,
            client,
            strait,
            scenario,
        })
    }

    /// What runs where; `until`: how long it stays up.
    fn describe(&self, until: &str) {
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
            "  client     {}: a round every {} s",
            self.client.ip,
            ROUND_EVERY.as_secs()
        );
        if let Some(manifests) = self.scenario.manifests() {
            println!(
                "  scenario   {}: {}\n             {}",
                self.scenario.name(),
                self.scenario.story(),
                manifests.display()
            );
            return self.describe_look();
        }
        println!(
            "  services   greeter {TCP_SERVICE} (TCP): 1 call on a new connection; strait \
             balances connections"
        );
        println!(
            "             greeter-grpc {GRPC_SERVICE} (gRPC): {} calls on ONE HTTP/2 \
             connection; strait balances each call",
            round::GRPC_CALLS
        );
        self.describe_look();
    }

    fn describe_look(&self) {
        let node = self.lab.node_netns();
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
            self.play_round(number, false)?;
            next += ROUND_EVERY;
            // Pacing, not synchronisation: the next round starts on the clock.
            let until_next = next.saturating_duration_since(Instant::now());
            lab::wait_until(until_next, stop_requested);
        }
        Ok(())
    }

    /// Plays rounds until the dashboard, rendered meanwhile, shows every Service the scenario
    /// calls live; keeps it at `png` and returns the rendered DOM.
    fn screenshot(&mut self, png: &Path) -> Result<String> {
        let node = self.lab.node();
        let services = self.scenario.services();
        thread::scope(|scope| {
            let taking = scope.spawn(|| screenshot::take(node, &services, png));
            let mut number = 0;
            let mut next = Instant::now();
            while !taking.is_finished() && !stop_requested() {
                number += 1;
                self.play_round(number, false)?;
                next += ROUND_EVERY;
                // Pacing, not synchronisation: rounds keep the rates up while Chromium renders.
                let until_next = next.saturating_duration_since(Instant::now());
                lab::wait_until(until_next, || taking.is_finished() || stop_requested());
            }
            taking.join().expect("the screenshot thread")
        })
    }

    /// Plays one round and fails unless it passed ([`scenario::Played::problems`]). For the
    /// demo, one round on a fresh strait is a sound check: the balancer starts every replica
    /// at the same estimate and marks one slower only after it answered, so each replica gets
    /// some of the calls.
    fn play_once(&mut self) -> Result<()> {
        let problems = self.play_round(1, true)?.problems;
        ensure!(problems.is_empty(), "{}", problems.join("\n"));
        match self.scenario {
            Scenario::Demo => println!(
                "lab: every call answered; every replica answered gRPC calls over one connection"
            ),
            scenario => println!("lab: {}: as the story says", scenario.name()),
        }
        Ok(())
    }

    /// Plays and prints round `number` (`check`: the `--once` round).
    fn play_round(&mut self, number: u64, check: bool) -> Result<scenario::Played> {
        if let Some(status) = self.strait.try_wait()? {
            bail!("strait exited: {status}{}", self.strait.stderr_report());
        }
        let played = self.scenario.play(&mut self.lab, &self.client, check)?;
        println!("round {number}\n{}", played.report);
        for problem in &played.problems {
            println!("  PROBLEM: {problem}");
        }
        Ok(played)
    }

    fn tear_down(self) -> Result<()> {
        println!("lab: tearing down");
        let status = self.strait.stop(STRAIT_GRACE)?;
        println!("lab: strait exited: {status}");
        self.scenario.clean(&self.lab);
        drop(self.lab);
        println!("lab: removed");
        Ok(())
    }
}

/// A replica pod: the TCP server and the gRPC Greeter (as `scenario` wants it), both naming it
/// in their replies.
fn start_replica(lab: &mut Lab, name: &str, manifests: &Path, scenario: Scenario) -> Result<()> {
    let pod = lab.add_pod(name)?;
    check_manifest_address(manifests, &pod)?;
    lab.serve_agent(&pod, TCP_PORT, name)?;
    let listen = SocketAddr::from(([0, 0, 0, 0], GRPC_PORT));
    let options = scenario.greeter(ServeOptions::new(listen, name));
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

    /// What `cargo xtask lab --scenario SCENARIO --once` checks, on the binaries already built
    /// (`cargo xtask test` builds them first).
    fn play_once(test: &str, scenario: Scenario) -> Result<()> {
        if !lab::require_privileges(test) {
            return Ok(());
        }
        // The lab's own subnet, so the checked-in manifests apply, but a prefix of its own: a
        // `cargo xtask lab` running meanwhile is left alone (labs are isolated from each other).
        let config = LabConfig {
            subnet_octet: SUBNET_OCTET,
            ..LabConfig::unique(&format!("xtask-lab-{}", scenario.name()))
        };
        let mut running = Running::start(config, &manifests_dir(), scenario)?;
        let outcome = running.play_once();
        running.tear_down()?;
        outcome
    }

    /// What `cargo xtask lab --screenshot PNG` shows: both of the lab's Services live on the
    /// dashboard, called by the client pod's workload; the PNG is kept in `target/tmp`.
    #[test]
    fn the_dashboard_shows_the_labs_services_live() -> Result<()> {
        const TEST: &str = "the_dashboard_shows_the_labs_services_live";
        if !lab::require_privileges(TEST) {
            return Ok(());
        }
        if strait_tests::browser::Chromium::find().is_none() {
            lab::skip_or_fail(TEST, "chromium not installed: apt-get install chromium");
            return Ok(());
        }
        let config = LabConfig {
            subnet_octet: SUBNET_OCTET,
            ..LabConfig::unique("xtask-lab-dashboard")
        };
        let png = cargo::target_dir()?.join("tmp/strait-lab-dashboard.png");
        fs::create_dir_all(png.parent().expect("a file in a directory"))?;
        let mut running = Running::start(config, &manifests_dir(), Scenario::Demo)?;
        let dom = running.screenshot(&png);
        running.tear_down()?;
        let dom = dom?;
        assert!(
            dom.contains(">client<"),
            "no client node in the graph:\n{dom}"
        );
        eprintln!("\nlab dashboard screenshot: {}", png.display());
        Ok(())
    }

    #[test]
    fn one_round_reaches_every_replica_over_one_grpc_connection() -> Result<()> {
        play_once(
            "one_round_reaches_every_replica_over_one_grpc_connection",
            Scenario::Demo,
        )
    }

    #[test]
    fn the_canary_scenario_splits_90_10() -> Result<()> {
        play_once("the_canary_scenario_splits_90_10", Scenario::Canary)
    }

    #[test]
    fn the_header_scenario_sends_marked_calls_to_v2() -> Result<()> {
        play_once(
            "the_header_scenario_sends_marked_calls_to_v2",
            Scenario::Header,
        )
    }

    #[test]
    fn the_chaos_scenario_ends_calls_at_their_deadline() -> Result<()> {
        play_once(
            "the_chaos_scenario_ends_calls_at_their_deadline",
            Scenario::Chaos,
        )
    }

    #[test]
    fn the_ingress_scenario_reaches_the_service_through_the_tls_gateway() -> Result<()> {
        play_once(
            "the_ingress_scenario_reaches_the_service_through_the_tls_gateway",
            Scenario::Ingress,
        )
    }

    #[test]
    fn the_retries_scenario_hides_a_failing_replica() -> Result<()> {
        play_once(
            "the_retries_scenario_hides_a_failing_replica",
            Scenario::Retries,
        )
    }
}
