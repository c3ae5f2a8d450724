//! `cargo xtask bench capture`: what eBPF capture buys over the iptables REDIRECT that sidecars
//! and ambient mode use today, and what any proxy costs against none.
//!
//! One lab per run: a Service (VIP) with one backend pod, and two client pods built alike. Per
//! round, in turn, the same load generator (`strait-lab-agent bench`: short connections, send,
//! half-close, read to EOF) runs against:
//! - `ebpf`: from `client`, in the lab cgroup, to the VIP; strait with `--capture ebpf`;
//! - `iptables`: from `client-ipt`, whose namespace REDIRECTs the VIP to port 15001, to the VIP;
//!   strait with `--capture iptables --pod-netns` listens there (ztunnel's in-pod mode);
//! - `direct`: from `client` straight to the backend pod, no strait at all.
//!
//! Two client pods, because a nat table puts conntrack on every connection of its namespace: an
//! eBPF-captured pod has none in a cluster, so it must have none here. The backend is not
//! captured, so the server side is the same for all three.
//!
//! strait runs only for its own target, alone on [`PROXY_CPU`](super::PROXY_CPU); the client,
//! the backend and this process share [`CLIENT_CPU`]. All run the release build. Each target is
//! measured twice: under load (`--workers` in flight: connections/s, latency, CPU), then one
//! connection at a time (latency without queueing, which under load only restates the rate). CPU time is read at the edges of the loaded window:
//! strait's (utime + stime), and the whole node's from /proc/stat, because capture costs land on
//! the client's core too (connect4 and sockops there, conntrack for iptables).

use std::{fmt::Write as _, net::Ipv4Addr, process::Command, time::Duration};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use strait_tests::{
    lab::{self, ChildHandle, Lab, Pod},
    manifests,
};

use super::{
    cell, disturbed, ensure_both_cpus, markdown_table, median, next_line, on_proxy_cpu,
    pin_this_thread, ratio, today, use_release_bins, CpuClock, ScratchDir, CLIENT_CPU,
};

#[derive(clap::Args)]
pub struct CaptureArgs {
    /// Rounds of (ebpf, iptables, direct); the table quotes medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of load before each measurement.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Seconds measured per target and round.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Connections the client keeps in flight under load.
    #[arg(long, default_value_t = 16)]
    workers: usize,
    /// Seconds measured per target and round with one connection at a time (0: skip).
    #[arg(long, default_value_t = 5.0)]
    latency_duration: f64,
    /// Run the release binaries as they are: no setup, no build.
    #[arg(long)]
    no_build: bool,
}

const SERVICE_CIDR: &str = "10.96.0.0/12";
const VIP: &str = "10.96.0.10:80";
const BACKEND_PORT: u16 = 8080;
/// Each connection leaves a TIME_WAIT on the side that closed first, per network namespace:
/// without reuse and a wide port range, a client runs out of ports within seconds.
const SYSCTLS: [&str; 2] = [
    "net.ipv4.tcp_tw_reuse=1",
    "net.ipv4.ip_local_port_range=1024 65535",
];
/// Beyond the warm-up or the measurement, how long a client may take to say something.
const SLACK: Duration = Duration::from_secs(30);
const STRAIT_GRACE: Duration = Duration::from_secs(10);
/// Before the one-at-a-time pass, which follows the load: strait is warm by then.
const LATENCY_WARMUP: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Ebpf,
    Iptables,
    Direct,
}

impl Target {
    const ALL: [Target; 3] = [Target::Ebpf, Target::Iptables, Target::Direct];

    fn name(self) -> &'static str {
        match self {
            Target::Ebpf => "ebpf",
            Target::Iptables => "iptables",
            Target::Direct => "direct",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Target::Ebpf => "strait, eBPF capture",
            Target::Iptables => "strait, iptables REDIRECT",
            Target::Direct => "no proxy (pod IP)",
        }
    }
}

