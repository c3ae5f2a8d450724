//! `cargo xtask`: strait's developer tasks.
//!
//! - `setup`: the eBPF toolchain (nightly rust-src and clippy, bpf-linker on the nightly's LLVM).
//! - `build-ebpf`: the kernel object, left at cargo's own output path.
//! - `test`: everything CI checks: unit and privileged end-to-end tests, clippy, rustfmt.
//! - `lab`: a node in a box running strait with capture on, a client calling a TCP and a gRPC
//!   Service; `--scenario canary|header|chaos|retries|ingress` plays one of the seed's stories
//!   instead; `--once` checks one round and exits; `--screenshot PNG` keeps a picture of the live
//!   dashboard; `--down` removes every lab.
//! - `bench capture`: eBPF capture against iptables REDIRECT and no proxy, in a lab.
//! - `bench grpc`: unary gRPC through strait against Envoy, nginx and HAProxy, with h2load.

mod bench;
mod cargo;
mod ebpf;
mod lab;
mod setup;

use std::{env, path::PathBuf, process::ExitCode};

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "strait's developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the eBPF toolchain (idempotent).
    Setup,
    /// Build the kernel object into target/bpfel-unknown-none/release/strait-ebpf.
    BuildEbpf,
    /// Set up, build, run every test, clippy and rustfmt.
    Test {
        /// Passed to `cargo test` as given, e.g. `lab_harness -- --nocapture`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        cargo_test_args: Vec<String>,
    },
    /// Run strait in a local lab, a round of TCP and gRPC calls every 2 s, until Ctrl-C (needs
    /// root).
    Lab {
        /// Remove every lab (also leftovers of crashed test runs) and exit.
        #[arg(long, conflicts_with = "once")]
        down: bool,
        /// Play one round, then tear down; exit 1 unless the round showed what the scenario
        /// promises (demo: every call answered, every replica answered some of the gRPC
        /// calls over the one connection). CI's check.
        #[arg(long)]
        once: bool,
        /// Which story the client plays (the seed's, on the lab's gRPC Service).
        #[arg(long, value_enum, default_value = "demo", conflicts_with = "down")]
        scenario: lab::Scenario,
        /// Play rounds until strait's admin dashboard (headless Chromium in the node) shows
        /// every Service the scenario calls live, keep a PNG of it here, then tear down.
        #[arg(long, value_name = "PNG", conflicts_with = "down")]
        screenshot: Option<PathBuf>,
    },
    /// Benchmarks: markdown tables of medians for the README (`capture` needs root).
    Bench {
        #[command(subcommand)]
        bench: bench::Bench,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::BuildEbpf => ebpf::build(),
        // Verbatim from argv: clap drops a leading `--`, which `cargo test` needs.
        Task::Test { .. } => test(&env::args().skip(2).collect::<Vec<_>>()),
        Task::Lab { down: true, .. } => lab::down(),
        Task::Lab {
            down: false,
            once,
            scenario,
            screenshot,
        } => lab::run(scenario, once, screenshot.as_deref()),
        Task::Bench { bench } => bench::run(bench),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Everything a lab runs: the kernel object, then strait (which embeds it) and the lab agent.
/// (Not `--workspace`: the kernel crate's binary only builds for the BPF target.)
fn build_all() -> Result<()> {
    build_lab_bins(&[])
}

/// [`build_all`] with extra `cargo build` arguments, e.g. `--release`.
fn build_lab_bins(cargo_args: &[&str]) -> Result<()> {
    setup::run()?;
    ebpf::build()?;
    cargo::run(
        cargo::stable()
            .args(["build", "-p", "strait", "-p", "strait-tests", "--bins"])
            .args(cargo_args),
    )
}

/// THE test command (README, CI).
fn test(cargo_test_args: &[String]) -> Result<()> {
    // The end-to-end tests run target/debug/strait, which `cargo test` builds only for packages
    // with integration tests of their own.
    build_all()?;
    cargo::run(
        cargo::stable()
            .args(["test", "--workspace"])
            .args(cargo_test_args),
    )?;
    // The kernel crate only compiles for the BPF target: it is linted as it is built.
    cargo::run(cargo::stable().args([
        "clippy",
        "--workspace",
        "--exclude",
        ebpf::PACKAGE,
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    ebpf::clippy()?;
    cargo::run(cargo::stable().args(["fmt", "--all", "--", "--check"]))?;
    println!("xtask: all green");
    Ok(())
}
