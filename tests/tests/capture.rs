//! End-to-end: the capture datapath in a lab of network namespaces and a cgroup, with the kernel
//! programs loaded into this kernel. Needs root; skipped loudly otherwise.

use std::{
    fs,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result};
use serde_json::Value;
use strait_tests::{
    lab::{self, ChildHandle, Lab, Pod, Signal},
    manifests,
};

const GREETER_VIP: &str = "10.96.0.10:80";
const ECHO_VIP: &str = "10.96.0.11:80";
const LATE_VIP: &str = "10.96.0.12:80";
const BACKEND_PORT: u16 = 8080;

/// How a scenario's client is captured.
#[derive(Clone, Copy)]
enum Capture {
    Ebpf,
    /// An iptables REDIRECT in the client pod's namespace, to strait's listener there.
    IptablesInPod,
}

/// A lab with `replicas` greeter pods, one `other` pod behind a second Service, a captured client
/// pod and an uncaptured one, and strait in the node namespace.
struct Scenario {
    lab: Lab,
    config_dir: PathBuf,
    client: Pod,
    outsider: Pod,
    strait: Option<ChildHandle>,
}

impl Scenario {
    fn start(name: &str, replicas: usize) -> Result<Scenario> {
        Self::start_with(name, replicas, Capture::Ebpf)
    }

    fn start_with(name: &str, replicas: usize, capture: Capture) -> Result<Scenario> {
        let mut lab = Lab::new(name)?;
        let mut greeters = Vec::new();
        for i in 0..replicas {
            let pod = lab.add_pod(&format!("greeter-{i}"))?;
            lab.serve_agent(&pod, BACKEND_PORT, &format!("greeter-{i}"))?;
            greeters.push(pod);
        }
        let other = lab.add_pod("other")?;
        lab.serve_agent(&other, BACKEND_PORT, "other")?;
        let client = lab.add_pod("client")?;
        let outsider = lab.add_uncaptured_pod("outsider")?;

        let config_dir = tempdir(name)?;
        let ips: Vec<Ipv4Addr> = greeters.iter().map(|p| p.ip).collect();
        fs::write(
            config_dir.join("greeter.yaml"),
            service_yaml("greeter", GREETER_VIP, "greeter", &ips),
        )?;
        fs::write(
            config_dir.join("other.yaml"),
            service_yaml("other", ECHO_VIP, "other", &[other.ip]),
        )?;
        let mut scenario = Scenario {
            lab,
            config_dir,
            client,
            outsider,
            strait: None,
        };
        scenario.start_strait(capture)?;
        Ok(scenario)
    }

    fn start_strait(&mut self, capture: Capture) -> Result<()> {
        let capture = match capture {
            Capture::Ebpf => lab::Capture::Ebpf,
            Capture::IptablesInPod => lab::Capture::IptablesInPod(&self.client),
        };
        let args = capture.strait_args();
        self.strait = Some(self.lab.start_strait(&self.config_dir, &args)?);
        Ok(())
    }

    /// One call from `pod` to `to`: the agent's JSON report.
    fn call(&mut self, pod: &Pod, to: &str, send: usize) -> Result<Value> {
        self.lab.agent_call(pod, to, send, Duration::from_secs(5))
    }

    fn metrics(&self) -> Result<String> {
        let (status, body) = self
            .lab
            .http_get("http://127.0.0.1:15000/stats/prometheus")?;
        anyhow::ensure!(status == 200, "metrics answered {status}");
        Ok(body)
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.config_dir);
    }
}

fn service_yaml(name: &str, vip: &str, app: &str, pod_ips: &[Ipv4Addr]) -> String {
    let service = manifests::Service {
        name,
        app,
        vip: vip.parse().unwrap(),
        port_name: &format!("tcp-{name}"),
        app_protocol: None,
        target_port: &BACKEND_PORT,
    };
    let pods = pod_ips
        .iter()
        .enumerate()
        .map(|(i, ip)| manifests::pod(&format!("{app}-{i}"), app, ip, &[]));
    manifests::documents(std::iter::once(service.yaml()).chain(pods))
}