/// One measurement of one target.
struct Sample {
    target: Target,
    conns_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    /// p50 and p99 with one connection at a time, if measured.
    unloaded: Option<(f64, f64)>,
    errors: u64,
    /// strait's CPU seconds under load and connections per CPU-second; none for `direct`.
    strait: Option<(f64, f64)>,
    /// Busy CPU time of the whole node per connection, under load.
    node_us_per_conn: f64,
    /// The node's busy time outside the benchmark's processes in the loaded window, as a share
    /// of the two cores' time.
    elsewhere: f64,
}

/// How the client runs: connections in flight, warm-up and measurement.
struct Load {
    workers: usize,
    warmup: Duration,
    measure: Duration,
}

/// What the client's summary line says.
struct Summary {
    connections: f64,
    conns_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
}

pub fn run(args: &CaptureArgs) -> Result<()> {
    crate::lab::ensure_root()?;
    ensure!(
        args.rounds > 0 && args.workers > 0,
        "rounds and workers must be positive"
    );
    ensure_both_cpus()?;
    if !args.no_build {
        crate::build_lab_bins(&["--release"])?;
    }
    use_release_bins(&["strait", "strait-lab-agent"])?;
    // After the build, which wants both cores. What this thread starts from now on, processes
    // and threads, inherits the mask: the lab's helpers, the backend and the clients.
    pin_this_thread(CLIENT_CPU)?;
    crate::lab::on_stop_signals()?;

    let mut bench = Setup::new()?;
    println!(
        "bench: {} rounds of {}, {} s after {} s of warm-up each with {} connections in flight, \
         then {} s one at a time",
        args.rounds,
        Target::ALL.map(Target::name).join(", "),
        args.duration,
        args.warmup,
        args.workers,
        args.latency_duration
    );
    let mut samples = Vec::new();
    for round in 1..=args.rounds {
        for target in Target::ALL {
            let sample = bench.measure(target, args)?;
            println!("round {round}/{}: {}", args.rounds, describe(&sample));
            samples.push(sample);
        }
    }
    drop(bench);
    let disturbed = samples.iter().filter(|s| disturbed(s.elsewhere)).count();
    if disturbed > 0 {
        eprintln!(
            "bench: WARNING: other processes took CPU during {disturbed} of {} measurements: \
             rerun on an idle machine",
            samples.len()
        );
    }
    println!(
        "\n`cargo xtask bench capture --rounds {} --warmup {} --duration {} --workers {} \
         --latency-duration {}`, {}, medians of {} rounds:\n",
        args.rounds,
        args.warmup,
        args.duration,
        args.workers,
        args.latency_duration,
        today()?,
        args.rounds
    );
    print!("{}", report(&samples));
    Ok(())
}

/// The lab and what runs in it between measurements.
struct Setup {
    // Dropped first: the lab stops strait and the clients before the config goes.
    lab: Lab,
    config: ScratchDir,
    client: Pod,
    iptables_client: Pod,
    backend: Pod,
    backend_pid: u32,
}

impl Setup {
    fn new() -> Result<Self> {
        let mut lab = Lab::new("bench-capture")?;
        let backend = lab.add_uncaptured_pod("backend")?;
        let client = lab.add_pod("client")?;
        let iptables_client = lab.add_uncaptured_pod("client-ipt")?;
        for pod in [&client, &iptables_client] {
            let cmd = lab.pod_command(pod, "sysctl");
            run_checked(&mut lab, tune(cmd))?;
        }
        // strait's upstream connections come from the node namespace.
        let cmd = lab.node_command("sysctl");
        run_checked(&mut lab, tune(cmd))?;
        lab.redirect_to_strait(&iptables_client, SERVICE_CIDR, &[VIP.parse()?])?;

        let backend_pid = lab.serve_agent(&backend, BACKEND_PORT, "backend")?.pid();

        let config = ScratchDir::new("capture")?;
        config.write("bench.yaml", service_manifests(backend.ip))?;
        Ok(Setup {
            lab,
            config,
            client,
            iptables_client,
            backend,
            backend_pid,
        })
    }

