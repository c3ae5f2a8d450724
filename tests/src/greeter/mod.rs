//! The Greeter: gRPC servers and clients for testing strait's L7 path, in Rust and in Python.
//!
//! Both speak `helloworld.Greeter` (`proto/helloworld.proto`: the canonical `SayHello` plus one
//! method per streaming kind) over h2c, with the same flags and output:
//! - `strait-greeter` (`src/bin`), on tonic: [`serve`] and [`call`] here;
//! - `python/greeter_server.py` and `python/greeter_client.py`, on grpcio.
//!
//! A server names itself in every reply (`NAME: Hello <name>`) and in `x-instance` metadata,
//! can fail every Nth call with a status in headers or trailers, delay its replies, and prints
//! `listening ADDR` once bound, then a [`ServedCall`] line per call. A client makes N calls over
//! one HTTP/2 connection and prints a [`CallLine`] per call and a [`CallSummary`].
//!
//! Tests drive them through [`Implementation`], [`spawn_server`] and [`run_client`] on loopback,
//! or [`Lab::serve_greeter`] and [`Lab::greeter_call`] in lab pods; [`RawCall`] shows which
//! frame carried a status.

mod client;
pub mod loopback;
mod options;
mod raw;
mod report;
mod server;
mod wire;

use std::{
    env,
    ffi::OsStr,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

pub use client::call;
pub use options::{CallOptions, FailIn, Method, ServeOptions};
pub use raw::{RawCall, RawResponse};
pub use report::{
    emit, parse_report, parse_served, parse_summary, preview, CallLine, CallReport, CallSummary,
    ServedCall, MESSAGE_PREVIEW_CHARS,
};
pub use server::serve;

use crate::lab::{self, wait_for_line, ChildHandle, ChildProcess, Lab, Pod};

/// The generated messages, client and server of `helloworld.Greeter` (build.rs).
pub mod proto {
    tonic::include_proto!("helloworld");
}

/// The response metadata (headers, and trailers of failures) naming the instance that answered.
pub const INSTANCE_HEADER: &str = "x-instance";
/// The largest message either side sends or accepts: room for 16 MiB names and their greetings.
pub const MAX_MESSAGE_BYTES: usize = 32 << 20;
/// How long a server may take to print `listening` (grpcio takes about a second).
pub const SERVER_READY: Duration = Duration::from_secs(10);
/// The interpreter the Python Greeter runs on; it needs grpcio and grpcio-tools (`.ci/run`).
pub const PYTHON: &str = "python3";

/// Which Greeter runs a server or a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Implementation {
    /// `strait-greeter`: tonic.
    Rust,
    /// `python/greeter_*.py`: grpcio.
    Python,
}

impl Implementation {
    /// The command for `serve` with `options`. `new` makes a [`Command`] for a program:
    /// `Command::new`, or `|program| lab.pod_command(&pod, program)`.
    pub fn serve_command(
        self,
        options: &ServeOptions,
        new: impl FnOnce(&OsStr) -> Command,
    ) -> Command {
        self.command("serve", "greeter_server.py", options.args(), new)
    }

    /// The command for `call` with `options`; see [`serve_command`](Self::serve_command).
    pub fn call_command(
        self,
        options: &CallOptions,
        new: impl FnOnce(&OsStr) -> Command,
    ) -> Command {
        self.command("call", "greeter_client.py", options.args(), new)
    }

    fn command(
        self,
        subcommand: &str,
        script: &str,
        args: Vec<String>,
        new: impl FnOnce(&OsStr) -> Command,
    ) -> Command {
        let mut cmd = match self {
            Implementation::Rust => {
                let mut cmd = new(lab::greeter_bin().as_os_str());
                cmd.arg(subcommand);
                cmd
            }
            Implementation::Python => {
                let mut cmd = new(OsStr::new(PYTHON));
                cmd.arg(python_dir().join(script));
                cmd
            }
        };
        cmd.args(args);
        cmd
    }
}

