//! `cargo xtask lab`: the seed's scenario on one machine. A client pod calls the Service
//! `greeter` (10.96.0.10:80) every 2 s; strait, in the node namespace with eBPF capture on the
//! lab cgroup, balances the calls over three replicas, and each reply names the replica.
//!
//! The lab uses a fixed subnet (10.250.0.0/24) so that `tests/lab/manifests` can name the pod
//! addresses; the tests build labs of their own with generated manifests.

use std::{
    fs,
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::{bail, ensure, Context, Result};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use serde_json::Value;
use strait_tests::lab::{self, ChildHandle, Lab, LabConfig, Pod};

use crate::cargo;

const PREFIX: &str = "demo";
const SUBNET_OCTET: u8 = 250;
const REPLICAS: usize = 3;
const REPLICA_PORT: u16 = 8080;
const SERVICE: &str = "10.96.0.10:80";
const CALL_EVERY_MS: &str = "2000";
const ADMIN: &str = lab::STRAIT_ADMIN;
const STRAIT_GRACE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(200);

static STOP: AtomicBool = AtomicBool::new(false);

/// Removes every lab: this one and leftovers of crashed test runs.
pub fn down() -> Result<()> {
    ensure_root()?;
    Lab::down_leftovers("")?;
    println!("lab: nothing left");
    Ok(())
}

pub fn run() -> Result<()> {
    ensure_root()?;
    // A run after a crash starts clean.
    Lab::down_leftovers(PREFIX)?;
    crate::build_all()?;
    lab::ensure_bpffs()?;
    on_stop_signals()?;

    let mut lab = Lab::with_config(LabConfig {
        prefix: PREFIX.into(),
        subnet_octet: SUBNET_OCTET,
    })?;
    let manifests = cargo::workspace_root().join("tests/lab/manifests");
    for n in 1..=REPLICAS {
        start_replica(&mut lab, &format!("replica-{n}"), &manifests)?;
    }
    let client = lab.add_pod("client")?;
    let strait = start_strait(&mut lab, &manifests)?;
    describe(&lab, &client);
    let outcome = stream_calls(&mut lab, &client, &strait);

    println!("lab: tearing down");
    let status = strait.stop(STRAIT_GRACE)?;
    println!("lab: strait exited: {status}");
    drop(lab);
    println!("lab: removed");
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

fn start_replica(lab: &mut Lab, name: &str, manifests: &Path) -> Result<()> {
    let pod = lab.add_pod(name)?;
    check_manifest_address(manifests, &pod)?;
    lab.serve_agent(&pod, REPLICA_PORT, name)?;
    Ok(())
}

/// The static manifests fix the replicas' addresses: fail early if the lab disagrees.
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

fn start_strait(lab: &mut Lab, manifests: &Path) -> Result<ChildHandle> {
    let strait = lab.start_strait(manifests, &[] as &[&str])?;
    strait.echo("[strait]");
    Ok(strait)
}

fn describe(lab: &Lab, client: &Pod) {
    let cgroup = lab.cgroup_dir().display();
    let node = lab.node_netns();
    println!("lab: up ({}), Ctrl-C tears it all down", lab.subnet());
    let outbound = format!("{}:15001", lab.node_ip());
    println!("  node      {node}: strait, outbound {outbound}");
    for pod in lab.pods().iter().filter(|pod| pod.name != client.name) {
        println!("  {:<9} {}:{REPLICA_PORT}", pod.name, pod.ip);
    }
    println!(
        "  client    {} calls greeter {SERVICE} every 2 s",
        client.ip
    );
    println!("  look:     bpftool cgroup tree {cgroup}");
    println!("            ip netns exec {node} curl -s {ADMIN}/stats/prometheus");
}

/// Prints each call of the client until a stop signal, or until the client or strait ends.
fn stream_calls(lab: &mut Lab, client: &Pod, strait: &ChildHandle) -> Result<()> {
    let mut cmd = lab.pod_command(client, lab::lab_agent_bin());
    cmd.args(["call", "--to", SERVICE, "--send", "64"]).args([
        "--every",
        CALL_EVERY_MS,
        "--count",
        "0",
    ]);
    let mut caller = lab.spawn(cmd)?;
    while !stop_requested() {
        if let Some(status) = strait.try_wait()? {
            bail!("strait exited: {status}");
        }
        match caller.next_line(POLL) {
            Ok(Some(line)) => println!("{}", summarize(&line)),
            Ok(None) => bail!("the client exited:\n{}", caller.stderr_tail()),
            // Nothing yet: look at the stop flag again.
            Err(_) => {}
        }
    }
    Ok(())
}

/// `client -> 10.96.0.10:80: replica-2 received 64 (connect 95 us, total 610 us)`.
fn summarize(line: &str) -> String {
    let Ok(call) = serde_json::from_str::<Value>(line) else {
        return format!("[client] {line}");
    };
    let to = call["to"].as_str().unwrap_or("?");
    if call["ok"] == true {
        format!(
            "client -> {to}: {} (peer {}, connect {} us, total {} us)",
            call["reply"].as_str().unwrap_or("?"),
            call["peer"].as_str().unwrap_or("?"),
            call["connect_us"],
            call["total_us"]
        )
    } else {
        format!(
            "client -> {to}: FAILED {}",
            call["error"].as_str().unwrap_or("?")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_summarized() {
        let ok = r#"{"ok":true,"to":"10.96.0.10:80","peer":"10.96.0.10:80","local":"10.250.0.5:4000","sent":64,"received":22,"reply":"replica-2 received 64","connect_us":95,"total_us":610}"#;
        assert_eq!(
            summarize(ok),
            "client -> 10.96.0.10:80: replica-2 received 64 (peer 10.96.0.10:80, connect 95 us, total 610 us)"
        );
        let failed = r#"{"ok":false,"to":"10.96.0.10:80","error":"Network is unreachable (os error 101)","after_us":40}"#;
        assert_eq!(
            summarize(failed),
            "client -> 10.96.0.10:80: FAILED Network is unreachable (os error 101)"
        );
        assert_eq!(summarize("oops"), "[client] oops");
    }
}
