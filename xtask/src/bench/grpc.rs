//! `cargo xtask bench grpc`: unary gRPC through strait against the proxies people run today,
//! Envoy, nginx (`grpc_pass`) and HAProxy, to the same fast backend, with h2load as the client.
//!
//! Per round, in turn: each proxy is started alone on [`PROXY_CPU`](super::PROXY_CPU) with one
//! worker (strait's tokio runtime sizes itself by that mask, Envoy `--concurrency 1`, nginx
//! `worker_processes 1`, HAProxy `nbthread 1`), loaded by h2load, and stopped; h2load, the
//! backend and this process share [`CLIENT_CPU`]. The same client against the backend alone
//! (`direct`) is the ceiling. On two cores the client's core caps the rate, so the table also
//! says what each proxy's core did: requests per proxy CPU-second.
//!
//! The backend is nginx answering every call with one HelloReply and `grpc-status: 0` from
//! memory. h2load counts any HTTP 200 as a success and never reads grpc-status, so the first
//! round first checks, through each target, that a real gRPC client (the Rust Greeter) parses
//! the reply and sees status 0.

mod peers;

use std::{fmt::Write as _, fs, net::SocketAddr, path::Path, process::Command, time::Duration};

use anyhow::{bail, ensure, Context, Result};
use strait_tests::{
    greeter::{self, CallOptions, Implementation},
    h2load,
    lab::ChildProcess,
};

use self::peers::{Programs, Server};
use super::{
    cell, disturbed, ensure_both_cpus, markdown_table, median, next_line, on_proxy_cpu,
    peak_rss_kib, pin_this_thread, process_tree, ratio, today, use_release_bins, CpuClock,
    ScratchDir, CLIENT_CPU,
};
use crate::cargo;

/// The Service the calls name; strait routes by it, the peers forward everything.
const SERVICE_NAME: &str = "greeter";
const AUTHORITY_PORT: u16 = 50051;
const PATH: &str = "/helloworld.Greeter/SayHello";
/// The HelloRequest's name and the HelloReply's message.
const REQUEST_NAME: &str = "world";
const REPLY_MESSAGE: &str = "Hello world";
/// Calls the gRPC check makes through each target, a few at a time.
const CHECK_CALLS: u64 = 200;
const CHECK_CONCURRENCY: u64 = 8;
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// Beyond the warm-up or the measurement, how long h2load may take to say something.
const SLACK: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(10);
/// What h2load prints (per thread) when its measured phase starts and ends.
const MEASURING: &str = "Main benchmark duration is started";
const MEASURED: &str = "Main benchmark duration is over";
/// The README quotes this file.
const REPORT_FILE: &str = "bench/grpc.md";

#[derive(clap::Args)]
pub struct GrpcArgs {
    /// Rounds of (strait, Envoy, nginx, HAProxy, direct); the table quotes medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of load before each measurement (h2load --warm-up-time).
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Seconds measured per target and round (h2load -D).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// HTTP/2 connections h2load opens (-c).
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Calls in flight per connection (h2load -m).
    #[arg(long, default_value_t = 16)]
    streams: usize,
    /// h2load threads (-t); more than one takes CPU from the backend on the client's core.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// A smoke run: one round, 1 s of warm-up, 2 s measured (overrides those flags).
    #[arg(long)]
    quick: bool,
    /// Only these targets, in this order (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    targets: Vec<Target>,
    /// Run the release binaries as they are: no build.
    #[arg(long)]
    no_build: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Strait,
    /// strait writing a JSON access log line per call to a file: what logging costs.
    StraitLogged,
    Envoy,
    Nginx,
    Haproxy,
    Direct,
}

impl Target {
    const ALL: [Target; 6] = [
        Target::Strait,
        Target::StraitLogged,
        Target::Envoy,
        Target::Nginx,
        Target::Haproxy,
        Target::Direct,
    ];
    const PEERS: [Target; 3] = [Target::Envoy, Target::Nginx, Target::Haproxy];