fn tempdir(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("strait-e2e-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn reply(call: &Value) -> &str {
    call["reply"].as_str().unwrap_or_default()
}

/// The value of a Prometheus sample whose name and labels contain all of `needles`.
fn sample(metrics: &str, name: &str, needles: &[&str]) -> Option<u64> {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && needles.iter().all(|n| l.contains(n)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn captured_connection_reaches_its_service_and_sees_the_vip() -> Result<()> {
    if !lab::require_privileges("captured_connection_reaches_its_service_and_sees_the_vip") {
        return Ok(());
    }
    let mut s = Scenario::start("vip", 3)?;
    let client = s.client.clone();

    let mut replicas = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let call = s.call(&client, GREETER_VIP, 100)?;
        assert_eq!(call["ok"], true, "{call}");
        // getpeername() shows the Service address, not the proxy.
        assert_eq!(call["peer"], GREETER_VIP, "{call}");
        let reply = reply(&call);
        assert!(
            reply.starts_with("greeter-") && reply.ends_with("received 100"),
            "{call}"
        );
        replicas.insert(reply.split(' ').next().unwrap().to_string());
    }
    // Round robin over the three replicas.
    assert_eq!(replicas.len(), 3, "{replicas:?}");

    // The original destination decides the Service: the second VIP reaches its own pod.
    let call = s.call(&client, ECHO_VIP, 10)?;
    assert_eq!(reply(&call), "other received 10", "{call}");
    Ok(())
}

#[test]
fn kernel_counters_equal_the_bytes_sent() -> Result<()> {
    if !lab::require_privileges("kernel_counters_equal_the_bytes_sent") {
        return Ok(());
    }
    let mut s = Scenario::start("count", 2)?;
    let client = s.client.clone();
    let sizes = [1usize, 1000, 65_536, 300_000];
    let mut received = 0u64;
    for size in sizes {
        let call = s.call(&client, GREETER_VIP, size)?;
        assert_eq!(call["ok"], true, "{call}");
        assert_eq!(call["sent"], size as u64, "{call}");
        received += call["received"].as_u64().unwrap();
    }
    let sent: u64 = sizes.iter().map(|&s| s as u64).sum();
    let labels = [
        "destination_service=\"greeter.default.svc.cluster.local\"",
        "destination_port=\"80\"",
    ];
    // The close is counted when the last ACK arrives: wait for it, then compare exactly.
    let mut metrics = String::new();
    let closed = lab::wait_until(Duration::from_secs(5), || {
        metrics = s.metrics().unwrap_or_default();
        sample(&metrics, "strait_kernel_connections_closed_total", &labels)
            == Some(sizes.len() as u64)
    });
    assert!(
        closed,
        "connections closed never reached {}:\n{metrics}",
        sizes.len()
    );
    assert_eq!(
        sample(&metrics, "strait_kernel_connections_opened_total", &labels),
        Some(sizes.len() as u64)
    );
    assert_eq!(
        sample(&metrics, "strait_kernel_sent_bytes_total", &labels),
        Some(sent),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "strait_kernel_received_bytes_total", &labels),
        Some(received),
        "{metrics}"
    );
    // The proxy's own view agrees.
    let tcp = ["destination_service=\"greeter.default.svc.cluster.local\""];
    assert_eq!(
        sample(&metrics, "istio_tcp_received_bytes_total", &tcp),
        Some(sent),
        "{metrics}"
    );
    Ok(())
}

#[test]
fn uncaptured_process_and_unknown_destination_are_left_alone() -> Result<()> {
    if !lab::require_privileges("uncaptured_process_and_unknown_destination_are_left_alone") {
        return Ok(());
    }
    let mut s = Scenario::start("outside", 1)?;
    let (client, outsider) = (s.client.clone(), s.outsider.clone());
    // Outside the cgroup: the VIP is routed like any address, and the lab has no route for it.
    let call = s.call(&outsider, GREETER_VIP, 10)?;
    assert_eq!(call["ok"], false, "{call}");
    assert!(
        call["error"].as_str().unwrap().contains("unreachable"),
        "{call}"
    );
    // Inside the cgroup, an address that is no Service is not captured either.
    let call = s.call(&client, "10.96.0.99:80", 10)?;
    assert!(
        call["error"]
            .as_str()
            .unwrap_or_default()
            .contains("unreachable"),
        "{call}"
    );
    // And a pod address is reached directly.
    let greeter_ip = s
        .lab
        .pods()
        .iter()
        .find(|p| p.name == "greeter-0")
        .unwrap()
        .ip;
    let call = s.call(&client, &format!("{greeter_ip}:{BACKEND_PORT}"), 10)?;
    assert_eq!(
        call["peer"],
        format!("{greeter_ip}:{BACKEND_PORT}"),
        "{call}"
    );
    assert_eq!(reply(&call), "greeter-0 received 10", "{call}");
    Ok(())
}

#[test]
fn service_added_at_runtime_is_captured_without_restart() -> Result<()> {
    if !lab::require_privileges("service_added_at_runtime_is_captured_without_restart") {
        return Ok(());
    }
    let mut s = Scenario::start("late", 1)?;
    let client = s.client.clone();
    let call = s.call(&client, LATE_VIP, 10)?;
    assert_eq!(
        call["ok"], false,
        "not a Service yet, so not captured: {call}"
    );

    let other_ip = s.lab.pods().iter().find(|p| p.name == "other").unwrap().ip;
    fs::write(
        s.config_dir.join("late.yaml"),
        service_yaml("late", LATE_VIP, "other", &[other_ip]).replace("other-0", "late-0"),
    )?;
    let mut last = Value::Null;
    let captured = lab::wait_until(Duration::from_secs(10), || {
        last = s.call(&client, LATE_VIP, 10).unwrap_or(Value::Null);
        last["ok"] == true
    });
    assert!(captured, "the new Service was never captured: {last}");
    assert_eq!(reply(&last), "other received 10");
    assert_eq!(last["peer"], LATE_VIP);

    // A broken edit is rejected and the last good config keeps serving, kernel map included.
    fs::write(
        s.config_dir.join("late.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: late\n",
    )?;
    let rejected = ["strait_config_reloads_total{result=\"rejected\"} 1"];
    let mut metrics = String::new();
    let seen = lab::wait_until(Duration::from_secs(10), || {
        metrics = s.metrics().unwrap_or_default();
        rejected.iter().all(|r| metrics.contains(r))
    });
    assert!(seen, "the broken edit was not rejected:\n{metrics}");
    assert_eq!(reply(&s.call(&client, LATE_VIP, 10)?), "other received 10");
    Ok(())
}

fn attached_programs(cgroup: &Path) -> Result<String> {
    let out = Command::new("bpftool")
        .args(["cgroup", "show"])
        .arg(cgroup)
        .output()
        .context("running bpftool")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn fail_open_after(signal: Signal) -> Result<()> {
    let mut s = Scenario::start(&format!("open-{}", signal.as_str().to_lowercase()), 1)?;
    let client = s.client.clone();
    let attached = attached_programs(s.lab.cgroup_dir())?;
    for program in [
        "connect4",
        "connect6",
        "getpeername4",
        "getpeername6",
        "sock_ops",
    ] {
        assert!(
            attached.contains(program),
            "{program} not attached:\n{attached}"
        );
    }
    assert_eq!(s.call(&client, GREETER_VIP, 10)?["ok"], true);

    let strait = s.strait.take().unwrap();
    strait.signal(signal)?;
    let status = strait
        .wait_timeout(Duration::from_secs(10))?
        .context("strait did not exit")?;
    if signal == Signal::SIGTERM {
        assert!(status.success(), "strait exited with {status} on SIGTERM");
    }
    // Within 2 s the kernel stops sending connects to the dead proxy: they go where the network
    // sends them, which in the lab is nowhere (unreachable), never "refused" by a dead listener.
    let mut last = Value::Null;
    let open = lab::wait_until(Duration::from_secs(2), || {
        last = s.call(&client, GREETER_VIP, 10).unwrap_or(Value::Null);
        last["error"]
            .as_str()
            .is_some_and(|e| e.contains("unreachable"))
    });
    assert!(open, "connects still captured after strait exited: {last}");
    let attached = attached_programs(s.lab.cgroup_dir())?;
    assert!(
        attached.trim().lines().count() <= 1,
        "programs left attached:\n{attached}"
    );
    Ok(())
}

#[test]
fn fails_open_after_sigterm() -> Result<()> {
    if !lab::require_privileges("fails_open_after_sigterm") {
        return Ok(());
    }
    fail_open_after(Signal::SIGTERM)
}

#[test]
fn fails_open_after_sigkill() -> Result<()> {
    if !lab::require_privileges("fails_open_after_sigkill") {
        return Ok(());
    }
    fail_open_after(Signal::SIGKILL)
}

#[test]
fn iptables_capture_reads_the_original_destination() -> Result<()> {
    if !lab::require_privileges("iptables_capture_reads_the_original_destination") {
        return Ok(());
    }
    let mut s = Scenario::start_with("ipt", 2, Capture::IptablesInPod)?;
    let client = s.client.clone();
    // What sidecars and ambient mode do today: REDIRECT in the pod's own namespace.
    let vips = [GREETER_VIP.parse()?, ECHO_VIP.parse()?];
    s.lab.redirect_to_strait(&client, "10.96.0.0/12", &vips)?;
    let call = s.call(&client, GREETER_VIP, 100)?;
    assert!(reply(&call).starts_with("greeter-"), "{call}");
    let call = s.call(&client, ECHO_VIP, 100)?;
    assert_eq!(reply(&call), "other received 100", "{call}");
    // No kernel programs in this mode.
    assert!(!attached_programs(s.lab.cgroup_dir())?.contains("connect4"));
    Ok(())
}

/// A strait that hangs (stopped, deadlocked) still holds its programs; its stale heartbeat makes
/// the kernel stop redirecting within 2 s, and capture resumes when it does.
#[test]
fn fails_open_while_strait_hangs_and_recovers() -> Result<()> {
    if !lab::require_privileges("fails_open_while_strait_hangs_and_recovers") {
        return Ok(());
    }
    let mut s = Scenario::start("hang", 1)?;
    let client = s.client.clone();
    assert_eq!(s.call(&client, GREETER_VIP, 10)?["ok"], true);

    s.strait.as_ref().unwrap().signal(Signal::SIGSTOP)?;
    // Until the heartbeat is stale, connects land in the stopped strait's backlog: short calls.
    let mut last = Value::Null;
    let open = lab::wait_until(Duration::from_secs(3), || {
        last = s
            .lab
            .agent_call(&client, GREETER_VIP, 10, Duration::from_millis(200))
            .unwrap_or(Value::Null);
        last["error"]
            .as_str()
            .is_some_and(|e| e.contains("unreachable"))
    });
    assert!(open, "a hung strait still receives connects: {last}");
    assert!(
        attached_programs(s.lab.cgroup_dir())?.contains("connect4"),
        "programs stay attached"
    );

    s.strait.as_ref().unwrap().signal(Signal::SIGCONT)?;
    let captured = lab::wait_until(Duration::from_secs(3), || {
        last = s.call(&client, GREETER_VIP, 10).unwrap_or(Value::Null);
        last["ok"] == true
    });
    assert!(captured, "capture did not resume: {last}");
    Ok(())
}

/// Runs a Python snippet in `pod` and returns what it printed (the lab has no other IPv6 or UDP
/// client; Python is on every machine these tests run on).
fn python(s: &mut Scenario, pod: &Pod, code: &str) -> Result<String> {
    let mut cmd = s.lab.pod_command(pod, "python3");
    cmd.args(["-c", code]);
    Ok(s.lab.output(cmd)?.trim().to_string())
}

#[test]
fn dual_stack_sockets_are_captured_and_udp_is_not() -> Result<()> {
    if !lab::require_privileges("dual_stack_sockets_are_captured_and_udp_is_not") {
        return Ok(());
    }
    let mut s = Scenario::start("v6", 1)?;
    let client = s.client.clone();
    // An IPv6 socket to the IPv4-mapped VIP (what Java and Python dual-stack clients do): connect6
    // redirects it, getpeername6 shows the VIP, and the reply comes from the Service.
    let v6 = python(
        &mut s,
        &client,
        "import socket\n\
         c = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\n\
         c.settimeout(5)\n\
         c.connect(('::ffff:10.96.0.10', 80))\n\
         peer = c.getpeername()\n\
         c.sendall(b'x' * 7)\n\
         c.shutdown(socket.SHUT_WR)\n\
         reply = b''\n\
         while chunk := c.recv(100): reply += chunk\n\
         print(peer[0], peer[1], reply.decode().strip())",
    )?;
    assert_eq!(v6, "::ffff:10.96.0.10 80 greeter-0 received 7");
    // UDP to the VIP is never captured: routed like any address, and the lab has no route.
    let udp = python(
        &mut s,
        &client,
        "import socket\n\
         u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         try:\n    u.connect(('10.96.0.10', 80)); print('connected', u.getpeername())\n\
         except OSError as e: print('error', e.errno)",
    )?;
    assert_eq!(udp, format!("error {}", libc::ENETUNREACH));
    Ok(())
}

/// The next `n` calls a running `call --count 0` client reports.
fn next_calls(caller: &mut ChildHandle, n: usize) -> Result<Vec<Value>> {
    (0..n)
        .map(|_| {
            let line = caller
                .next_line(Duration::from_secs(10))?
                .context("the calling client stopped")?;
            Ok(serde_json::from_str(&line)?)
        })
        .collect()
}

/// A rolling update on one node: a second strait starts beside the first (the same ports, the
/// same pinned maps), then the first is stopped. A client connecting every 10 ms throughout sees
/// no failed connection; the kernel counters go on across the two; when the last strait leaves,
/// no program stays attached and its pins are gone.
#[test]
fn a_new_strait_takes_over_without_a_failed_connection() -> Result<()> {
    if !lab::require_privileges("a_new_strait_takes_over_without_a_failed_connection") {
        return Ok(());
    }
    let mut s = Scenario::start("handover", 2)?;
    let client = s.client.clone();
    let mut cmd = s.lab.pod_command(&client, lab::lab_agent_bin());
    cmd.args(["call", "--to", GREETER_VIP, "--send", "10"])
        .args(["--count", "0", "--every", "10"]);
    let mut caller = s.lab.spawn(cmd)?;
    let mut calls = next_calls(&mut caller, 20)?;

    let first = s.strait.take().expect("strait runs");
    let second = s.lab.start_strait(&s.config_dir, &[] as &[&str])?;
    // Both serve for a while: the kernel spreads connections over both listeners.
    calls.extend(next_calls(&mut caller, 30)?);
    first.signal(Signal::SIGTERM)?;
    let status = first
        .wait_timeout(Duration::from_secs(10))?
        .context("the first strait did not exit")?;
    assert!(status.success(), "the first strait exited with {status}");
    calls.extend(next_calls(&mut caller, 50)?);
    caller.stop(Duration::from_secs(2))?;

    let failed: Vec<&Value> = calls.iter().filter(|c| c["ok"] != true).collect();
    assert!(
        failed.is_empty(),
        "{} of {} calls failed: {failed:?}",
        failed.len(),
        calls.len()
    );
    assert!(
        calls.iter().all(|c| reply(c).starts_with("greeter-")),
        "{calls:?}"
    );
    // The second strait counts on the first one's maps: every connection since the start,
    // once, though both straits' programs saw those made while both ran (one more, at most:
    // the call in flight when the client was stopped).
    let labels = ["destination_service=\"greeter.default.svc.cluster.local\""];
    let metrics = s.metrics()?;
    let opened = sample(&metrics, "strait_kernel_connections_opened_total", &labels);
    let made = calls.len() as u64;
    assert!(
        opened.is_some_and(|n| (made..=made + 1).contains(&n)),
        "{opened:?} connections counted, {made} made"
    );
    // One set of programs is attached: the second strait's.
    let attached = attached_programs(s.lab.cgroup_dir())?;
    assert_eq!(attached.matches("connect4").count(), 1, "{attached}");

    // The last strait leaves: nothing attached, nothing pinned.
    second.signal(Signal::SIGTERM)?;
    second
        .wait_timeout(Duration::from_secs(10))?
        .context("the second strait did not exit")?;
    let attached = attached_programs(s.lab.cgroup_dir())?;
    assert!(
        !attached.contains("connect4"),
        "programs left attached:\n{attached}"
    );
    let pins = s.lab.bpf_pin_dir();
    let left: Vec<_> = fs::read_dir(&pins)
        .map(|dir| dir.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "pins left in {}: {left:?}", pins.display());
    Ok(())
}

/// The node the enrollment test's strait serves (the Pods' `spec.nodeName`).
const LAB_NODE: &str = "lab-node";

/// A client Pod of the enrollment test: `pod`'s uid (its cgroup), in `namespace`, on the lab's
/// node, with `labels`.
fn client_pod(pod: &Pod, namespace: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {}, namespace: {namespace}, uid: {}, \
         labels: {{{labels}}}}}\nspec: {{nodeName: {LAB_NODE}}}\n\
         status: {{phase: Running, podIP: {}}}\n",
        pod.name, pod.uid, pod.ip
    )
}