    /// Starts strait for `target` (if any), runs the load, stops strait.
    fn measure(&mut self, target: Target, args: &CaptureArgs) -> Result<Sample> {
        let strait = match target {
            Target::Direct => None,
            _ => Some(self.start_strait(target)?),
        };
        let sample = self.load(target, strait.as_ref(), args);
        if let Some(strait) = strait {
            if let Some(status) = strait.try_wait()? {
                bail!(
                    "strait exited during the run: {status}{}",
                    strait.stderr_report()
                );
            }
            strait.stop(STRAIT_GRACE)?;
        }
        sample
    }

    /// strait for `target`, on [`PROXY_CPU`] alone from its first instruction.
    fn start_strait(&mut self, target: Target) -> Result<ChildHandle> {
        let capture = match target {
            Target::Ebpf => lab::Capture::Ebpf,
            Target::Iptables => lab::Capture::IptablesInPod(&self.iptables_client),
            Target::Direct => unreachable!("no proxy for direct"),
        }
        .strait_args();
        on_proxy_cpu(|| self.lab.start_strait(self.config.path(), &capture))
    }

    fn load(
        &mut self,
        target: Target,
        strait: Option<&ChildHandle>,
        args: &CaptureArgs,
    ) -> Result<Sample> {
        let load = Load {
            workers: args.workers,
            warmup: Duration::from_secs_f64(args.warmup),
            measure: Duration::from_secs_f64(args.duration),
        };
        let backend = self.backend_pid;
        let strait: Vec<u32> = strait.map(ChildHandle::pid).into_iter().collect();
        let clock = |client: u32| {
            let ours = [std::process::id(), client, backend];
            CpuClock::read(&strait, &[&strait[..], &ours].concat())
        };
        let (loaded, before, after) = self.run_client(target, &load, clock)?;
        let unloaded = if args.latency_duration > 0.0 {
            let one = Load {
                workers: 1,
                warmup: LATENCY_WARMUP,
                measure: Duration::from_secs_f64(args.latency_duration),
            };
            Some(self.run_client(target, &one, |_| Ok(()))?.0)
        } else {
            None
        };
        let strait = before
            .proxy_seconds(&after)
            .map(|seconds| (seconds, loaded.connections / seconds));
        Ok(Sample {
            target,
            conns_per_s: loaded.conns_per_s,
            p50_us: loaded.p50_us,
            p99_us: loaded.p99_us,
            unloaded: unloaded.as_ref().map(|u| (u.p50_us, u.p99_us)),
            errors: loaded.errors + unloaded.map_or(0, |u| u.errors),
            strait,
            node_us_per_conn: (after.node - before.node) * 1e6 / loaded.connections,
            elsewhere: before.elsewhere(&after, args.duration),
        })
    }

    /// Runs the client against `target`; `clock` (given the client's pid) is read when the
    /// measurement starts and when it ends.
    fn run_client<T>(
        &mut self,
        target: Target,
        load: &Load,
        clock: impl Fn(u32) -> Result<T>,
    ) -> Result<(Summary, T, T)> {
        let (pod, to) = match target {
            Target::Ebpf => (&self.client, VIP.to_owned()),
            Target::Iptables => (&self.iptables_client, VIP.to_owned()),
            Target::Direct => (&self.client, format!("{}:{BACKEND_PORT}", self.backend.ip)),
        };
        let mut client =
            self.lab
                .spawn_agent_bench(pod, &to, load.workers, load.warmup, load.measure)?;

        let line = next_line(&mut client, load.warmup + SLACK)?;
        ensure!(line == "measuring", "unexpected client output: {line}");
        let start = clock(client.pid())?;
        let line = next_line(&mut client, load.measure + SLACK)?;
        let end = clock(client.pid())?;
        match client.wait_timeout(SLACK)? {
            Some(status) if status.success() => {}
            Some(status) => bail!(
                "{} failed: {status}{}",
                client.name(),
                client.stderr_report()
            ),
            None => bail!("{} still ran {SLACK:?} after its summary", client.name()),
        }
        let summary = parse_summary(&line)?;
        ensure!(
            summary.connections > 0.0,
            "{}: no connection succeeded: {line}",
            target.name()
        );
        if summary.errors > 0 {
            eprintln!("bench: {}: {line}", target.name());
        }
        Ok((summary, start, end))
    }
}