/// `tests/python`: the Python Greeter's scripts.
pub fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// Starts a server outside any lab (say on 127.0.0.1:0) and waits until it listens: the server,
/// which is stopped when dropped, and the address it bound.
pub fn spawn_server(
    implementation: Implementation,
    options: &ServeOptions,
) -> Result<(ChildProcess, SocketAddr)> {
    let cmd = implementation.serve_command(options, |program| Command::new(program));
    let mut server = ChildProcess::spawn(cmd, &format!("{implementation:?} greeter server"))?;
    let line = wait_for_line(&mut server, |l| l.starts_with("listening "), SERVER_READY)?;
    Ok((server, listening_addr(&line)?))
}

/// Runs a client outside any lab to its end (at most `timeout`) and parses what it printed.
pub fn run_client(
    implementation: Implementation,
    options: &CallOptions,
    timeout: Duration,
) -> Result<CallReport> {
    let cmd = implementation.call_command(options, |program| Command::new(program));
    run_call_command(cmd, &format!("{implementation:?} greeter client"), timeout)
}

/// Runs a client command (as [`Implementation::call_command`] makes them) to its end.
pub fn run_call_command(cmd: Command, what: &str, timeout: Duration) -> Result<CallReport> {
    let mut client = ChildProcess::spawn(cmd, what)?;
    let deadline = Instant::now() + timeout;
    let mut output = String::new();
    while let Some(line) = client.next_line(deadline.saturating_duration_since(Instant::now()))? {
        output += &line;
        output.push('\n');
    }
    parse_report(&output).with_context(|| client.stderr_report())
}

/// The address in a server's `listening ADDR` line.
pub fn listening_addr(line: &str) -> Result<SocketAddr> {
    let Some(addr) = line.strip_prefix("listening ") else {
        bail!("not a listening line: {line}");
    };
    addr.parse().with_context(|| format!("listening on {addr}"))
}

impl Lab {
    /// Starts a Greeter server in `pod` and waits until it listens. Its later stdout lines are
    /// [`ServedCall`]s (see [`parse_served`]).
    pub fn serve_greeter(
        &mut self,
        pod: &Pod,
        implementation: Implementation,
        options: &ServeOptions,
    ) -> Result<ChildHandle> {
        let cmd = implementation.serve_command(options, |program| self.pod_command(pod, program));
        let mut server = self.spawn(cmd)?;
        wait_for_line(&mut server, |l| l.starts_with("listening "), SERVER_READY)?;
        Ok(server)
    }

    /// Runs a Greeter client in `pod` to its end (at most [`lab::OUTPUT_TIMEOUT`]); when it printed
    /// no report (say, it could not connect), the error carries its stderr.
    pub fn greeter_call(
        &mut self,
        pod: &Pod,
        implementation: Implementation,
        options: &CallOptions,
    ) -> Result<CallReport> {
        let cmd = implementation.call_command(options, |program| self.pod_command(pod, program));
        let (client, stdout) = self.run_to_end(cmd)?;
        parse_report(&stdout).with_context(|| client.stderr_report())
    }
}

/// True when the Python Greeter can run here. Otherwise prints a loud skip line straight to
/// stderr (the harness swallows a passing test's `eprintln!`) and returns false, or panics when
/// [`lab::REQUIRE_ENV`] is set: CI installs grpcio (`.ci/run`) and must not pass by skipping.
pub fn require_python_grpc(test: &str) -> bool {
    python_grpc_missing().is_none_or(|missing| lab::skip_or_fail(test, &missing))
}

/// The Greeters a test runs (servers and clients alike): the Rust one, and grpcio when
/// [`require_python_grpc`] allows.
pub fn implementations(test: &str) -> Vec<Implementation> {
    let mut implementations = vec![Implementation::Rust];
    if require_python_grpc(&format!("{test} (grpcio)")) {
        implementations.push(Implementation::Python);
    }
    implementations
}

/// Why the Python Greeter cannot run, if it cannot (checked once per process).
fn python_grpc_missing() -> Option<String> {
    static MISSING: OnceLock<Option<String>> = OnceLock::new();
    MISSING
        .get_or_init(|| {
            let imported = Command::new(PYTHON)
                .args(["-c", "import grpc, grpc_tools.protoc"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            match imported {
                Ok(status) if status.success() => None,
                Ok(_) => Some("python grpcio not installed".into()),
                Err(err) => Some(format!("no {PYTHON}: {err}")),
            }
        })
        .clone()
}
