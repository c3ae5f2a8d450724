//! The eBPF toolchain, installed idempotently: the nightly's rust-src (for `-Z build-std`) and
//! clippy, and bpf-linker built against the nightly's own LLVM.
//!
//! bpf-linker links to the nightly's `libLLVM.so.<major>.<minor>-rust-<version>` through a
//! prefix directory of symlinks (`target/llvm-prefix/lib`, its RUNPATH). Updating the nightly
//! deletes that library, and `cargo clean` deletes the prefix: the links are refreshed on every
//! run, and bpf-linker is rebuilt only when it still cannot start.

use std::{
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use crate::cargo;

const NIGHTLY: &str = "nightly";
const NIGHTLY_COMPONENTS: &[&str] = &["rust-src", "clippy"];
const BPF_LINKER_VERSION: &str = "^0.13";

pub fn run() -> Result<()> {
    nightly_components()?;
    bpf_linker()
}

fn nightly_components() -> Result<()> {
    let listed = cargo::output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        NIGHTLY,
    ]));
    let Ok(installed) = listed else {
        println!("setup: no {NIGHTLY} toolchain: installing it");
        let mut install = Command::new("rustup");
        install.args(["toolchain", "install", NIGHTLY, "--profile", "minimal"]);
        for component in NIGHTLY_COMPONENTS {
            install.args(["--component", component]);
        }
        return cargo::run(&mut install);
    };
    // Installed components are listed with their target: `rust-src`, `clippy-x86_64-...`.
    let has = |component: &str| {
        installed
            .lines()
            .any(|line| line == component || line.starts_with(&format!("{component}-")))
    };
    let missing: Vec<&str> = NIGHTLY_COMPONENTS
        .iter()
        .copied()
        .filter(|c| !has(c))
        .collect();
    if missing.is_empty() {
        println!("setup: {NIGHTLY} has {}", NIGHTLY_COMPONENTS.join(", "));
        return Ok(());
    }
    cargo::run(
        Command::new("rustup")
            .args(["component", "add", "--toolchain", NIGHTLY])
            .args(missing),
    )
}

fn bpf_linker() -> Result<()> {
    let llvm = NightlyLlvm::find()?;
    let prefix = cargo::target_dir()?.join("llvm-prefix");
    llvm.link_into(&prefix.join("lib"))?;
    if let Some(version) = bpf_linker_version() {
        println!("setup: {version} starts");
        return Ok(());
    }
    println!(
        "setup: bpf-linker is missing or cannot start (a nightly update deletes the libLLVM it \
         links to): building it against the nightly's LLVM {} (about 2 minutes)",
        llvm.major
    );
    cargo::run(
        cargo::stable()
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
            .args(["--no-default-features", "--features"])
            .arg(format!("llvm-{}", llvm.major))
            .arg("--force")
            .env("LLVM_PREFIX", &prefix),
    )?;
    match bpf_linker_version() {
        Some(version) => {
            println!("setup: {version} starts");
            Ok(())
        }
        None => bail!("bpf-linker still does not start after building it"),
    }
}

/// `bpf-linker --version`, when it starts at all.
fn bpf_linker_version() -> Option<String> {
    let version = cargo::output(Command::new("bpf-linker").arg("--version")).ok()?;
    Some(version.trim().to_owned())
}

/// The nightly's LLVM: its major version (bpf-linker's `llvm-NN` feature) and shared library.
struct NightlyLlvm {
    major: u32,
    library: PathBuf,
}

impl NightlyLlvm {
    fn find() -> Result<Self> {
        let version = cargo::output(Command::new("rustc").args(["+nightly", "-vV"]))?;
        let major = llvm_major(&version)
            .with_context(|| format!("no LLVM version in `rustc +nightly -vV`:\n{version}"))?;
        let sysroot =
            cargo::output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
        let lib = Path::new(sysroot.trim()).join("lib");
        let library = fs::read_dir(&lib)
            .with_context(|| format!("reading {}", lib.display()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .find(|path| is_rust_llvm(path, major))
            .with_context(|| format!("no libLLVM.so.{major}*-rust-* in {}", lib.display()))?;
        Ok(Self { major, library })
    }

    /// `libLLVM.so` for building bpf-linker, and the library's own (versioned) name, which is
    /// the soname bpf-linker looks up at run time.
    fn link_into(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // Links to an older nightly's library go too.
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with("libLLVM") {
                fs::remove_file(entry.path())?;
            }
        }
        let versioned = self.library.file_name().context("a library file name")?;
        for name in [Path::new("libLLVM.so"), Path::new(versioned)] {
            let link = dir.join(name);
            symlink(&self.library, &link).with_context(|| format!("linking {}", link.display()))?;
        }
        Ok(())
    }
}

/// The major of `LLVM version: 22.1.4` in `rustc -vV`.
fn llvm_major(rustc_version: &str) -> Option<u32> {
    let version = rustc_version
        .lines()
        .find_map(|line| line.strip_prefix("LLVM version: "))?;
    version.split('.').next()?.trim().parse().ok()
}

/// `libLLVM.so.22.1-rust-1.97.0-nightly` for major 22.
fn is_rust_llvm(path: &Path, major: u32) -> bool {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy())
        .unwrap_or_default();
    name.strip_prefix(&format!("libLLVM.so.{major}"))
        .is_some_and(|rest| rest.starts_with(['.', '-']) && rest.contains("-rust-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llvm_major_from_rustc() {
        let version = "rustc 1.97.0-nightly (e50aa6fba 2026-05-19)\nbinary: rustc\n\
                       host: x86_64-unknown-linux-gnu\nLLVM version: 22.1.4\n";
        assert_eq!(llvm_major(version), Some(22));
        assert_eq!(llvm_major("rustc 1.0\n"), None);
    }

    #[test]
    fn rust_llvm_library_names() {
        let lib = Path::new("/t/lib");
        assert!(is_rust_llvm(
            &lib.join("libLLVM.so.22.1-rust-1.97.0-nightly"),
            22
        ));
        assert!(!is_rust_llvm(
            &lib.join("libLLVM-22-rust-1.97.0-nightly.so"),
            22
        ));
        assert!(!is_rust_llvm(
            &lib.join("libLLVM.so.21.1-rust-1.90.0-nightly"),
            22
        ));
        // Not 2 for 22.
        assert!(!is_rust_llvm(
            &lib.join("libLLVM.so.22.1-rust-1.97.0-nightly"),
            2
        ));
    }
}
