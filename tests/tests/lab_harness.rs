//! The lab itself: reachability, isolation, cgroup membership and cleanup on every exit path.
//! Privileged: skipped loudly without root (a failure with STRAIT_TESTS_REQUIRE_PRIVILEGES=1).

use std::{
    fs,
    panic::{self, AssertUnwindSafe},
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use serde_json::Value;
use strait_tests::lab::{self, Lab, Pod};

const PORT: u16 = 8080;

#[test]
fn pods_reach_each_other_and_nothing_else() -> Result<()> {
    if !lab::require_privileges("pods_reach_each_other_and_nothing_else") {
        return Ok(());
    }
    let mut lab = Lab::new("harness-reach")?;
    let server = lab.add_pod("server")?;
    let client = lab.add_pod("client")?;
    serve(&mut lab, &server)?;

    let call = call(&mut lab, &client, &format!("{}:{PORT}", server.ip), 100)?;
    assert_eq!(call["ok"], true, "{call}");
    assert_eq!(call["reply"], "server received 100", "{call}");
    assert_eq!(call["peer"], format!("{}:{PORT}", server.ip), "{call}");
    assert!(call["local"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}:", client.ip)));

    // A Service address nobody captures has no route: the connect fails at once, in the lab.
    let started = Instant::now();
    let call = self::call(&mut lab, &client, "10.96.0.10:80", 1)?;
    assert_eq!(call["ok"], false, "{call}");
    assert!(
        call["error"].as_str().unwrap().contains("unreachable"),
        "{call}"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "{call}");

    // Routed to the node (as iptables capture needs), it still fails fast: the node rejects it.
    lab.route_via_node(&client, "10.96.0.0/12")?;
    let started = Instant::now();
    let call = self::call(&mut lab, &client, "10.96.0.10:80", 1)?;
    assert_eq!(call["ok"], false, "{call}");
    assert!(
        call["error"].as_str().unwrap().contains("unreachable"),
        "{call}"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "{call}");

    let routes = lab.output(with_args(lab.node_command("ip"), &["-4", "route"]))?;
    assert!(!routes.contains("default"), "node routes: {routes}");
    assert_eq!(routes.lines().count(), 1, "node routes: {routes}");
    Ok(())
}

#[test]
fn only_captured_pods_join_the_lab_cgroup() -> Result<()> {
    if !lab::require_privileges("only_captured_pods_join_the_lab_cgroup") {
        return Ok(());
    }
    let mut lab = Lab::new("harness-cgroup")?;
    let captured = lab.add_pod("captured")?;
    let outsider = lab.add_uncaptured_pod("outsider")?;
    let root = lab::cgroup2_root()?;
    let lab_cgroup = format!("0::/{}", lab.cgroup_dir().strip_prefix(&root)?.display());
    // A captured pod has a cgroup of its own below the lab's, named as kubelet names a pod's.
    let pod_cgroup = lab.pod_cgroup(&captured);
    let pod_cgroup = format!("0::/{}", pod_cgroup.strip_prefix(&root)?.display());
    assert!(
        pod_cgroup.starts_with(&format!("{lab_cgroup}/pod")),
        "{pod_cgroup}"
    );

    let cat = |cmd| with_args(cmd, &["/proc/self/cgroup"]);
    let own = lab.output(cat(lab.pod_command(&captured, "cat")))?;
    assert!(own.lines().any(|l| l == pod_cgroup), "{own}");
    for cmd in [lab.pod_command(&outsider, "cat"), lab.node_command("cat")] {
        let cgroups = lab.output(cat(cmd))?;
        assert!(!cgroups.contains(&lab_cgroup), "{cgroups}");
    }

    // Each runs in its own network namespace: it sees its own address.
    for pod in [&captured, &outsider] {
        let cmd = lab.pod_command(pod, "ip");
        let addrs = lab.output(with_args(cmd, &["-4", "-o", "addr", "show", "dev", "eth0"]))?;
        assert!(addrs.contains(&format!("{}/24", pod.ip)), "{addrs}");
    }
    let cmd = lab.node_command("ip");
    let addrs = lab.output(with_args(cmd, &["-4", "-o", "addr", "show", "dev", "br0"]))?;
    assert!(addrs.contains(&format!("{}/24", lab.node_ip())), "{addrs}");
    Ok(())
}

#[test]
fn a_panicking_test_leaves_nothing_behind() -> Result<()> {
    if !lab::require_privileges("a_panicking_test_leaves_nothing_behind") {
        return Ok(());
    }
    let mut made = None;
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut lab = Lab::new("harness-panic").unwrap();
        let pod = lab.add_pod("server").unwrap();
        let pid = serve(&mut lab, &pod).unwrap();
        made = Some(Made::of(&lab, pid));
        panic!("the test fails while its lab runs");
    }));
    assert!(outcome.is_err());
    made.context("the lab was built")?.assert_gone();
    Ok(())
}