    fn name(self) -> &'static str {
        match self {
            Target::Strait => "strait",
            Target::StraitLogged => "strait-logged",
            Target::Envoy => "envoy",
            Target::Nginx => "nginx",
            Target::Haproxy => "haproxy",
            Target::Direct => "direct",
        }
    }
}

/// What one run does, after `--quick` and `--targets` are applied.
struct Plan {
    rounds: usize,
    warmup: f64,
    duration: f64,
    connections: usize,
    streams: usize,
    threads: usize,
    targets: Vec<Target>,
}

impl Plan {
    fn of(args: &GrpcArgs) -> Result<Plan> {
        let (rounds, warmup, duration) = match args.quick {
            true => (1, 1.0, 2.0),
            false => (args.rounds, args.warmup, args.duration),
        };
        ensure!(
            rounds > 0 && args.connections > 0 && args.streams > 0 && args.threads > 0,
            "rounds, connections, streams and threads must be positive"
        );
        ensure!(
            warmup >= 0.0 && duration > 0.0,
            "the measurement needs a positive duration"
        );
        ensure!(
            args.connections.is_multiple_of(args.threads),
            "h2load wants the connections divisible by its threads"
        );
        let targets = match args.targets.is_empty() {
            true => Target::ALL.to_vec(),
            false => args.targets.clone(),
        };
        Ok(Plan {
            rounds,
            warmup,
            duration,
            connections: args.connections,
            streams: args.streams,
            threads: args.threads,
            targets,
        })
    }

    /// The most calls in flight at once.
    fn in_flight(&self) -> usize {
        self.connections * self.streams
    }

    /// What the run is about to do, and how busy the machine was before.
    fn announce(&self, programs: &Programs) -> Result<String> {
        let targets: Vec<&str> = self.targets.iter().map(|t| t.name()).collect();
        Ok(format!(
            "bench: {} rounds of {}: h2load {} -t{} -c{} -m{}, {} s measured after {} s of \
             warm-up; load average before: {}",
            self.rounds,
            targets.join(", "),
            programs.h2load.version,
            self.threads,
            self.connections,
            self.streams,
            self.duration,
            self.warmup,
            load_average()?,
        ))
    }

    /// The command line that repeats this run.
    fn command_line(&self) -> String {
        let mut line = format!(
            "cargo xtask bench grpc --rounds {} --warmup {} --duration {} --connections {} \
             --streams {} --threads {}",
            self.rounds, self.warmup, self.duration, self.connections, self.streams, self.threads
        );
        if self.targets != Target::ALL {
            let names: Vec<&str> = self.targets.iter().map(|t| t.name()).collect();
            let _ = write!(line, " --targets {}", names.join(","));
        }
        line
    }
}

/// One measurement of one target.
#[derive(Clone, Debug)]
struct Sample {
    target: Target,
    /// Successful calls in the measured window.
    calls: u64,
    /// The measured window.
    seconds: f64,
    /// The proxy's CPU seconds in the window; none for `direct`.
    proxy_cpu_s: Option<f64>,
    p50_ms: f64,
    p99_ms: f64,
    /// Peak RSS of the proxy's processes, summed (nginx: master and worker).
    rss_mib: Option<f64>,
    /// Calls h2load counted as failed, errored or timed out.
    failures: u64,
    /// Busy time of processes outside the benchmark, as a share of the two cores.
    elsewhere: f64,
}

impl Sample {
    fn calls_per_s(&self) -> f64 {
        self.calls as f64 / self.seconds
    }

    fn calls_per_cpu_s(&self) -> Option<f64> {
        Some(self.calls as f64 / self.proxy_cpu_s?)
    }
}

pub fn run(args: &GrpcArgs) -> Result<()> {
    let plan = Plan::of(args)?;
    ensure_both_cpus()?;
    let programs = Programs::find_or_install()?;
    if !args.no_build {
        build_release()?;
    }
    use_release_bins(&["strait", "strait-greeter"])?;
    // After the build, which wants both cores. What this thread starts from now on inherits
    // the mask: the backend, h2load, the gRPC checks.
    pin_this_thread(CLIENT_CPU)?;
    crate::lab::on_stop_signals()?;

    let dir = ScratchDir::new("grpc")?;
    let request = dir.write("request.bin", h2load::grpc_frame(REQUEST_NAME))?;
    let backend = peers::start_backend(&programs, &dir)?;
    println!("{}", plan.announce(&programs)?);
    let bench = Bench {
        plan: &plan,
        programs: &programs,
        dir: &dir,
        request: &request,
        backend: &backend,
    };
    let samples = bench.rounds()?;
    drop(backend);
    warn_about(&samples);
    publish(&plan, &samples, &programs)
}