fn parse_summary(line: &str) -> Result<Summary> {
    let summary: Value =
        serde_json::from_str(line).with_context(|| format!("the client's summary: {line}"))?;
    let number = |key: &str| {
        summary[key]
            .as_f64()
            .with_context(|| format!("no {key} in the client's summary: {line}"))
    };
    Ok(Summary {
        connections: number("connections")?,
        conns_per_s: number("conns_per_s")?,
        p50_us: number("p50_us")?,
        p99_us: number("p99_us")?,
        errors: number("errors")? as u64,
    })
}

/// `sysctl -q -w` of [`SYSCTLS`], for the namespace `cmd` runs in.
fn tune(mut cmd: Command) -> Command {
    cmd.args(["-q", "-w"]).args(SYSCTLS);
    cmd
}

/// Runs `cmd` in the lab to its end; fails with its stderr unless it succeeds.
fn run_checked(lab: &mut Lab, cmd: Command) -> Result<()> {
    let child = lab.spawn(cmd)?;
    match child.wait_timeout(lab::OUTPUT_TIMEOUT)? {
        Some(status) if status.success() => Ok(()),
        Some(status) => bail!("{} failed: {status}{}", child.name(), child.stderr_report()),
        None => bail!("{} still ran after {:?}", child.name(), lab::OUTPUT_TIMEOUT),
    }
}

/// The Service `bench` at [`VIP`], its one endpoint the backend pod.
fn service_manifests(backend: Ipv4Addr) -> String {
    let service = manifests::Service {
        name: "bench",
        app: "bench",
        vip: VIP.parse().expect("VIP is IP:PORT"),
        port_name: "tcp-bench",
        app_protocol: None,
        target_port: &BACKEND_PORT,
    };
    manifests::documents([
        service.yaml(),
        manifests::pod("backend", "bench", backend, &[]),
    ])
}

fn describe(sample: &Sample) -> String {
    let mut line = format!(
        "{:<8} {:>6.0} conn/s, p50 {:>5.0} us, p99 {:>5.0} us",
        sample.target.name(),
        sample.conns_per_s,
        sample.p50_us,
        sample.p99_us
    );
    if let Some((p50, p99)) = sample.unloaded {
        let _ = write!(line, "; one at a time p50 {p50:.0} us, p99 {p99:.0} us");
    }
    if let Some((cpu_s, per_cpu_s)) = sample.strait {
        let _ = write!(
            line,
            "; strait {cpu_s:.2} CPU s, {per_cpu_s:.0} conn per CPU-s"
        );
    }
    let _ = write!(
        line,
        "; node {:.0} CPU us per conn; cores {:.1} % busy elsewhere",
        sample.node_us_per_conn,
        sample.elsewhere * 100.0
    );
    if disturbed(sample.elsewhere) {
        line += " (DISTURBED)";
    }
    if sample.errors > 0 {
        let _ = write!(line, "; {} errors", sample.errors);
    }
    line
}

/// A target's medians over rounds, each metric on its own; errors are summed.
struct Medians {
    conns_per_s: Option<f64>,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    unloaded_p50_us: Option<f64>,
    unloaded_p99_us: Option<f64>,
    strait_cpu_s: Option<f64>,
    per_cpu_s: Option<f64>,
    node_us_per_conn: Option<f64>,
    errors: u64,
}

impl Medians {
    fn of(samples: &[Sample], target: Target) -> Self {
        let mine: Vec<&Sample> = samples.iter().filter(|s| s.target == target).collect();
        let of = |f: fn(&Sample) -> Option<f64>| median(mine.iter().filter_map(|s| f(s)).collect());
        Medians {
            conns_per_s: of(|s| Some(s.conns_per_s)),
            p50_us: of(|s| Some(s.p50_us)),
            p99_us: of(|s| Some(s.p99_us)),
            unloaded_p50_us: of(|s| Some(s.unloaded?.0)),
            unloaded_p99_us: of(|s| Some(s.unloaded?.1)),
            strait_cpu_s: of(|s| Some(s.strait?.0)),
            per_cpu_s: of(|s| Some(s.strait?.1)),
            node_us_per_conn: of(|s| Some(s.node_us_per_conn)),
            errors: mine.iter().map(|s| s.errors).sum(),
        }
    }
}