#[test]
fn leftovers_of_a_killed_run_are_removed_by_prefix() -> Result<()> {
    if !lab::require_privileges("leftovers_of_a_killed_run_are_removed_by_prefix") {
        return Ok(());
    }
    let config = lab::LabConfig::unique("harness-leftover");
    let prefix = config.prefix.clone();
    let mut lab = Lab::with_config(config)?;
    let pod = lab.add_pod("server")?;
    let pid = serve(&mut lab, &pod)?;
    let made = Made::of(&lab, pid);
    // What a SIGKILLed test leaves: no Drop ran.
    std::mem::forget(lab);
    assert!(made.netns_exist());

    Lab::down_leftovers(&prefix)?;
    made.assert_gone();
    Ok(())
}

#[test]
fn a_new_lab_removes_labs_of_dead_processes() -> Result<()> {
    if !lab::require_privileges("a_new_lab_removes_labs_of_dead_processes") {
        return Ok(());
    }
    // Above the kernel's pid limit: an owner that is surely gone.
    let stale = "strait-lab-4999999-0-stale";
    let stale_netns = format!("{stale}.node");
    run("ip", &["netns", "add", &stale_netns])?;
    let stale_cgroup = lab::cgroup2_root()?.join(stale);
    fs::create_dir_all(&stale_cgroup)?;

    let _lab = Lab::new("harness-orphans")?;
    assert!(!netns_list()?.contains(&stale_netns));
    assert!(!stale_cgroup.exists());
    Ok(())
}

/// What a lab made, to check it is gone.
struct Made {
    netns: Vec<String>,
    cgroup: PathBuf,
    server_pid: u32,
}

impl Made {
    fn of(lab: &Lab, server_pid: u32) -> Self {
        let mut netns: Vec<String> = lab.pods().iter().map(|p| p.netns().to_owned()).collect();
        netns.push(lab.node_netns());
        Self {
            netns,
            cgroup: lab.cgroup_dir().to_owned(),
            server_pid,
        }
    }

    fn netns_exist(&self) -> bool {
        let list = netns_list().unwrap();
        self.netns.iter().all(|ns| list.contains(ns))
    }

    fn assert_gone(&self) {
        let list = netns_list().unwrap();
        for ns in &self.netns {
            assert!(!list.contains(ns), "{ns} is left in {list:?}");
        }
        assert!(!self.cgroup.exists(), "{} is left", self.cgroup.display());
        assert!(!is_running(self.server_pid), "the server still runs");
    }
}

/// Starts a server in `pod` and waits until it listens; returns its pid.
fn serve(lab: &mut Lab, pod: &Pod) -> Result<u32> {
    Ok(lab.serve_agent(pod, PORT, &pod.name)?.pid())
}

/// One call from `pod`: the agent's JSON report.
fn call(lab: &mut Lab, pod: &Pod, to: &str, send: usize) -> Result<Value> {
    lab.agent_call(pod, to, send, Duration::from_secs(5))
}

fn with_args(mut cmd: Command, args: &[&str]) -> Command {
    cmd.args(args);
    cmd
}

fn netns_list() -> Result<String> {
    run("ip", &["netns", "list"])
}

fn run(program: &str, args: &[&str]) -> Result<String> {
    let output = Command::new(program).args(args).output()?;
    anyhow::ensure!(output.status.success(), "{program} {args:?}: {output:?}");
    Ok(String::from_utf8(output.stdout)?)
}

/// Running, not a zombie: a killed child nobody reaped (a forgotten lab's) stays a zombie.
fn is_running(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.rsplit(") ").next().unwrap_or("").starts_with('Z'))
}