fn namespace(name: &str, labels: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {{{labels}}}}}\n")
}

/// `--enroll ambient`: of the pods in the lab's cgroup, only those Istio's ambient labels enroll
/// on this node are captured, told apart by their cgroups; relabelling a namespace or a pod
/// changes that while strait runs.
#[test]
fn only_the_pods_ambient_labels_enroll_are_captured() -> Result<()> {
    if !lab::require_privileges("only_the_pods_ambient_labels_enroll_are_captured") {
        return Ok(());
    }
    let mut lab = Lab::new("enroll")?;
    let server = lab.add_pod("greeter-0")?;
    lab.serve_agent(&server, BACKEND_PORT, "greeter-0")?;
    let member = lab.add_pod("member")?;
    let opted_out = lab.add_pod("opted-out")?;
    let elsewhere = lab.add_pod("elsewhere")?;

    let config = tempdir("enroll")?;
    let write_config = |shop_labels: &str, elsewhere_labels: &str| -> Result<()> {
        let documents = [
            service_yaml("greeter", GREETER_VIP, "greeter", &[server.ip]),
            namespace("shop", shop_labels),
            namespace("plain", ""),
            client_pod(&member, "shop", "app: member"),
            client_pod(&opted_out, "shop", "istio.io/dataplane-mode: none"),
            client_pod(&elsewhere, "plain", elsewhere_labels),
        ];
        fs::write(config.join("lab.yaml"), manifests::documents(documents))?;
        Ok(())
    };
    write_config("istio.io/dataplane-mode: ambient", "app: elsewhere")?;
    let args = ["--enroll", "ambient", "--node-name", LAB_NODE];
    let _strait = lab.start_strait(&config, &args)?;

    assert!(
        lab.is_captured(&member, GREETER_VIP)?,
        "a pod of an ambient namespace"
    );
    assert!(
        !lab.is_captured(&opted_out, GREETER_VIP)?,
        "a pod that opted out"
    );
    assert!(
        !lab.is_captured(&elsewhere, GREETER_VIP)?,
        "a pod of a plain namespace"
    );

    // The namespace leaves the mesh, a pod elsewhere joins it: strait follows the edit.
    write_config("team: shop", "istio.io/dataplane-mode: ambient")?;
    let mut states = (true, false);
    let followed = lab::wait_until(Duration::from_secs(10), || {
        states = (
            lab.is_captured(&member, GREETER_VIP).unwrap_or(true),
            lab.is_captured(&elsewhere, GREETER_VIP).unwrap_or(false),
        );
        states == (false, true)
    });
    assert!(
        followed,
        "(member, elsewhere) captured: {states:?}, not (false, true)"
    );
    let _ = fs::remove_dir_all(&config);
    Ok(())
}