/// The markdown the README quotes: medians per target, then ratios between targets.
fn report(samples: &[Sample]) -> String {
    let rows: Vec<Vec<String>> = Target::ALL
        .into_iter()
        .map(|target| {
            let m = Medians::of(samples, target);
            vec![
                target.label().to_owned(),
                cell(m.conns_per_s, 0),
                cell(m.p50_us, 0),
                cell(m.p99_us, 0),
                cell(m.unloaded_p50_us, 0),
                cell(m.unloaded_p99_us, 0),
                cell(m.strait_cpu_s, 2),
                cell(m.per_cpu_s, 0),
                cell(m.node_us_per_conn, 0),
                m.errors.to_string(),
            ]
        })
        .collect();
    let ratios: Vec<Vec<String>> = [
        (Target::Ebpf, Target::Iptables),
        (Target::Ebpf, Target::Direct),
        (Target::Iptables, Target::Direct),
    ]
    .into_iter()
    .map(|(a, b)| {
        let (a_m, b_m) = (Medians::of(samples, a), Medians::of(samples, b));
        let of = |f: fn(&Medians) -> Option<f64>| ratio(f(&a_m), f(&b_m));
        vec![
            format!("{} / {}", a.name(), b.name()),
            of(|m| m.conns_per_s),
            of(|m| m.p50_us),
            of(|m| m.p99_us),
            of(|m| m.unloaded_p50_us),
            of(|m| m.unloaded_p99_us),
            of(|m| m.per_cpu_s),
            of(|m| m.node_us_per_conn),
        ]
    })
    .collect();
    let absolute = markdown_table(
        &[
            "client -> Service",
            "conn/s",
            "p50 µs",
            "p99 µs",
            "one at a time: p50 µs",
            "p99 µs",
            "strait CPU s",
            "conn per strait CPU-s",
            "node CPU µs per conn",
            "errors",
        ],
        &rows,
    );
    let relative = markdown_table(
        &[
            "ratio",
            "conn/s",
            "p50",
            "p99",
            "one at a time: p50",
            "p99",
            "conn per strait CPU-s",
            "node CPU per conn",
        ],
        &ratios,
    );
    absolute + "\n" + &relative
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_has_medians_and_ratios() {
        let sample = |target, conns_per_s, strait| Sample {
            target,
            conns_per_s,
            p50_us: 1000.0,
            p99_us: 4000.0,
            unloaded: Some((100.0, 200.0)),
            errors: 0,
            strait,
            node_us_per_conn: 1_000_000.0 / conns_per_s,
            elsewhere: 0.0,
        };
        let samples = [
            sample(Target::Ebpf, 12000.0, Some((5.0, 24000.0))),
            sample(Target::Ebpf, 11000.0, Some((6.0, 18000.0))),
            sample(Target::Ebpf, 13000.0, Some((5.0, 26000.0))),
            sample(Target::Iptables, 10000.0, Some((5.0, 20000.0))),
            sample(Target::Direct, 20000.0, None),
        ];
        let report = report(&samples);
        let has = |row: &str| assert!(report.contains(row), "{row}\nnot in\n{report}");
        has("| strait, eBPF capture | 12000 | 1000 | 4000 | 100 | 200 | 5.00 | 24000 | 83 | 0 |");
        has("| no proxy (pod IP) | 20000 | 1000 | 4000 | 100 | 200 | – | – | 50 | 0 |");
        has("| ebpf / iptables | 1.20× | 1.00× | 1.00× | 1.00× | 1.00× | 1.20× | 0.83× |");
        has("| ebpf / direct | 0.60× | 1.00× | 1.00× | 1.00× | 1.00× | – | 1.67× |");
    }
}
