//! A node in a box: the privileged lab the end-to-end tests and `cargo xtask lab` build.
//!
//! ```text
//!   node netns (strait runs here)          pod netns (one per pod)
//!   lo, br0 10.X.0.1/24 ── vethN ───────── eth0 10.X.0.N/24, lo
//! ```
//! Nothing links the lab to the host's network and no namespace has a default route: a
//! connection to a Service address that is not captured fails inside the lab, never leaves it.
//! Captured pods' processes join a cgroup of their own below the lab's cgroup v2 directory
//! (`pod<uid>`, as kubelet's cgroupfs driver names a pod's) before they exec, so every socket
//! they create is seen by cgroup BPF programs attached to the lab's, and strait can tell the
//! pods apart by cgroup (`--enroll ambient`); the node and uncaptured pods stay in the parent's
//! cgroup.
//!
//! [`Lab`]'s `Drop` stops its processes and removes everything it made, also when a test panics.
//! Leftovers of killed runs are found by name (see [`Lab::down_leftovers`]).

mod agent;
mod bins;
mod cgroup;
mod child;
mod http;
mod names;
mod netns;
mod privileges;
mod strait;

use std::{
    ffi::OsStr,
    fs::{self, File},
    net::Ipv4Addr,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    thread,
    time::Duration,
};

use anyhow::{bail, ensure, Context, Result};

pub use bins::{greeter_bin, lab_agent_bin, strait_bin};
pub use child::{wait_for_line, wait_until, ChildHandle, ChildProcess, Signal};
pub use http::http_get_local;
pub use names::RESOURCE_PREFIX;
pub use privileges::{
    cgroup2_root, ensure_bpffs, is_root, require_privileges, skip_or_fail, REQUIRE_ENV,
};
pub use strait::{
    free_local_addr, sum_samples, Capture, LocalStrait, Source, OUTBOUND_PORT, STRAIT_ADMIN,
};

use child::{Process, STOP_GRACE};
use names::{Names, BRIDGE, POD_IFACE};

/// How long [`Lab::output`] lets a command run.
pub const OUTPUT_TIMEOUT: Duration = Duration::from_secs(30);
const NODE_HOST: u8 = 1;

/// What makes a lab unique on this host.
#[derive(Clone, Debug)]
pub struct LabConfig {
    /// In every resource name (`strait-lab-<prefix>`); `[a-z0-9-]`, unique per live lab.
    pub prefix: String,
    /// The lab subnet is 10.`subnet_octet`.0.0/24.
    pub subnet_octet: u8,
}

impl LabConfig {
    /// A prefix and subnet no other live lab uses, named after `name` (the test).
    pub fn unique(name: &str) -> Self {
        let (prefix, subnet_octet) = names::unique_lab(name);
        Self {
            prefix,
            subnet_octet,
        }
    }
}

/// A pod: a network namespace on the lab bridge.
#[derive(Clone, Debug)]
pub struct Pod {
    pub name: String,
    pub ip: Ipv4Addr,
    /// What a Pod manifest's `metadata.uid` says for it: its cgroup is `pod<uid>`.
    pub uid: String,
    /// Whether its processes join its cgroup below the lab's (and so are seen by capture).
    pub captured: bool,
    netns: String,
}

impl Pod {
    /// The pod's named network namespace, e.g. for `ip -n`.
    pub fn netns(&self) -> &str {
        &self.netns
    }
}

pub struct Lab {
    names: Names,
    subnet_octet: u8,
    cgroup: PathBuf,
    /// Whether this lab made `cgroup` (and so removes it).
    cgroup_created: bool,
    /// The namespaces this lab made, the node's first.
    netns: Vec<String>,
    node_netns: Option<NodeNamespace>,
    next_host: u8,
    pods: Vec<Pod>,
    processes: Vec<Arc<Process>>,
    /// Files handed out by [`scratch_file`](Self::scratch_file), removed with the lab.
    scratch: Vec<PathBuf>,
}

impl Lab {
    /// A lab with names and a subnet of its own, safe next to labs of parallel tests.
    pub fn new(name: &str) -> Result<Lab> {
        Self::with_config(LabConfig::unique(name))
    }

