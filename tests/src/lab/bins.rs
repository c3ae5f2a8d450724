//! The binaries a lab runs, as cargo built them for this test run.

use std::{env, path::PathBuf};

/// The `strait` binary (`cargo build -p strait`; `cargo xtask test` builds it first).
pub fn strait_bin() -> PathBuf {
    built_bin("strait")
}

/// The `strait-lab-agent` binary: servers and clients for the lab (`cargo build -p strait-tests`).
pub fn lab_agent_bin() -> PathBuf {
    built_bin("strait-lab-agent")
}

/// The `strait-greeter` binary: the Rust gRPC Greeter server and client.
pub fn greeter_bin() -> PathBuf {
    built_bin("strait-greeter")
}

/// `CARGO_BIN_EXE_<name>` when set, else the binary next to the running executable: test
/// executables live in `target/<profile>/deps`, binaries and xtask in `target/<profile>`.
fn built_bin(name: &str) -> PathBuf {
    if let Some(path) = env::var_os(format!("CARGO_BIN_EXE_{name}")) {
        return path.into();
    }
    let exe = env::current_exe().expect("the running executable's path");
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(name))
        .collect();
    match candidates.iter().find(|path| path.is_file()) {
        Some(path) => path.clone(),
        None => panic!(
            "{name} not found at {candidates:?}: build it first (`cargo build --workspace --bins`; \
             `cargo xtask test` does)"
        ),
    }
}
