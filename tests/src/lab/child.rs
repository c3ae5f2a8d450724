//! Processes a lab runs: their output, signals, readiness and shutdown.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader, Read},
    ops::{Deref, DerefMut},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        mpsc::{self, Receiver, RecvTimeoutError, Sender},
        Arc, Mutex, MutexGuard,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};
use nix::{sys::signal::kill, unistd::Pid};

pub use nix::sys::signal::Signal;

/// How long processes get between SIGTERM and SIGKILL when their owner stops them.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(2);
/// Lines of stderr kept per process for error messages and failure dumps.
const STDERR_TAIL: usize = 400;
const POLL_START: Duration = Duration::from_millis(10);
const POLL_MAX: Duration = Duration::from_millis(100);

/// A process started by [`Lab::spawn`](super::Lab::spawn).
///
/// Dropping the handle leaves the process running: the lab stops it when it is dropped.
/// Stdout is queued line by line for [`next_line`](Self::next_line) and [`wait_for_line`];
/// the last lines of stderr are kept for [`stderr_tail`](Self::stderr_tail).
pub struct ChildHandle {
    process: Arc<Process>,
    stdout: Receiver<String>,
}

/// The part of a child the lab keeps to stop it, shared with its handle so that a pid is never
/// signalled after it was reaped (and possibly reused).
pub(crate) struct Process {
    name: String,
    pid: u32,
    child: Mutex<Child>,
    output: Arc<Mutex<Output>>,
}

#[derive(Default)]
struct Output {
    stderr: VecDeque<String>,
    /// When set, both streams are printed with this prefix as they arrive.
    echo: Option<String>,
    stderr_closed: bool,
}

impl ChildHandle {
    pub(crate) fn spawn(mut cmd: Command, name: String) -> Result<(Self, Arc<Process>)> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        let output = Arc::new(Mutex::new(Output::default()));
        let (tx, stdout) = mpsc::channel();
        let out = child.stdout.take().expect("stdout is piped");
        let err = child.stderr.take().expect("stderr is piped");
        read_lines(&name, "stdout", out, stdout_sink(tx, output.clone()))?;
        read_lines(&name, "stderr", err, stderr_sink(output.clone()))?;
        let process = Arc::new(Process {
            name,
            pid: child.id(),
            child: Mutex::new(child),
            output,
        });
        let handle = Self {
            process: process.clone(),
            stdout,
        };
        Ok((handle, process))
    }

    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// The program and its first argument, e.g. `strait-lab-agent serve`.
    pub fn name(&self) -> &str {
        &self.process.name
    }

    /// The next stdout line; `Ok(None)` once stdout is closed, an error after `timeout`.
    pub fn next_line(&mut self, timeout: Duration) -> Result<Option<String>> {
        match self.stdout.recv_timeout(timeout) {
            Ok(line) => Ok(Some(line)),
            Err(RecvTimeoutError::Disconnected) => Ok(None),
            Err(RecvTimeoutError::Timeout) => Err(anyhow!(
                "{}: no stdout line within {timeout:?}{}",
                self.name(),
                self.process.stderr_report()
            )),
        }
    }

    /// The stdout lines queued so far, without waiting for more.
    pub fn queued_lines(&mut self) -> Vec<String> {
        self.stdout.try_iter().collect()
    }

    pub fn signal(&self, signal: Signal) -> Result<()> {
        self.process.signal(signal)
    }

    pub fn sigterm(&self) -> Result<()> {
        self.signal(Signal::SIGTERM)
    }

    pub fn sigkill(&self) -> Result<()> {
        self.signal(Signal::SIGKILL)
    }

    pub fn try_wait(&self) -> Result<Option<ExitStatus>> {
        self.process.try_wait()
    }

    /// The exit status, or `None` if the process still runs after `timeout`.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Option<ExitStatus>> {
        self.process.wait_deadline(Instant::now() + timeout)
    }

    /// SIGTERM, then SIGKILL if it has not exited after `grace`.
    pub fn stop(&self, grace: Duration) -> Result<ExitStatus> {
        self.process.stop(grace)
    }

    /// The last lines the process wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        self.process.stderr_tail()
    }

    /// The stderr tail framed with the process's name and pid, for error messages.
    pub fn stderr_report(&self) -> String {
        self.process.stderr_report()
    }

    /// From now on print both streams with `prefix` as they arrive (for `cargo xtask lab`).
    /// Stdout lines are then printed instead of queued.
    pub fn echo(&self, prefix: &str) {
        lock(&self.process.output).echo = Some(prefix.to_owned());
    }
}

/// A process outside any lab (say strait with `--no-ebpf` on loopback): a [`ChildHandle`]
/// that stops it (SIGTERM, then SIGKILL) when dropped, and dumps its stderr if that happens
/// during a panic.
pub struct ChildProcess {
    handle: ChildHandle,
}

