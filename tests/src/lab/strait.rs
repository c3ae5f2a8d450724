//! strait in a lab's node namespace, with the lab's standard addresses.

use std::{
    ffi::OsStr,
    net::{SocketAddr, TcpListener},
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{ensure, Result};

use super::{http_get_local, strait_bin, wait_until, ChildHandle, ChildProcess, Lab, Pod};

/// The admin server inside the node namespace (reach it with [`Lab::http_get`]).
pub const STRAIT_ADMIN: &str = "127.0.0.1:15000";
/// Where captured connections arrive, on the node's bridge address.
pub const OUTBOUND_PORT: u16 = 15001;
const METRICS_PORT: u16 = 15020;
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Where a lab's strait reads its config.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    /// `--config` files or directories.
    Files(&'a Path),
    /// `--kubernetes`, with this kubeconfig.
    Kubernetes { kubeconfig: &'a Path },
}

impl Lab {
    /// Starts strait on `config` with capture of the lab's cgroup (add `--capture ...` to
    /// `extra` for another mode) and returns once `/healthz/ready` answers.
    pub fn start_strait<S: AsRef<OsStr>>(
        &mut self,
        config: &Path,
        extra: &[S],
    ) -> Result<ChildHandle> {
        self.start_strait_from(Source::Files(config), extra)
    }

    /// As [`start_strait`](Self::start_strait), with the config from `source`.
    pub fn start_strait_from<S: AsRef<OsStr>>(
        &mut self,
        source: Source<'_>,
        extra: &[S],
    ) -> Result<ChildHandle> {
        // strait pins its kernel maps there.
        super::ensure_bpffs()?;
        // Its own: during a handover two straits answer on the lab's ports.
        let ready_file = self.scratch_file("strait-ready");
        let mut cmd = self.node_command(strait_bin());
        cmd.arg("run");
        match source {
            Source::Files(config) => cmd.arg("--config").arg(config),
            Source::Kubernetes { kubeconfig } => {
                cmd.arg("--kubernetes").env("KUBECONFIG", kubeconfig)
            }
        };
        cmd.arg("--outbound")
            .arg(format!("{}:{OUTBOUND_PORT}", self.node_ip()))
            .arg("--cgroup")
            .arg(self.cgroup_dir())
            .arg("--bpf-pin-dir")
            .arg(self.bpf_pin_dir())
            .args(["--admin", STRAIT_ADMIN])
            .arg("--metrics")
            .arg(format!("{}:{METRICS_PORT}", self.node_ip()))
            .arg("--ready-file")
            .arg(&ready_file)
            .args(extra);
        let strait = self.spawn(cmd)?;
        self.wait_ready(&strait, &ready_file, READY_TIMEOUT)?;
        Ok(strait)
    }
}

/// strait on loopback without capture (`--no-ebpf`), on ports picked for it: no privileges.
pub struct LocalStrait {
    /// Stopped when dropped.
    pub process: ChildProcess,
    pub outbound: SocketAddr,
    pub admin: SocketAddr,
    pub metrics: SocketAddr,
}

/// Ports picked free may be taken by someone else's socket before strait binds them (tests
/// run in parallel): strait is started again on other ports, this many times at most.
const START_ATTEMPTS: usize = 3;

impl LocalStrait {
    pub fn start<S: AsRef<OsStr>>(config: &Path, extra: &[S]) -> Result<LocalStrait> {
        let mut attempt = 1;
        loop {
            match Self::start_on_free_ports(config, extra) {
                Err(err) if attempt < START_ATTEMPTS && err.to_string().contains(PORT_TAKEN) => {
                    attempt += 1
                }
                started => return started,
            }
        }
    }

    fn start_on_free_ports<S: AsRef<OsStr>>(config: &Path, extra: &[S]) -> Result<LocalStrait> {
        let [outbound, admin, metrics] = [(); 3].map(|()| free_local_addr());
        let mut cmd = Command::new(strait_bin());
        cmd.args(["run", "--no-ebpf", "--config"])
            .arg(config)
            .args(["--outbound", &outbound.to_string()])
            .args(["--admin", &admin.to_string()])
            .args(["--metrics", &metrics.to_string()])
            .args(extra)
            .stdout(Stdio::null());
        let process = ChildProcess::spawn(cmd, "strait")?;
        let url = format!("http://{metrics}/healthz/ready");
        let ready = wait_until(READY_TIMEOUT, || {
            process.try_wait().ok().flatten().is_some()
                || http_get_local(&url).is_ok_and(|(code, _)| code == 200)
        });
        ensure!(
            ready && process.try_wait()?.is_none(),
            "strait did not become ready:{}",
            process.stderr_report()
        );
        Ok(LocalStrait {
            process,
            outbound,
            admin,
            metrics,
        })
    }
}

impl LocalStrait {
    /// `istio_requests_total` summed over the samples whose labels contain all of `labels`.
    pub fn requests_total(&self, labels: &[&str]) -> Result<u64> {
        self.counter("istio_requests_total", labels)
    }

    /// `strait_config_reloads_total` with `result` ("accepted" or "rejected").
    pub fn reloads(&self, result: &str) -> Result<u64> {
        let label = format!("result=\"{result}\"");
        self.counter("strait_config_reloads_total", &[&label])
    }

    /// The counter `metric` from `/stats/prometheus`, summed over the samples whose labels
    /// contain all of `labels`.
    pub fn counter(&self, metric: &str, labels: &[&str]) -> Result<u64> {
        let url = format!("http://{}/stats/prometheus", self.admin);
        let (_, body) = http_get_local(&url)?;
        Ok(sum_samples(&body, metric, labels))
    }
}

/// The samples of `metric` in a Prometheus text page whose labels contain all of `labels`,
/// summed.
pub fn sum_samples(page: &str, metric: &str, labels: &[&str]) -> u64 {
    let start = format!("{metric}{{");
    page.lines()
        .filter(|l| l.starts_with(&start) && labels.iter().all(|n| l.contains(n)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// How strait's stderr says that a port it was given is taken (EADDRINUSE).
const PORT_TAKEN: &str = "Address already in use";

/// A loopback address with a port the kernel just handed out (and took back).
pub fn free_local_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a loopback port")
}

/// How strait captures a lab's connections.
#[derive(Clone, Copy, Debug)]
pub enum Capture<'a> {
    /// The kernel programs on the lab cgroup.
    Ebpf,
    /// An iptables REDIRECT in this pod's namespace (see [`Lab::redirect_to_strait`]), to
    /// strait's listener there: ztunnel's in-pod mode.
    IptablesInPod(&'a Pod),
}

impl Capture<'_> {
    /// The `strait run` arguments for this mode.
    pub fn strait_args(&self) -> Vec<String> {
        match self {
            Capture::Ebpf => vec!["--capture".into(), "ebpf".into()],
            Capture::IptablesInPod(pod) => vec![
                "--capture".into(),
                "iptables".into(),
                "--pod-netns".into(),
                format!("/var/run/netns/{}", pod.netns()),
            ],
        }
    }
}

impl Lab {
    /// What sidecars and ambient's in-pod mode do: REDIRECT `vips`, in `pod`'s own namespace, to
    /// strait's port there. The route lookup comes before the REDIRECT, so the pod also gets a
    /// route for `service_cidr`.
    pub fn redirect_to_strait(
        &mut self,
        pod: &Pod,
        service_cidr: &str,
        vips: &[SocketAddr],
    ) -> Result<()> {
        self.route_via_node(pod, service_cidr)?;
        for vip in vips {
            let mut rule = self.pod_command(pod, "iptables");
            rule.args([
                "-t",
                "nat",
                "-A",
                "OUTPUT",
                "-p",
                "tcp",
                "-d",
                &vip.ip().to_string(),
            ])
            .args(["--dport", &vip.port().to_string()])
            .args(["-j", "REDIRECT", "--to-ports", &OUTBOUND_PORT.to_string()]);
            let out = rule.output()?;
            ensure!(
                out.status.success(),
                "iptables: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}