fn build_release() -> Result<()> {
    cargo::run(cargo::stable().args([
        "build",
        "--release",
        "-p",
        "strait",
        "-p",
        "strait-tests",
        "--bin",
        "strait",
        "--bin",
        "strait-greeter",
    ]))
}

/// Prints the report and writes it to [`REPORT_FILE`] in the target directory.
fn publish(plan: &Plan, samples: &[Sample], programs: &Programs) -> Result<()> {
    let most_elsewhere = samples.iter().map(|s| s.elsewhere).fold(0.0, f64::max);
    let report = format!(
        "`{}`, {}, medians of {} rounds (other processes took up to {} of the two cores):\n\n{}",
        plan.command_line(),
        today()?,
        plan.rounds,
        percent(most_elsewhere),
        report(samples, &plan.targets, programs)
    );
    let file = cargo::target_dir()?.join(REPORT_FILE);
    fs::create_dir_all(file.parent().expect("a file in a directory"))?;
    fs::write(&file, &report).with_context(|| format!("writing {}", file.display()))?;
    println!("\n{report}\n(also in {})", file.display());
    Ok(())
}

/// What every measurement of a run shares.
struct Bench<'a> {
    plan: &'a Plan,
    programs: &'a Programs,
    dir: &'a ScratchDir,
    request: &'a Path,
    backend: &'a Server,
}

