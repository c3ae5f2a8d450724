//! The kernel object: built with the nightly for the BPF target, left where cargo puts it.
//!
//! The proxy's build script reads it from cargo's own output path, so copying it elsewhere would
//! only bump its mtime and relink the proxy every time.

use std::{env, process::Command};

use anyhow::{ensure, Result};

use crate::cargo;

pub const PACKAGE: &str = "strait-ebpf";
const TARGET: &str = "bpfel-unknown-none";

/// `cargo +nightly SUBCOMMAND` of the kernel crate, for the BPF target.
fn nightly_for_bpf(subcommand: &str) -> Command {
    // aya-ebpf picks the architecture of its pt_regs/helpers from `bpf_target_arch`: the
    // kernel's, which is the host's (its names match Rust's target_arch).
    let rustflags = [
        &format!("--cfg=bpf_target_arch=\"{}\"", env::consts::ARCH),
        "-Cdebuginfo=2",
        "-Clink-arg=--btf",
    ];
    let mut cmd = cargo::nightly();
    cmd.args([subcommand, "-p", PACKAGE, "--release", "--target", TARGET])
        .args(["-Z", "build-std=core"])
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\x1f"));
    cmd
}

pub fn build() -> Result<()> {
    println!("xtask: building the eBPF object");
    cargo::run(&mut nightly_for_bpf("build"))?;
    let object = cargo::target_dir()?
        .join(TARGET)
        .join("release")
        .join(PACKAGE);
    ensure!(object.is_file(), "the build left no {}", object.display());
    println!("xtask: eBPF object: {}", object.display());
    Ok(())
}

pub fn clippy() -> Result<()> {
    cargo::run(nightly_for_bpf("clippy").args(["--", "-D", "warnings"]))
}