    pub fn with_config(config: LabConfig) -> Result<Lab> {
        let names = Names::new(&config.prefix)?;
        // Labs of killed test runs; never those of live processes.
        if let Err(err) = remove_resources(names::is_orphan) {
            eprintln!("lab: removing leftovers of dead runs: {err:#}");
        }
        let mut lab = Lab {
            cgroup: cgroup2_root()?.join(names.cgroup()),
            names,
            subnet_octet: config.subnet_octet,
            cgroup_created: false,
            netns: Vec::new(),
            node_netns: None,
            next_host: NODE_HOST + 1,
            pods: Vec::new(),
            processes: Vec::new(),
            scratch: Vec::new(),
        };
        // On error, dropping `lab` removes whatever was made.
        lab.build_node()?;
        Ok(lab)
    }

    /// The bridge address in the node namespace, 10.X.0.1.
    pub fn node_ip(&self) -> Ipv4Addr {
        self.host_ip(NODE_HOST)
    }

    /// The pods' cgroup v2 directory (`<cgroup2 root>/strait-lab-<prefix>`).
    pub fn cgroup_dir(&self) -> &Path {
        &self.cgroup
    }

    /// A path of its own for a file named after `name` (not made), removed with the lab.
    pub fn scratch_file(&mut self, name: &str) -> PathBuf {
        let file = std::env::temp_dir().join(format!(
            "{}-{name}-{}",
            self.names.cgroup(),
            self.scratch.len()
        ));
        self.scratch.push(file.clone());
        file
    }

    /// Where the lab's strait pins its kernel maps (`--bpf-pin-dir`); gone with the lab.
    pub fn bpf_pin_dir(&self) -> PathBuf {
        self.names.bpf_pins()
    }

    /// The node's named network namespace, e.g. for `ip -n`.
    pub fn node_netns(&self) -> String {
        self.names.node_netns()
    }

    /// The pods added so far, in order.
    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    /// The lab subnet, e.g. `10.250.0.0/24`.
    pub fn subnet(&self) -> String {
        format!("{}/24", self.host_ip(0))
    }

    /// A pod whose processes are captured: they join its cgroup below the lab's.
    pub fn add_pod(&mut self, name: &str) -> Result<Pod> {
        self.attach_pod(name, true)
    }

    /// A pod on the same network whose processes stay in the parent's cgroup.
    pub fn add_uncaptured_pod(&mut self, name: &str) -> Result<Pod> {
        self.attach_pod(name, false)
    }

    /// Routes `cidr` (e.g. the Service range `10.96.0.0/12`) from `pod` to the node, as a
    /// Kubernetes pod's default route does. iptables capture needs it: a connect's route lookup
    /// comes before the OUTPUT chain's DNAT. Uncaptured connects still fail fast: the node, which
    /// has no route for them, answers ICMP "network unreachable" (forwarding on, no rate limit).
    pub fn route_via_node(&self, pod: &Pod, cidr: &str) -> Result<()> {
        self.in_node_netns(|| {
            // /proc/sys/net shows the namespace of the thread that opens it.
            for (sysctl, value) in [("ip_forward", "1"), ("icmp_ratelimit", "0")] {
                let path = format!("/proc/sys/net/ipv4/{sysctl}");
                fs::write(&path, value).with_context(|| format!("writing {path}"))?;
            }
            Ok(())
        })?;
        ip_in(
            &pod.netns,
            &["route", "add", cidr, "via", &self.node_ip().to_string()],
        )
    }

    /// `program` in the node namespace, in the parent's cgroup (strait's place).
    pub fn node_command(&self, program: impl AsRef<OsStr>) -> Command {
        self.node().command(program)
    }

    /// The node's namespace, for threads that reach strait there while the lab plays on.
    pub fn node(&self) -> NodeNamespace {
        self.node_netns
            .clone()
            .expect("a built lab has a node namespace")
    }