impl Bench<'_> {
    /// Every target once per round, in the plan's order; the first round checks each with a
    /// gRPC client first.
    fn rounds(&self) -> Result<Vec<Sample>> {
        let mut samples = Vec::new();
        for round in 1..=self.plan.rounds {
            for &target in &self.plan.targets {
                let sample = self.measure(target, round == 1)?;
                println!("round {round}/{}: {}", self.plan.rounds, describe(&sample));
                samples.push(sample);
            }
        }
        Ok(samples)
    }

    /// Starts the proxy for `target` (if any), checks it with a gRPC client if `check`, loads
    /// it with h2load, stops it.
    fn measure(&self, target: Target, check: bool) -> Result<Sample> {
        let proxy = on_proxy_cpu(|| {
            peers::start_proxy(
                target,
                self.programs,
                self.dir,
                self.backend.listen,
                self.plan.in_flight(),
            )
        })
        .with_context(|| format!("starting {}", target.name()))?;
        let to = proxy.as_ref().unwrap_or(self.backend).listen;
        if check {
            check_grpc(target, to)?;
        }
        let sample = self.load(target, to, proxy.as_ref().map(|p| &p.process));
        if let Some(proxy) = proxy {
            if let Some(status) = proxy.process.try_wait()? {
                bail!(
                    "{} exited during the run: {status}{}",
                    target.name(),
                    proxy.process.stderr_report()
                );
            }
            proxy.process.stop(STOP_GRACE)?;
        }
        sample
    }

    /// Runs h2load against `to`; reads the proxy's CPU time and the node's when its measured
    /// phase starts and ends, and the proxy's peak RSS at the end.
    fn load(&self, target: Target, to: SocketAddr, proxy: Option<&ChildProcess>) -> Result<Sample> {
        let log = self
            .dir
            .path()
            .join(format!("h2load-{}.log", target.name()));
        let mut h2load = ChildProcess::spawn(self.h2load_command(to, &log), "h2load")?;
        let warmup = Duration::from_secs_f64(self.plan.warmup);
        let duration = Duration::from_secs_f64(self.plan.duration);
        let mut output = String::new();
        read_until(&mut h2load, MEASURING, 1, warmup + SLACK, &mut output)?;

        // The trees as the window opens: nginx's worker exists by then, and no process of
        // ours (h2load included) ends before the window closes.
        let proxy_pids = proxy.map(|p| process_tree(p.pid())).transpose()?;
        let proxy_pids = proxy_pids.unwrap_or_default();
        let ours = process_tree(std::process::id())?;
        let start = CpuClock::read(&proxy_pids, &ours)?;
        let threads = self.plan.threads;
        read_until(
            &mut h2load,
            MEASURED,
            threads,
            duration + SLACK,
            &mut output,
        )?;
        let end = CpuClock::read(&proxy_pids, &ours)?;
        let rss_kib = proxy_pids
            .iter()
            .map(|&pid| peak_rss_kib(pid))
            .sum::<Result<u64>>()?;

        let output = finish(&mut h2load, output)?;
        let summary = h2load::Summary::parse(&output)?;
        let latencies = successful_latencies_us(&fs::read_to_string(&log)?)?;
        ensure!(
            !latencies.is_empty(),
            "{}: no call succeeded:\n{output}",
            target.name()
        );
        Ok(Sample {
            target,
            calls: summary.succeeded,
            // h2load's timer ends the measured phase.
            seconds: self.plan.duration,
            proxy_cpu_s: start.proxy_seconds(&end),
            p50_ms: percentile(&latencies, 0.50) / 1000.0,
            p99_ms: percentile(&latencies, 0.99) / 1000.0,
            rss_mib: proxy.map(|_| rss_kib as f64 / 1024.0),
            failures: summary.failures(),
            elsewhere: start.elsewhere(&end, self.plan.duration),
        })
    }

    /// Unary calls: one HelloRequest frame per POST, with gRPC's headers.
    fn h2load_command(&self, to: SocketAddr, log: &Path) -> Command {
        let plan = self.plan;
        let mut cmd = Command::new(&self.programs.h2load.path);
        cmd.arg(format!("-t{}", plan.threads))
            .arg(format!("-c{}", plan.connections))
            .arg(format!("-m{}", plan.streams))
            .arg(format!(
                "--warm-up-time={}ms",
                (plan.warmup * 1000.0).round()
            ))
            .arg(format!("--duration={}ms", (plan.duration * 1000.0).round()))
            .args(h2load::unary_grpc_args(self.request, &authority()))
            .arg(format!("--log-file={}", log.display()))
            .arg(format!("http://{to}{PATH}"));
        cmd
    }
}

/// What the calls name: the Service's FQDN and port, as a client in the mesh would.
fn authority() -> String {
    format!("{SERVICE_NAME}.default.svc.cluster.local:{AUTHORITY_PORT}")
}

/// A real gRPC client through `to`: every call must end with status 0 and the backend's reply.
fn check_grpc(target: Target, to: SocketAddr) -> Result<()> {
    let mut options = CallOptions::new(to).count(CHECK_CALLS);
    options.concurrency = CHECK_CONCURRENCY;
    options.name = REQUEST_NAME.into();
    options.authority = Some(authority());
    let report = greeter::run_client(Implementation::Rust, &options, CHECK_TIMEOUT)
        .with_context(|| format!("gRPC check through {}", target.name()))?;
    let summary = &report.summary;
    ensure!(
        summary.ok == CHECK_CALLS,
        "gRPC check through {}: {} of {CHECK_CALLS} calls succeeded: {summary:?}",
        target.name(),
        summary.ok
    );
    if let Some(call) = report.calls.iter().find(|c| c.message != REPLY_MESSAGE) {
        bail!(
            "gRPC check through {}: the reply was {:?}, not {REPLY_MESSAGE:?}",
            target.name(),
            call.message
        );
    }
    println!(
        "bench: {}: {CHECK_CALLS} gRPC calls, all status 0 with the backend's reply",
        target.name()
    );
    Ok(())
}

/// Reads h2load's stdout into `output` until `count` lines have contained `marker`.
fn read_until(
    h2load: &mut ChildProcess,
    marker: &str,
    count: usize,
    timeout: Duration,
    output: &mut String,
) -> Result<()> {
    let mut seen = 0;
    while seen < count {
        let line = next_line(h2load, timeout)
            .with_context(|| format!("waiting for h2load to say {marker:?}:\n{output}"))?;
        seen += usize::from(line.contains(marker));
        *output += &line;
        output.push('\n');
    }
    Ok(())
}