impl ChildProcess {
    /// Starts `cmd`; `name` labels its errors and dumps.
    pub fn spawn(cmd: Command, name: &str) -> Result<Self> {
        let (handle, _) = ChildHandle::spawn(cmd, name.to_owned())?;
        Ok(Self { handle })
    }
}

impl Deref for ChildProcess {
    type Target = ChildHandle;

    fn deref(&self) -> &ChildHandle {
        &self.handle
    }
}

impl DerefMut for ChildProcess {
    fn deref_mut(&mut self) -> &mut ChildHandle {
        &mut self.handle
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.stderr_report());
        }
        if let Err(err) = self.stop(STOP_GRACE) {
            eprintln!("stopping {}: {err:#}", self.name());
        }
    }
}

/// Reads lines from `child` until one satisfies `pred` (a readiness line: no sleeps). Earlier
/// lines are consumed. Fails after `timeout` or when stdout closes, with the process's stderr.
pub fn wait_for_line(
    child: &mut ChildHandle,
    pred: impl Fn(&str) -> bool,
    timeout: Duration,
) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match child.next_line(left)? {
            Some(line) if pred(&line) => return Ok(line),
            Some(_) => {}
            None => bail!(
                "{} closed stdout before the line we waited for{}",
                child.name(),
                child.process.exit_report()
            ),
        }
    }
}

/// Polls `poll` at short, growing intervals (10 ms to 100 ms) until it returns true (then true)
/// or `timeout` has passed (then false).
pub fn wait_until(timeout: Duration, mut poll: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut interval = POLL_START;
    loop {
        if poll() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        thread::sleep(interval.min(deadline - now));
        interval = (interval * 2).min(POLL_MAX);
    }
}

impl Process {
    pub(crate) fn signal(&self, signal: Signal) -> Result<()> {
        let mut child = lock(&self.child);
        // A reaped pid may belong to someone else by now; an unreaped one is still ours.
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        kill(Pid::from_raw(self.pid as i32), signal)
            .with_context(|| format!("sending {signal} to {} ({})", self.name, self.pid))
    }

    pub(crate) fn try_wait(&self) -> Result<Option<ExitStatus>> {
        Ok(lock(&self.child).try_wait()?)
    }

    pub(crate) fn wait_deadline(&self, deadline: Instant) -> Result<Option<ExitStatus>> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let mut status = Ok(None);
        // A timeout only means it still runs, which `Ok(None)` says.
        wait_until(timeout, || {
            status = self.try_wait();
            !matches!(status, Ok(None))
        });
        status
    }

    pub(crate) fn stop(&self, grace: Duration) -> Result<ExitStatus> {
        self.signal(Signal::SIGTERM)?;
        self.kill_after(Instant::now() + grace)
    }

    /// Waits until `deadline`, then SIGKILLs and reaps.
    pub(crate) fn kill_after(&self, deadline: Instant) -> Result<ExitStatus> {
        if let Some(status) = self.wait_deadline(deadline)? {
            return Ok(status);
        }
        let mut child = lock(&self.child);
        child.kill()?;
        Ok(child.wait()?)
    }

    pub(crate) fn stderr_tail(&self) -> String {
        let output = lock(&self.output);
        output
            .stderr
            .iter()
            .fold(String::new(), |text, line| text + line + "\n")
    }

    /// How a process that closed its stdout ended: its exit status and its last stderr lines
    /// (waiting briefly for both, since they trail the stdout EOF).
    fn exit_report(&self) -> String {
        const SETTLE: Duration = Duration::from_millis(500);
        let status = self.wait_deadline(Instant::now() + SETTLE).ok().flatten();
        // Whatever the stderr reader has by then is what we report.
        wait_until(SETTLE, || lock(&self.output).stderr_closed);
        match status {
            Some(status) => format!(" ({status}){}", self.stderr_report()),
            None => format!(" (still running){}", self.stderr_report()),
        }
    }

    /// The stderr tail, framed for an error message or a failure dump.
    pub(crate) fn stderr_report(&self) -> String {
        match self.stderr_tail() {
            tail if tail.is_empty() => format!("\n--- {} ({}): no stderr", self.name, self.pid),
            tail => format!(
                "\n--- {} ({}) stderr, last lines ---\n{tail}--- end of {} ---",
                self.name, self.pid, self.name
            ),
        }
    }
}

