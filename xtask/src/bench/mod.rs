//! `cargo xtask bench ...`: benchmarks that print the markdown tables the README quotes.
//!
//! Both benches run the proxy alone on [`PROXY_CPU`] and everything else (load generator,
//! backend, this process) on [`CLIENT_CPU`], alternate their targets round by round and quote
//! medians: single measurements on this kind of VM vary by 25-30 %. What they share lives here:
//! CPU pinning, CPU time and peak memory from /proc, medians and markdown tables.

mod capture;
mod grpc;

use std::{
    collections::HashMap,
    env, fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};
use nix::{
    sched::{sched_getaffinity, sched_setaffinity, CpuSet},
    unistd::{sysconf, Pid, SysconfVar},
};
use strait_tests::lab::ChildHandle;

use crate::cargo;

#[derive(clap::Subcommand)]
pub enum Bench {
    /// Short TCP connections through strait: eBPF capture, iptables REDIRECT, and no proxy.
    Capture(capture::CaptureArgs),
    /// Unary gRPC through strait, Envoy, nginx and HAProxy to one fast backend, with h2load.
    Grpc(grpc::GrpcArgs),
}

pub fn run(bench: Bench) -> Result<()> {
    match bench {
        Bench::Capture(args) => capture::run(&args),
        Bench::Grpc(args) => grpc::run(&args),
    }
}

/// The proxy under test runs here, alone.
const PROXY_CPU: usize = 1;
/// The load generator, the backend and xtask share this one.
const CLIENT_CPU: usize = 0;
/// The share of the two cores' time that others may take during a measurement before it is
/// flagged. Kernel threads under load (ksoftirqd, kworkers, rcu) take 1-4 %.
const ELSEWHERE_LIMIT: f64 = 0.05;
const POLL: Duration = Duration::from_millis(200);

/// Fails unless this process may run on both [`CLIENT_CPU`] and [`PROXY_CPU`].
fn ensure_both_cpus() -> Result<()> {
    let own = sched_getaffinity(Pid::from_raw(0))?;
    ensure!(
        own.is_set(CLIENT_CPU)? && own.is_set(PROXY_CPU)?,
        "the benchmark pins the proxy to CPU {PROXY_CPU} and the rest to CPU {CLIENT_CPU}: \
         it needs both"
    );
    Ok(())
}

fn pin_this_thread(cpu: usize) -> Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu)?;
    sched_setaffinity(Pid::from_raw(0), &set).with_context(|| format!("pinning to CPU {cpu}"))
}

/// Runs `start` with this thread on [`PROXY_CPU`], then moves back to [`CLIENT_CPU`].
///
/// A child starts with the CPU mask of the thread that forked it, as under `taskset`, from its
/// first instruction: runtimes that size their thread pools by the mask (tokio, Envoy's
/// defaults) see one core. Threads started meanwhile (output readers, readiness polls) share
/// that core, idle while the proxy is measured.
fn on_proxy_cpu<T>(start: impl FnOnce() -> Result<T>) -> Result<T> {
    pin_this_thread(PROXY_CPU)?;
    let started = start();
    pin_this_thread(CLIENT_CPU)?;
    started
}