/// Reads the rest of h2load's output after `output`; fails unless it then exits cleanly.
fn finish(h2load: &mut ChildProcess, mut output: String) -> Result<String> {
    while let Some(line) = h2load.next_line(SLACK)? {
        output += &line;
        output.push('\n');
    }
    match h2load.wait_timeout(SLACK)? {
        Some(status) if status.success() => Ok(output),
        Some(status) => bail!(
            "h2load failed: {status}\n{output}{}",
            h2load.stderr_report()
        ),
        None => bail!("h2load still ran {SLACK:?} after its summary"),
    }
}

/// The durations (µs) of the calls that got a 200, from h2load's `--log-file`: one line per
/// call of the measured phase, `start (µs since the epoch) TAB status (-1: failed) TAB µs`.
fn successful_latencies_us(log: &str) -> Result<Vec<u64>> {
    let mut latencies = Vec::new();
    for line in log.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [_, status, micros] = fields[..] else {
            bail!("not an h2load log line: {line:?}");
        };
        if status == "200" {
            latencies.push(micros.parse().with_context(|| format!("in {line:?}"))?);
        }
    }
    latencies.sort_unstable();
    Ok(latencies)
}

/// The nearest-rank percentile `p` (0..=1) of `sorted`, which is not empty.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

/// The first three fields of /proc/loadavg.
fn load_average() -> Result<String> {
    let text = fs::read_to_string("/proc/loadavg").context("reading /proc/loadavg")?;
    Ok(text
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" "))
}

fn percent(share: f64) -> String {
    format!("{:.1} %", share * 100.0)
}

fn describe(sample: &Sample) -> String {
    let mut line = format!(
        "{:<8} {:>6.0} calls/s, p50 {:>5.2} ms, p99 {:>5.2} ms",
        sample.target.name(),
        sample.calls_per_s(),
        sample.p50_ms,
        sample.p99_ms
    );
    if let (Some(cpu_s), Some(per_cpu_s)) = (sample.proxy_cpu_s, sample.calls_per_cpu_s()) {
        let _ = write!(
            line,
            "; proxy {cpu_s:.2} CPU s, {per_cpu_s:.0} calls per CPU-s"
        );
    }
    if let Some(rss) = sample.rss_mib {
        let _ = write!(line, ", peak RSS {rss:.1} MiB");
    }
    let _ = write!(line, "; {} elsewhere", percent(sample.elsewhere));
    if disturbed(sample.elsewhere) {
        line += " (DISTURBED)";
    }
    if sample.failures > 0 {
        let _ = write!(line, "; {} FAILED calls", sample.failures);
    }
    line
}

fn warn_about(samples: &[Sample]) {
    let disturbed = samples.iter().filter(|s| disturbed(s.elsewhere)).count();
    if disturbed > 0 {
        eprintln!(
            "bench: WARNING: other processes took CPU during {disturbed} of {} measurements: \
             rerun on an idle machine",
            samples.len()
        );
    }
    let failures: u64 = samples.iter().map(|s| s.failures).sum();
    if failures > 0 {
        eprintln!("bench: WARNING: h2load counted {failures} failed calls (see the table)");
    }
}

/// A target's medians over rounds, each metric on its own; failures are summed.
struct Medians {
    calls_per_s: Option<f64>,
    calls_per_cpu_s: Option<f64>,
    /// The proxy's share of its core.
    proxy_busy: Option<f64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    rss_mib: Option<f64>,
    failures: u64,
}

impl Medians {
    fn of(samples: &[Sample], target: Target) -> Self {
        let mine: Vec<&Sample> = samples.iter().filter(|s| s.target == target).collect();
        let of =
            |f: &dyn Fn(&Sample) -> Option<f64>| median(mine.iter().filter_map(|s| f(s)).collect());
        Medians {
            calls_per_s: of(&|s| Some(s.calls_per_s())),
            calls_per_cpu_s: of(&Sample::calls_per_cpu_s),
            proxy_busy: of(&|s| Some(s.proxy_cpu_s? / s.seconds)),
            p50_ms: of(&|s| Some(s.p50_ms)),
            p99_ms: of(&|s| Some(s.p99_ms)),
            rss_mib: of(&|s| s.rss_mib),
            failures: mine.iter().map(|s| s.failures).sum(),
        }
    }
}