/// Stops all `processes` together: SIGTERM to each, one shared grace period, then SIGKILL.
pub(crate) fn stop_all(processes: &[Arc<Process>], grace: Duration) {
    for process in processes {
        if let Err(err) = process.signal(Signal::SIGTERM) {
            eprintln!("lab: {err:#}");
        }
    }
    let deadline = Instant::now() + grace;
    for process in processes {
        if let Err(err) = process.kill_after(deadline) {
            eprintln!("lab: stopping {}: {err:#}", process.name);
        }
    }
}

/// Receives each line of a stream, then `None` at its end.
type Sink = Box<dyn FnMut(Option<String>) + Send>;

fn stdout_sink(tx: Sender<String>, output: Arc<Mutex<Output>>) -> Sink {
    Box::new(move |line| {
        // At the end the channel closes with the reader thread (it owns `tx`).
        let Some(line) = line else { return };
        match lock(&output).echo.as_deref() {
            Some(prefix) => println!("{prefix} {line}"),
            // Nobody may listen any more: keep draining so the child never blocks on a full pipe.
            None => drop(tx.send(line)),
        }
    })
}

fn stderr_sink(output: Arc<Mutex<Output>>) -> Sink {
    Box::new(move |line| {
        let mut output = lock(&output);
        let Some(line) = line else {
            output.stderr_closed = true;
            return;
        };
        if let Some(prefix) = &output.echo {
            eprintln!("{prefix} {line}");
        }
        if output.stderr.len() == STDERR_TAIL {
            output.stderr.pop_front();
        }
        output.stderr.push_back(line);
    })
}

fn read_lines(
    name: &str,
    stream: &str,
    pipe: impl Read + Send + 'static,
    mut sink: Sink,
) -> Result<()> {
    thread::Builder::new()
        .name(format!("{name} {stream}"))
        .spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                let line = String::from_utf8_lossy(&buf);
                sink(Some(line.trim_end_matches(['\n', '\r']).to_owned()));
                buf.clear();
            }
            sink(None);
        })
        .context("starting an output reader thread")?;
    Ok(())
}

/// `program arg1`, with the program's file name only.
pub(crate) fn describe(cmd: &Command) -> String {
    let program = std::path::Path::new(cmd.get_program())
        .file_name()
        .unwrap_or(cmd.get_program())
        .to_string_lossy()
        .into_owned();
    match cmd.get_args().next() {
        Some(arg) => format!("{program} {}", arg.to_string_lossy()),
        None => program,
    }
}

/// A panic elsewhere must not keep teardown from stopping processes.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> (ChildHandle, Arc<Process>) {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script);
        ChildHandle::spawn(cmd, "sh".into()).unwrap()
    }

    #[test]
    fn lines_and_readiness() {
        let (mut child, _) = sh("echo starting; echo 'listening 1.2.3.4:80'; echo done >&2");
        let line = wait_for_line(
            &mut child,
            |l| l.starts_with("listening"),
            Duration::from_secs(5),
        );
        assert_eq!(line.unwrap(), "listening 1.2.3.4:80");
        assert!(child
            .wait_timeout(Duration::from_secs(5))
            .unwrap()
            .unwrap()
            .success());
        assert_eq!(child.next_line(Duration::from_secs(5)).unwrap(), None);
        assert!(wait_until(Duration::from_secs(5), || child.stderr_tail() == "done\n"));
    }

    #[test]
    fn a_missing_line_reports_stderr() {
        let (mut child, _) = sh("echo 'bind failed' >&2; exit 3");
        let err = wait_for_line(&mut child, |_| true, Duration::from_secs(5)).unwrap_err();
        assert!(format!("{err:#}").contains("bind failed"), "{err:#}");
    }

    #[test]
    fn stop_escalates_to_sigkill() {
        let (mut child, process) = sh("trap '' TERM; echo ready; while :; do sleep 0.05; done");
        wait_for_line(&mut child, |l| l == "ready", Duration::from_secs(5)).unwrap();
        let started = Instant::now();
        stop_all(&[process], Duration::from_millis(200));
        let status = child.try_wait().unwrap().expect("reaped");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        // Signalling a reaped child is a no-op, never a stray kill.
        child.sigterm().unwrap();
    }

    #[test]
    fn a_dropped_child_process_is_stopped() {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("echo ready; exec sleep 30");
        let mut child = ChildProcess::spawn(cmd, "sleeper").unwrap();
        wait_for_line(&mut child, |l| l == "ready", Duration::from_secs(5)).unwrap();
        let process = child.handle.process.clone();
        drop(child);
        assert!(process.try_wait().unwrap().is_some());
    }

    #[test]
    fn wait_until_times_out() {
        let started = Instant::now();
        assert!(!wait_until(Duration::from_millis(50), || false));
        assert!(started.elapsed() < Duration::from_secs(1));
        let mut n = 0;
        assert!(wait_until(Duration::from_secs(1), || {
            n += 1;
            n == 3
        }));
    }
}
