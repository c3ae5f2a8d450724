//! Running cargo and friends: visibly, from the workspace root, failing on a non-zero exit.

use std::{
    env,
    ffi::OsStr,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

/// Set by an outer cargo or by the user for host builds; wrong for a nested BPF build.
const HOST_BUILD_ENV: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTC",
    "CARGO_BUILD_RUSTC",
    "RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_TARGET",
    "RUSTUP_TOOLCHAIN",
];

pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
}

/// The cargo that runs xtask, in the workspace root.
pub fn stable() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// `cargo +nightly` (through rustup) with none of the outer build's flags or wrappers.
pub fn nightly() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly").current_dir(workspace_root());
    for var in HOST_BUILD_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// The target directory cargo uses (CARGO_TARGET_DIR, config, or `target/`).
pub fn target_dir() -> Result<PathBuf> {
    let metadata = output(stable().args(["metadata", "--format-version", "1", "--no-deps"]))?;
    let metadata: serde_json::Value = serde_json::from_str(&metadata)?;
    match metadata["target_directory"].as_str() {
        Some(dir) => Ok(dir.into()),
        None => bail!("cargo metadata has no target_directory"),
    }
}

/// Prints the command line (with the variables it sets), runs it, fails unless it succeeds.
pub fn run(cmd: &mut Command) -> Result<()> {
    println!("$ {}", show(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", show(cmd)))?;
    if !status.success() {
        bail!("{} failed: {status}", show(cmd));
    }
    Ok(())
}

/// Runs quietly and returns stdout; the error carries stderr.
pub fn output(cmd: &mut Command) -> Result<String> {
    let output = cmd
        .output()
        .with_context(|| format!("starting {}", show(cmd)))?;
    if !output.status.success() {
        bail!(
            "{} failed: {}: {}",
            show(cmd),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}

fn show(cmd: &Command) -> String {
    let quote = |s: &OsStr| {
        let s = s.to_string_lossy();
        if s.contains([' ', '"', '\x1f']) || s.is_empty() {
            format!("{s:?}")
        } else {
            s.into_owned()
        }
    };
    let vars = cmd
        .get_envs()
        .filter_map(|(key, value)| Some(format!("{}={}", key.to_string_lossy(), quote(value?))));
    let words = std::iter::once(quote(cmd.get_program())).chain(cmd.get_args().map(quote));
    vars.chain(words).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_show_as_shell_lines() {
        let mut cmd = Command::new("cargo");
        cmd.args(["build", "-p", "x"])
            .env("CARGO_ENCODED_RUSTFLAGS", "-Ca\x1f-Cb")
            .env_remove("RUSTFLAGS");
        assert_eq!(
            show(&cmd),
            r#"CARGO_ENCODED_RUSTFLAGS="-Ca\u{1f}-Cb" cargo build -p x"#
        );
    }
}