/// The markdown the README quotes: medians per target, then each proxy against the best peer
/// (by calls per CPU-second), then strait against the targets.
fn report(samples: &[Sample], targets: &[Target], programs: &Programs) -> String {
    let medians: Vec<(Target, Medians)> = targets
        .iter()
        .map(|&t| (t, Medians::of(samples, t)))
        .collect();
    let rows: Vec<Vec<String>> = medians
        .iter()
        .map(|(target, m)| {
            vec![
                programs.label(*target),
                cell(m.calls_per_s, 0),
                cell(m.calls_per_cpu_s, 0),
                cell(m.proxy_busy.map(|b| b * 100.0), 0),
                cell(m.p50_ms, 2),
                cell(m.p99_ms, 2),
                cell(m.rss_mib, 1),
                m.failures.to_string(),
            ]
        })
        .collect();
    let mut out = markdown_table(
        &[
            "unary gRPC via",
            "calls/s",
            "calls per proxy CPU-s",
            "proxy core busy %",
            "p50 ms",
            "p99 ms",
            "peak RSS MiB",
            "failed",
        ],
        &rows,
    );
    let median_of = |target| medians.iter().find(|(t, _)| *t == target).map(|(_, m)| m);
    if let Some((strait, logged)) = median_of(Target::Strait).zip(median_of(Target::StraitLogged)) {
        out += "\n";
        out += &logging_cost(strait, logged);
    }
    let Some((best, best_m)) = best_peer(&medians) else {
        return out;
    };
    let ratios: Vec<Vec<String>> = medians
        .iter()
        .filter(|(t, _)| *t != Target::Direct)
        .map(|(target, m)| {
            vec![
                programs.label(*target),
                ratio(m.calls_per_s, best_m.calls_per_s),
                ratio(m.calls_per_cpu_s, best_m.calls_per_cpu_s),
                ratio(m.p50_ms, best_m.p50_ms),
                ratio(m.p99_ms, best_m.p99_ms),
                ratio(m.rss_mib, best_m.rss_mib),
            ]
        })
        .collect();
    let best_label = format!("vs {} (best peer)", programs.label(*best));
    out += "\n";
    out += &markdown_table(
        &[
            &best_label,
            "calls/s",
            "calls per CPU-s",
            "p50",
            "p99",
            "peak RSS",
        ],
        &ratios,
    );
    if let Some(strait) = median_of(Target::Strait) {
        out += "\n";
        out += &verdict(strait, best_m, median_of(Target::Envoy));
    }
    out
}

/// What the access log costs: strait with it against strait without.
fn logging_cost(strait: &Medians, logged: &Medians) -> String {
    format!(
        "- the access log (JSON, to a file): calls per CPU-second {}, p99 {} of strait without it\n",
        ratio(logged.calls_per_cpu_s, strait.calls_per_cpu_s),
        ratio(logged.p99_ms, strait.p99_ms),
    )
}

/// The peer with the most calls per CPU-second.
fn best_peer(medians: &[(Target, Medians)]) -> Option<&(Target, Medians)> {
    medians
        .iter()
        .filter(|(target, _)| Target::PEERS.contains(target))
        .filter_map(|entry| Some((entry, entry.1.calls_per_cpu_s?)))
        .max_by(|(_, a), (_, b)| a.total_cmp(b))
        .map(|(entry, _)| entry)
}

