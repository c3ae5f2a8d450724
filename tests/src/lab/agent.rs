//! Driving `strait-lab-agent` in lab pods: the one place that knows its command line.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::Value;

use super::{lab_agent_bin, wait_for_line, ChildHandle, Lab, Pod};

/// How long a server may take to print `listening`.
const SERVER_READY: Duration = Duration::from_secs(10);

impl Lab {
    /// Starts a TCP server in `pod` on `port` whose replies name it `name`; returns once it listens.
    pub fn serve_agent(&mut self, pod: &Pod, port: u16, name: &str) -> Result<ChildHandle> {
        let mut cmd = self.pod_command(pod, lab_agent_bin());
        cmd.args([
            "serve",
            "--listen",
            &format!("0.0.0.0:{port}"),
            "--name",
            name,
        ]);
        let mut server = self.spawn(cmd)?;
        wait_for_line(&mut server, |l| l.starts_with("listening"), SERVER_READY)?;
        Ok(server)
    }

    /// Starts the HTTP echo server (`strait_tests::web::EchoServer`) in `pod` on `port`, named
    /// `name`; returns once it listens.
    pub fn serve_http_echo(&mut self, pod: &Pod, port: u16, name: &str) -> Result<ChildHandle> {
        let mut cmd = self.pod_command(pod, lab_agent_bin());
        cmd.args(["http-serve", "--listen", &format!("0.0.0.0:{port}")])
            .args(["--name", name]);
        let mut server = self.spawn(cmd)?;
        wait_for_line(&mut server, |l| l.starts_with("listening"), SERVER_READY)?;
        Ok(server)
    }

    /// One call from `pod` to `to` sending `send` bytes, giving up after `timeout` at each step:
    /// the agent's JSON report (`ok`, `peer`, `reply`, `sent`, `received`, or `error`).
    pub fn agent_call(
        &mut self,
        pod: &Pod,
        to: &str,
        send: usize,
        timeout: Duration,
    ) -> Result<Value> {
        let mut cmd = self.pod_command(pod, lab_agent_bin());
        cmd.args([
            "call",
            "--to",
            to,
            "--send",
            &send.to_string(),
            "--count",
            "1",
        ])
        .args(["--timeout", &timeout.as_millis().to_string()]);
        let output = self.output(cmd)?;
        let line = output.lines().next().context("the agent printed nothing")?;
        serde_json::from_str(line).with_context(|| format!("agent output: {line}"))
    }

    /// Whether a call from `pod` to the Service address `to` is captured: answered through
    /// strait, or (not captured) unroutable in the lab. Anything else is an error.
    pub fn is_captured(&mut self, pod: &Pod, to: &str) -> Result<bool> {
        let call = self.agent_call(pod, to, 10, Duration::from_secs(5))?;
        let unreachable = call["error"]
            .as_str()
            .is_some_and(|e| e.contains("unreachable"));
        ensure!(
            call["ok"] == true || unreachable,
            "neither answered nor left alone: {call}"
        );
        Ok(call["ok"] == true)
    }

    /// Starts the load generator in `pod`: `workers` loops of short connections to `to` for
    /// `warmup`, then `measure`. It prints `measuring` when the warm-up ends, then one JSON
    /// summary (`connections`, `errors`, `first_error`, `conns_per_s`, `p50_us`, `p99_us`).
    pub fn spawn_agent_bench(
        &mut self,
        pod: &Pod,
        to: &str,
        workers: usize,
        warmup: Duration,
        measure: Duration,
    ) -> Result<ChildHandle> {
        let mut cmd = self.pod_command(pod, lab_agent_bin());
        cmd.args(["bench", "--to", to])
            .args(["--workers", &workers.to_string()])
            .args(["--warmup", &warmup.as_secs_f64().to_string()])
            .args(["--duration", &measure.as_secs_f64().to_string()]);
        self.spawn(cmd)
    }
}
