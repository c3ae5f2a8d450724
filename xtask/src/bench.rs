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
//! strait runs only for its own target, alone on [`PROXY_CPU`]; the client, the backend and this
//! process share [`CLIENT_CPU`]. All run the release build. Each target is measured twice: under load (`--workers` in
//! flight: connections/s, latency, CPU), then one connection at a time (latency without queueing,
//! which under load only restates the rate). CPU time is read at the edges of the loaded window:
//! strait's (utime + stime), and the whole node's from /proc/stat, because capture costs land on
//! the client's core too (connect4 and sockops there, conntrack for iptables).

use std::{
    env,
    fmt::Write as _,
    fs,
    net::Ipv4Addr,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};
use nix::{
    sched::{sched_getaffinity, sched_setaffinity, CpuSet},
    unistd::{sysconf, Pid, SysconfVar},
};
use serde_json::Value;
use strait_tests::{
    lab::{self, ChildHandle, Lab, Pod},
    manifests,
};

use crate::cargo;

#[derive(clap::Subcommand)]
pub enum Bench {
    /// Short TCP connections through strait: eBPF capture, iptables REDIRECT, and no proxy.
    Capture(CaptureArgs),
}

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

pub fn run(bench: Bench) -> Result<()> {
    match bench {
        Bench::Capture(args) => capture(&args),
    }
}

const PROXY_CPU: usize = 1;
const CLIENT_CPU: usize = 0;
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
const POLL: Duration = Duration::from_millis(200);
/// Before the one-at-a-time pass, which follows the load: strait is warm by then.
const LATENCY_WARMUP: Duration = Duration::from_secs(1);
/// The share of the two cores' time that others may take during a measurement before it is
/// flagged. Kernel threads under this load (ksoftirqd, kworkers, rcu) take 1-4 %.
const ELSEWHERE_LIMIT: f64 = 0.05;

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

/// CPU seconds used so far.
struct CpuClock {
    strait: Option<f64>,
    /// The benchmark's processes: this one, the client, the backend and strait.
    ours: f64,
    /// The whole node: all but idle and iowait.
    node: f64,
}

fn capture(args: &CaptureArgs) -> Result<()> {
    crate::lab::ensure_root()?;
    ensure!(
        args.rounds > 0 && args.workers > 0,
        "rounds and workers must be positive"
    );
    let own = sched_getaffinity(Pid::from_raw(0))?;
    ensure!(
        own.is_set(CLIENT_CPU)? && own.is_set(PROXY_CPU)?,
        "the benchmark pins strait to CPU {PROXY_CPU} and the rest to CPU {CLIENT_CPU}: it needs both"
    );
    if !args.no_build {
        crate::build_lab_bins(&["--release"])?;
    }
    use_release_bins()?;
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
    let disturbed = samples.iter().filter(|s| disturbed(s)).count();
    if disturbed > 0 {
        eprintln!(
            "bench: WARNING: other processes took CPU during {disturbed} of {} measurements: \
             rerun on an idle machine",
            samples.len()
        );
    }
    let date = cargo::output(Command::new("date").args(["-u", "+%Y-%m-%d"]))?;
    println!(
        "\n`cargo xtask bench capture --rounds {} --warmup {} --duration {} --workers {} \
         --latency-duration {}`, {}, medians of {} rounds:\n",
        args.rounds,
        args.warmup,
        args.duration,
        args.workers,
        args.latency_duration,
        date.trim(),
        args.rounds
    );
    print!("{}", report(&samples));
    Ok(())
}

/// The lab finds its binaries through `CARGO_BIN_EXE_<name>` (as cargo sets it for tests):
/// point it at the release build. Set before any thread exists: `set_var` is not thread-safe.
fn use_release_bins() -> Result<()> {
    let release = cargo::target_dir()?.join("release");
    for name in ["strait", "strait-lab-agent"] {
        let bin = release.join(name);
        ensure!(
            bin.is_file(),
            "{} is missing: build it first",
            bin.display()
        );
        env::set_var(format!("CARGO_BIN_EXE_{name}"), bin);
    }
    Ok(())
}

/// The lab and what runs in it between measurements.
struct Setup {
    // Dropped first: the lab stops strait and the clients before the config goes.
    lab: Lab,
    config: ConfigDir,
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