/// The lab and the tests find binaries through `CARGO_BIN_EXE_<name>` (as cargo sets it for
/// tests): point them at the release build. Call before any thread exists: `set_var` is not
/// thread-safe.
fn use_release_bins(names: &[&str]) -> Result<()> {
    let release = cargo::target_dir()?.join("release");
    for name in names {
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

/// The next stdout line of `child` within `timeout`; gives up early on Ctrl-C.
fn next_line(child: &mut ChildHandle, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    while !crate::lab::stop_requested() {
        match child.next_line(POLL) {
            Ok(Some(line)) => return Ok(line),
            Ok(None) => bail!("{} ended early{}", child.name(), child.stderr_report()),
            Err(err) if Instant::now() >= deadline => return Err(err),
            // Nothing yet: look at the stop flag again.
            Err(_) => {}
        }
    }
    bail!("interrupted")
}

/// Today's date (UTC), for the line above a table.
fn today() -> Result<String> {
    Ok(
        cargo::output(Command::new("date").args(["-u", "+%Y-%m-%d"]))?
            .trim()
            .to_owned(),
    )
}

/// CPU seconds used so far, read at both edges of a measured window.
#[derive(Clone, Copy, Debug)]
struct CpuClock {
    /// The proxy's processes; none when no proxy runs.
    proxy: Option<f64>,
    /// Everything the benchmark runs (the proxy included).
    ours: f64,
    /// The whole node: all but idle and iowait.
    node: f64,
}

impl CpuClock {
    /// Each pid counts alone (its threads, not its children).
    fn read(proxy: &[u32], ours: &[u32]) -> Result<Self> {
        let sum = |pids: &[u32]| {
            pids.iter()
                .map(|&pid| cpu_seconds(pid))
                .sum::<Result<f64>>()
        };
        Ok(CpuClock {
            proxy: if proxy.is_empty() {
                None
            } else {
                Some(sum(proxy)?)
            },
            ours: sum(ours)?,
            node: node_cpu_seconds()?,
        })
    }

    /// The proxy's CPU seconds between `self` and `later`.
    fn proxy_seconds(&self, later: &CpuClock) -> Option<f64> {
        Some(later.proxy? - self.proxy?)
    }

    /// The node's busy time outside the benchmark's processes between `self` and `later`, as a
    /// share of the two cores' time over `seconds`.
    fn elsewhere(&self, later: &CpuClock, seconds: f64) -> f64 {
        ((later.node - self.node) - (later.ours - self.ours)) / (2.0 * seconds)
    }
}

/// Whether something outside the benchmark took enough CPU to skew a window (kernel threads
/// doing the network's deferred work stay well below this).
fn disturbed(elsewhere: f64) -> bool {
    elsewhere > ELSEWHERE_LIMIT
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

/// The fields of proc_pid_stat(5) after the command name, so that field `n` (from 1) is at
/// index `n - 3`.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    // Field 2, the command name, may hold spaces and parentheses: count after its last `)`.
    Some(stat.rsplit_once(')')?.1.split_whitespace().collect())
}

/// Fields 14 and 15 (utime, stime) of proc_pid_stat(5), in clock ticks.
fn process_ticks(stat: &str) -> Option<u64> {
    let fields = stat_fields(stat)?;
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(field(14)? + field(15)?)
}

/// Field 4 (ppid) of proc_pid_stat(5).
fn parent_pid(stat: &str) -> Option<u32> {
    stat_fields(stat)?.get(1)?.parse().ok()
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

/// `pid` and every process below it (nginx's workers under their master), from /proc.
fn process_tree(pid: u32) -> Result<Vec<u32>> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in fs::read_dir("/proc").context("listing /proc")? {
        let Ok(child) = entry?.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // A process may exit between the listing and the read: it is no longer in the tree.
        let Ok(stat) = fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        if let Some(parent) = parent_pid(&stat) {
            children.entry(parent).or_default().push(child);
        }
    }
    let mut tree = vec![pid];
    let mut next = 0;
    while let Some(&parent) = tree.get(next) {
        tree.extend(children.get(&parent).into_iter().flatten());
        next += 1;
    }
    Ok(tree)
}

/// Peak resident memory (VmHWM) of `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    vm_hwm_kib(&status).with_context(|| format!("no VmHWM in {path}"))
}

fn vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    line.trim().strip_suffix("kB")?.trim().parse().ok()
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[n / 2]),
        n => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// A markdown table: the first column left-aligned (names), the others right-aligned (numbers).
fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let rule: Vec<String> = (0..header.len())
        .map(|i| if i == 0 { "---" } else { "---:" }.to_owned())
        .collect();
    let mut out = line(&header) + &line(&rule);
    for row in rows {
        out += &line(row);
    }
    out
}

/// A number with `decimals` decimals; a dash when there is none.
fn cell(value: Option<f64>, decimals: usize) -> String {
    value.map_or("–".into(), |v| format!("{v:.decimals$}"))
}

/// `x / y` as `1.20×`; a dash when either is missing.
fn ratio(x: Option<f64>, y: Option<f64>) -> String {
    match (x, y) {
        (Some(x), Some(y)) => format!("{:.2}×", x / y),
        _ => "–".into(),
    }
}

/// A directory under the system's temp dir for one run's configs and logs, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(name: &str) -> Result<Self> {
        let dir = env::temp_dir().join(format!("strait-bench-{name}-{}", std::process::id()));
        // Leftovers of a crashed run with the same pid would mix with ours.
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(ScratchDir(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `contents` to `name` in this directory and returns its path.
    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> Result<PathBuf> {
        let path = self.0.join(name);
        fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
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
        assert_eq!(parent_pid(stat), Some(1));
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
    fn peak_rss_comes_from_vm_hwm() {
        let status = "Name:\tnginx\nVmPeak:\t  20000 kB\nVmHWM:\t    9216 kB\nVmRSS:\t 8000 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(9216));
        assert_eq!(vm_hwm_kib("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_is_the_root_of_its_tree() {
        let me = std::process::id();
        assert_eq!(process_tree(me).unwrap()[0], me);
        assert!(peak_rss_kib(me).unwrap() > 0);
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn tables_cells_and_ratios() {
        let table = markdown_table(
            &["target", "req/s"],
            &[vec!["a".into(), cell(Some(1.26), 1)]],
        );
        assert_eq!(table, "| target | req/s |\n| --- | ---: |\n| a | 1.3 |\n");
        assert_eq!(cell(None, 2), "–");
        assert_eq!(ratio(Some(3.0), Some(2.5)), "1.20×");
        assert_eq!(ratio(Some(3.0), None), "–");
    }
}
