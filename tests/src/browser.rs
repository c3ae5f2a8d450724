//! Headless Chromium (Debian's `chromium` package) for the dashboard test: the DOM after the
//! page's scripts ran, and screenshots. Flags keep it off the (closed) network: no background
//! fetches, no component updates, no sync, a fresh profile each run.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{ensure, Context, Result};

use crate::lab::{ChildProcess, NodeNamespace};

/// How long the page's timers may run (virtual time: fetches still take real time).
const SCRIPT_TIME_MS: u32 = 3000;
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

pub struct Chromium {
    binary: PathBuf,
    /// Profiles, one per run, removed with it.
    scratch: PathBuf,
    /// Where it runs: a lab node's namespace, else the caller's.
    netns: Option<NodeNamespace>,
}

impl Chromium {
    /// The `chromium` on `PATH`, or `None`.
    pub fn find() -> Option<Chromium> {
        let paths = env::var_os("PATH")?;
        let binary = env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|path| path.is_file())?;
        let scratch = env::temp_dir().join(format!("strait-chromium-{}", std::process::id()));
        Some(Chromium {
            binary,
            scratch,
            netns: None,
        })
    }

    /// Runs it in a lab node's namespace, where strait's admin server listens.
    pub fn in_namespace(mut self, netns: NodeNamespace) -> Self {
        self.netns = Some(netns);
        self
    }

    /// The DOM of `url` once its scripts ran for a while.
    pub fn dump_dom(&self, url: &str) -> Result<String> {
        self.run("dump-dom", &["--dump-dom", url])
    }

    /// A PNG of `url` at `width` x `height` once its scripts ran for a while.
    pub fn screenshot(&self, url: &str, path: &Path, (width, height): (u32, u32)) -> Result<()> {
        let _ = fs::remove_file(path);
        let screenshot = format!("--screenshot={}", path.display());
        let size = format!("--window-size={width},{height}");
        self.run(
            "screenshot",
            &[&screenshot, &size, "--hide-scrollbars", url],
        )?;
        let png = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        ensure!(
            png.starts_with(b"\x89PNG"),
            "{} is not a PNG",
            path.display()
        );
        Ok(())
    }

    /// Runs chromium with `args` after the common flags; its stdout.
    fn run(&self, what: &str, args: &[&str]) -> Result<String> {
        let profile = self.scratch.join(what);
        let _ = fs::remove_dir_all(&profile);
        fs::create_dir_all(&profile)?;
        let mut cmd = match &self.netns {
            Some(netns) => netns.command(&self.binary),
            None => Command::new(&self.binary),
        };
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={SCRIPT_TIME_MS}"))
        .args(args);
        let mut chromium = ChildProcess::spawn(cmd, "chromium")?;
        let mut stdout = String::new();
        // Stdout closes when chromium is done.
        while let Some(line) = chromium.next_line(RUN_TIMEOUT)? {
            stdout.push_str(&line);
            stdout.push('\n');
        }
        let status = chromium.wait_timeout(RUN_TIMEOUT)?;
        ensure!(
            status.is_some_and(|s| s.success()),
            "chromium --{what} failed ({status:?}):{}",
            chromium.stderr_report()
        );
        Ok(stdout)
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.scratch);
    }
}