        let config = ConfigDir::new(&service_manifests(backend.ip))?;
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
        // A child starts with the CPU mask of the thread that forked it, as under `taskset`, and
        // tokio sizes strait's runtime by it. The threads the lab starts meanwhile (output
        // readers, readiness polls) share that core, idle while strait is measured.
        pin_this_thread(PROXY_CPU)?;
        let strait = self.lab.start_strait(&self.config.0, &capture);
        pin_this_thread(CLIENT_CPU)?;
        strait
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
        let clock = |client: u32| -> Result<CpuClock> {
            let strait = strait.map(|s| cpu_seconds(s.pid())).transpose()?;
            let others = [std::process::id(), client, backend].map(cpu_seconds);
            Ok(CpuClock {
                strait,
                ours: strait.unwrap_or(0.0) + others.into_iter().sum::<Result<f64>>()?,
                node: node_cpu_seconds()?,
            })
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
        let strait = before.strait.zip(after.strait).map(|(before, after)| {
            let seconds = after - before;
            (seconds, loaded.connections / seconds)
        });
        Ok(Sample {
            target,
            conns_per_s: loaded.conns_per_s,
            p50_us: loaded.p50_us,
            p99_us: loaded.p99_us,
            unloaded: unloaded.as_ref().map(|u| (u.p50_us, u.p99_us)),
            errors: loaded.errors + unloaded.map_or(0, |u| u.errors),
            strait,
            node_us_per_conn: (after.node - before.node) * 1e6 / loaded.connections,
            elsewhere: ((after.node - before.node) - (after.ours - before.ours))
                / (2.0 * args.duration),
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

fn pin_this_thread(cpu: usize) -> Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu)?;
    sched_setaffinity(Pid::from_raw(0), &set).with_context(|| format!("pinning to CPU {cpu}"))
}

/// The client's next stdout line within `timeout`; gives up early on Ctrl-C.
fn next_line(client: &mut ChildHandle, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    while !crate::lab::stop_requested() {
        match client.next_line(POLL) {
            Ok(Some(line)) => return Ok(line),
            Ok(None) => bail!("{} ended early{}", client.name(), client.stderr_report()),
            Err(err) if Instant::now() >= deadline => return Err(err),
            // Nothing yet: look at the stop flag again.
            Err(_) => {}
        }
    }
    bail!("interrupted")
}

/// utime + stime of `pid`, all its threads, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let ticks = process_ticks(&stat).with_context(|| format!("no utime/stime in {path}"))?;
    ticks_to_seconds(ticks)
}

/// Busy time of all CPUs, in seconds.
fn node_cpu_seconds() -> Result<f64> {
    let stat = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    ticks_to_seconds(node_busy_ticks(&stat).context("no cpu line in /proc/stat")?)
}

fn ticks_to_seconds(ticks: u64) -> Result<f64> {
    let per_second = sysconf(SysconfVar::CLK_TCK)?.context("no CLK_TCK")?;
    Ok(ticks as f64 / per_second as f64)
}

/// Fields 14 and 15 (utime, stime) of proc_pid_stat(5), in clock ticks.
fn process_ticks(stat: &str) -> Option<u64> {
    // Field 2, the command name, may hold spaces and parentheses: count after its last `)`.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(field(14)? + field(15)?)
}

/// user + nice + system + irq + softirq + steal from the `cpu` line of proc_stat(5), in ticks
/// (guest time is already in user). With tick accounting, a process's stime holds the softirq
/// work done while it ran, so this and [`process_ticks`] add up. Steal is the hypervisor's:
/// counted, so that a noisy neighbour shows as a disturbance.
fn node_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    [0, 1, 2, 5, 6, 7].iter().map(|&i| ticks.get(i)).sum()
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

/// strait's config directory, removed on drop.
struct ConfigDir(PathBuf);

impl ConfigDir {
    fn new(manifests: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("strait-bench-{}", std::process::id()));
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = ConfigDir(dir);
        fs::write(dir.0.join("bench.yaml"), manifests)?;
        Ok(dir)
    }
}

impl Drop for ConfigDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Whether something outside the benchmark took enough CPU to skew it (kernel threads doing
/// the network's deferred work stay well below this).
fn disturbed(sample: &Sample) -> bool {
    sample.elsewhere > ELSEWHERE_LIMIT
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
    if disturbed(sample) {
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

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[n / 2]),
        n => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// The markdown the README quotes: medians per target, then ratios between targets.
fn report(samples: &[Sample]) -> String {
    let cell = |value: Option<f64>, decimals: usize| {
        value.map_or("–".into(), |v| format!("{v:.decimals$}"))
    };
    let mut out = String::from(
        "| client -> Service | conn/s | p50 µs | p99 µs | one at a time: p50 µs | p99 µs \
         | strait CPU s | conn per strait CPU-s | node CPU µs per conn | errors |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for target in Target::ALL {
        let m = Medians::of(samples, target);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            target.label(),
            cell(m.conns_per_s, 0),
            cell(m.p50_us, 0),
            cell(m.p99_us, 0),
            cell(m.unloaded_p50_us, 0),
            cell(m.unloaded_p99_us, 0),
            cell(m.strait_cpu_s, 2),
            cell(m.per_cpu_s, 0),
            cell(m.node_us_per_conn, 0),
            m.errors
        );
    }
    out += "\n| ratio | conn/s | p50 | p99 | one at a time: p50 | p99 | conn per strait CPU-s \
            | node CPU per conn |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
    for (a, b) in [
        (Target::Ebpf, Target::Iptables),
        (Target::Ebpf, Target::Direct),
        (Target::Iptables, Target::Direct),
    ] {
        let (a_m, b_m) = (Medians::of(samples, a), Medians::of(samples, b));
        let ratio = |f: fn(&Medians) -> Option<f64>| match (f(&a_m), f(&b_m)) {
            (Some(x), Some(y)) => format!("{:.2}×", x / y),
            _ => "–".into(),
        };
        let _ = writeln!(
            out,
            "| {} / {} | {} | {} | {} | {} | {} | {} | {} |",
            a.name(),
            b.name(),
            ratio(|m| m.conns_per_s),
            ratio(|m| m.p50_us),
            ratio(|m| m.p99_us),
            ratio(|m| m.unloaded_p50_us),
            ratio(|m| m.unloaded_p99_us),
            ratio(|m| m.per_cpu_s),
            ratio(|m| m.node_us_per_conn),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_cpu_time_is_read_past_the_command_name() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime ...
        let stat = "42 (a) b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 3 0";
        assert_eq!(process_ticks(stat), Some(281));
        assert_eq!(process_ticks("42 (x) S 1"), None);
    }

    #[test]
    fn node_cpu_time_leaves_out_idle_and_iowait() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let stat = "cpu  100 1 50 9000 70 2 30 3 0 0\ncpu0 50 0 25 4500 35 1 15 1 0 0\n";
        assert_eq!(node_busy_ticks(stat), Some(186));
        assert_eq!(node_busy_ticks("intr 1 2"), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }

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