/// strait against the targets: at least 1.2× the best peer's calls per CPU-second, a
/// p99 no worse than the best peer's, and less memory than Envoy.
fn verdict(strait: &Medians, best: &Medians, envoy: Option<&Medians>) -> String {
    let check = |name: &str, x: Option<f64>, y: Option<f64>, met: fn(f64) -> bool| {
        let outcome = match x.zip(y).map(|(x, y)| x / y) {
            Some(r) if met(r) => "met",
            Some(_) => "NOT met",
            None => "not measured",
        };
        format!("- {name}: {} ({outcome})\n", ratio(x, y))
    };
    check(
        "strait's calls per CPU-second against the best peer's (target ≥ 1.20×)",
        strait.calls_per_cpu_s,
        best.calls_per_cpu_s,
        |r| r >= 1.2,
    ) + &check(
        "strait's p99 against the best peer's (target ≤ 1.00×)",
        strait.p99_ms,
        best.p99_ms,
        |r| r <= 1.0,
    ) + &check(
        "strait's peak RSS against Envoy's (target < 1.00×)",
        strait.rss_mib,
        envoy.and_then(|e| e.rss_mib),
        |r| r < 1.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn programs() -> Programs {
        let program = |version: &str| peers::Program {
            path: "/bin/true".into(),
            version: version.into(),
        };
        Programs {
            h2load: program("1.52.0"),
            envoy: program("1.40.0"),
            nginx: program("1.22.1"),
            haproxy: program("2.6.12"),
        }
    }

    fn sample(target: Target, calls_per_cpu_s: Option<f64>, p99_ms: f64, rss: f64) -> Sample {
        Sample {
            target,
            calls: 300_000,
            seconds: 10.0,
            proxy_cpu_s: calls_per_cpu_s.map(|per| 300_000.0 / per),
            p50_ms: 2.0,
            p99_ms,
            rss_mib: calls_per_cpu_s.map(|_| rss),
            failures: 0,
            elsewhere: 0.01,
        }
    }

    #[test]
    fn the_report_compares_with_the_best_peer() {
        let samples = [
            sample(Target::Strait, Some(48_000.0), 6.0, 10.0),
            sample(Target::Strait, Some(60_000.0), 4.0, 12.0),
            sample(Target::Strait, Some(50_000.0), 5.0, 11.0),
            sample(Target::StraitLogged, Some(45_000.0), 5.5, 12.0),
            sample(Target::Envoy, Some(12_000.0), 13.0, 72.0),
            sample(Target::Nginx, Some(17_000.0), 25.0, 24.0),
            sample(Target::Haproxy, Some(40_000.0), 5.0, 18.5),
            Sample {
                failures: 3,
                ..sample(Target::Direct, None, 3.0, 0.0)
            },
        ];
        let report = report(&samples, &Target::ALL, &programs());
        let has = |row: &str| assert!(report.contains(row), "{row}\nnot in\n{report}");
        has("| strait | 30000 | 50000 | 60 | 2.00 | 5.00 | 11.0 | 0 |");
        has("| HAProxy 2.6.12 | 30000 | 40000 | 75 | 2.00 | 5.00 | 18.5 | 0 |");
        has("| no proxy (direct) | 30000 | – | – | 2.00 | 3.00 | – | 3 |");
        has("| vs HAProxy 2.6.12 (best peer) | calls/s | calls per CPU-s |");
        has("| strait | 1.00× | 1.25× | 1.00× | 1.00× | 0.59× |");
        has("| Envoy 1.40.0 | 1.00× | 0.30× | 1.00× | 2.60× | 3.89× |");
        has("against the best peer's (target ≥ 1.20×): 1.25× (met)");
        has("p99 against the best peer's (target ≤ 1.00×): 1.00× (met)");
        has("peak RSS against Envoy's (target < 1.00×): 0.15× (met)");
        has("the access log (JSON, to a file): calls per CPU-second 0.90×, p99 1.10× of strait without it");
    }

    #[test]
    fn latencies_of_successful_calls() {
        let log =
            "1700000000000000\t200\t900\n1700000000000100\t-1\t5\n1700000000000200\t200\t300\n";
        assert_eq!(successful_latencies_us(log).unwrap(), [300, 900]);
        assert!(successful_latencies_us("garbage\n").is_err());
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 0.5), 50.0);
        assert_eq!(percentile(&sorted, 0.99), 99.0);
        assert_eq!(percentile(&[7], 0.99), 7.0);
    }
}