    /// `program` in `pod`'s namespace; in its cgroup below the lab's when the pod is captured.
    pub fn pod_command(&self, pod: &Pod, program: impl AsRef<OsStr>) -> Command {
        let netns = netns::open(&pod.netns).expect("the pod's namespace exists while the lab does");
        let procs = pod.captured.then(|| {
            cgroup::open_procs(&self.pod_cgroup(pod))
                .expect("a pod's cgroup exists while the lab does")
        });
        let mut cmd = Command::new(program);
        // SAFETY: the hook only makes syscalls on descriptors it owns. Joining the cgroup comes
        // first, before the program can create any socket.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(procs) = &procs {
                    cgroup::join(procs)?;
                }
                netns::enter(&netns)
            })
        };
        cmd
    }

    /// Runs `cmd` to its end (at most [`OUTPUT_TIMEOUT`]) and returns its stdout, whatever its
    /// exit status: a failed call's report is output too.
    pub fn output(&mut self, cmd: Command) -> Result<String> {
        Ok(self.run_to_end(cmd)?.1)
    }

    /// As [`output`](Self::output), with the ended process too: its exit status and stderr.
    pub fn run_to_end(&mut self, cmd: Command) -> Result<(ChildHandle, String)> {
        let mut child = self.spawn(cmd)?;
        if child.wait_timeout(OUTPUT_TIMEOUT)?.is_none() {
            child.stop(STOP_GRACE)?;
            bail!(
                "{} still ran after {OUTPUT_TIMEOUT:?}; stderr:\n{}",
                child.name(),
                child.stderr_tail()
            );
        }
        let mut stdout = String::new();
        while let Some(line) = child.next_line(OUTPUT_TIMEOUT)? {
            stdout += &line;
            stdout.push('\n');
        }
        Ok((child, stdout))
    }

    /// Starts `cmd` and tracks it: the lab stops it (SIGTERM, then SIGKILL) when dropped.
    pub fn spawn(&mut self, mut cmd: Command) -> Result<ChildHandle> {
        // Its own process group: a terminal's Ctrl-C reaches `cargo xtask lab` alone, which
        // then tears down in order.
        cmd.process_group(0);
        let name = child::describe(&cmd);
        let (handle, process) = ChildHandle::spawn(cmd, name)?;
        self.processes.push(process);
        Ok(handle)
    }

    /// Runs `f` on a thread inside the node namespace (in the parent's cgroup).
    pub fn in_node_netns<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        self.node().run_in(f)
    }

    /// See [`NodeNamespace::http_get`].
    pub fn http_get(&self, url: &str) -> Result<(u16, String)> {
        self.node().http_get(url)
    }

    /// Waits until `ready_file` exists: `server`'s own readiness (`strait run --ready-file`),
    /// which a probe of a port shared with another strait could not tell. Fails at once, with
    /// its stderr, when `server` exits first.
    pub fn wait_ready(
        &self,
        server: &ChildHandle,
        ready_file: &Path,
        timeout: Duration,
    ) -> Result<()> {
        let mut exited = None;
        let ready = wait_until(timeout, || {
            exited = server.try_wait().ok().flatten();
            ready_file.is_file() || exited.is_some()
        });
        if let Some(status) = exited {
            bail!(
                "{} exited ({status}) before it was ready{}",
                server.name(),
                server.stderr_report()
            );
        }
        ensure!(
            ready,
            "{} was not ready within {timeout:?}{}",
            server.name(),
            server.stderr_report()
        );
        Ok(())
    }

    /// Removes lab resources whose names start with `strait-lab-<prefix_filter>` (all labs for
    /// ""), killing the processes inside them: the cleanup after crashed runs.
    pub fn down_leftovers(prefix_filter: &str) -> Result<()> {
        let wanted = format!("{RESOURCE_PREFIX}{prefix_filter}");
        remove_resources(|name| name.starts_with(&wanted))
    }

    fn build_node(&mut self) -> Result<()> {
        cgroup::create(&self.cgroup)?;
        self.cgroup_created = true;
        let node = self.names.node_netns();
        self.add_netns(&node)?;
        let bridge_ip = format!("{}/24", self.node_ip());
        for args in [
            &["link", "set", "lo", "up"][..],
            &["link", "add", BRIDGE, "type", "bridge"],
            &["addr", "add", &bridge_ip, "dev", BRIDGE],
            &["link", "set", BRIDGE, "up"],
        ] {
            ip_in(&node, args)?;
        }
        self.node_netns = Some(NodeNamespace {
            file: Arc::new(netns::open(&node)?),
            name: node,
        });
        Ok(())
    }

    fn attach_pod(&mut self, name: &str, captured: bool) -> Result<Pod> {
        let netns = self.names.pod_netns(name)?;
        let host = self.next_host;
        ensure!(host < u8::MAX, "a lab holds at most {} pods", u8::MAX - 2);
        self.add_netns(&netns)?;
        let veth = names::node_veth(host);
        let node = self.names.node_netns();
        let pod_ip = format!("{}/24", self.host_ip(host));
        #[rustfmt::skip]
        ip_in(&node, &["link", "add", &veth, "type", "veth", "peer", "name", POD_IFACE, "netns", &netns])?;
        ip_in(&node, &["link", "set", &veth, "master", BRIDGE, "up"])?;
        for args in [
            &["addr", "add", &pod_ip, "dev", POD_IFACE][..],
            &["link", "set", POD_IFACE, "up"],
            &["link", "set", "lo", "up"],
        ] {
            ip_in(&netns, args)?;
        }
        self.next_host += 1;
        let pod = Pod {
            name: name.to_owned(),
            ip: self.host_ip(host),
            uid: pod_uid(host),
            captured,
            netns,
        };
        if captured {
            cgroup::create(&self.pod_cgroup(&pod))?;
        }
        self.pods.push(pod.clone());
        Ok(pod)
    }

    /// A captured pod's cgroup, below the lab's.
    pub fn pod_cgroup(&self, pod: &Pod) -> PathBuf {
        self.cgroup.join(format!("pod{}", pod.uid))
    }

    fn add_netns(&mut self, name: &str) -> Result<()> {
        netns::add(name)
            .with_context(|| format!("a leftover? `cargo xtask lab --down` removes {name}"))?;
        self.netns.push(name.to_owned());
        Ok(())
    }

    fn host_ip(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet_octet, 0, host)
    }

    fn teardown(&mut self) {
        if thread::panicking() {
            for process in &self.processes {
                eprintln!("{}", process.stderr_report());
            }
        }
        child::stop_all(&self.processes, STOP_GRACE);
        self.node_netns = None;
        // Pods first: their veths hang off the node's bridge.
        for name in self.netns.drain(..).rev() {
            if let Err(err) = netns::remove(&name) {
                eprintln!("lab: removing netns {name}: {err:#}");
            }
        }
        if self.cgroup_created {
            if let Err(err) = cgroup::remove(&self.cgroup) {
                eprintln!("lab: {err:#}");
            }
        }
        // strait unpins its maps when it leaves last; a killed one leaves them.
        remove_pins(&self.bpf_pin_dir());
        for file in self.scratch.drain(..) {
            let _ = fs::remove_file(file);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// `ip -n NETNS ARGS...`
/// A UUID like the API server's, fixed by the pod's host number (and so its address).
fn pod_uid(host: u8) -> String {
    format!("5e1ab000-0000-4000-8000-{host:012}")
}

fn ip_in(netns: &str, args: &[&str]) -> Result<()> {
    netns::ip(&[&["-n", netns][..], args].concat())?;
    Ok(())
}

/// Removes the lab namespaces and cgroups whose names `matches`; tries them all.
fn remove_resources(matches: impl Fn(&str) -> bool) -> Result<()> {
    let mut failures = Vec::new();
    for name in netns::list()?.into_iter().filter(|name| matches(name)) {
        eprintln!("lab: removing network namespace {name}");
        if let Err(err) = netns::remove(&name) {
            failures.push(format!("{err:#}"));
        }
    }
    let root = cgroup2_root()?;
    for entry in fs::read_dir(&root)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_dir() && matches(&name) {
            eprintln!("lab: removing cgroup {}", entry.path().display());
            if let Err(err) = cgroup::remove(&entry.path()) {
                failures.push(format!("{err:#}"));
            }
        }
    }
    if let Ok(entries) = fs::read_dir(names::BPFFS) {
        for entry in entries.flatten() {
            if matches(&entry.file_name().to_string_lossy()) {
                eprintln!("lab: removing pinned maps {}", entry.path().display());
                remove_pins(&entry.path());
            }
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("; "));
    Ok(())
}

/// Removes a pin directory and every pin in it, if it is there.
fn remove_pins(dir: &Path) {
    match fs::remove_dir_all(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            eprintln!("lab: removing {}: {err}", dir.display())
        }
        _ => {}
    }
}

/// The lab node's network namespace (where strait runs), apart from the [`Lab`]: cheap to clone
/// and to send to another thread. The lab removes the namespace when it is dropped.
#[derive(Clone, Debug)]
pub struct NodeNamespace {
    file: Arc<File>,
    name: String,
}

impl NodeNamespace {
    /// Its name, e.g. for `ip -n`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `program` in this namespace, in the caller's cgroup.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let netns = self.file.clone();
        let mut cmd = Command::new(program);
        // SAFETY: the hook only makes a syscall on a descriptor it owns.
        unsafe { cmd.pre_exec(move || netns::enter(&netns)) };
        cmd
    }

    /// Runs `f` on a thread inside this namespace.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        netns::run_in(&self.file, f)
    }

    /// A minimal HTTP/1.0 GET from inside this namespace (strait's admin listens there).
    /// `url` is `http://IP:PORT/PATH`; returns the status code and the body.
    pub fn http_get(&self, url: &str) -> Result<(u16, String)> {
        self.run_in(|| http_get_local(url))
            .with_context(|| format!("in {}", self.name))
    }
}
