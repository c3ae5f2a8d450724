//! h2load (nghttp2) as a gRPC load generator: what `cargo xtask bench grpc` and the hot-reload
//! test share. h2load sends one unary request body per POST with gRPC's headers, counts any
//! HTTP 200 as a success and never reads `grpc-status`: check statuses elsewhere (strait's
//! `istio_requests_total` by `grpc_response_status`, or a real gRPC client).

use std::{ffi::OsString, path::Path, process::Command};

use anyhow::{Context, Result};

use crate::lab;

/// The program, on PATH; the Debian package that has it.
pub const PROGRAM: &str = "h2load";
pub const PACKAGE: &str = "nghttp2-client";

/// A gRPC message frame (uncompressed, 4-byte big-endian length) holding a protobuf message
/// whose field 1 is the string `text`: a HelloRequest's `name` or a HelloReply's `message`.
pub fn grpc_frame(text: &str) -> Vec<u8> {
    assert!(text.len() < 0x80, "one-byte protobuf length");
    let mut message = vec![0x0a, text.len() as u8];
    message.extend_from_slice(text.as_bytes());
    let mut frame = vec![0];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend(message);
    frame
}

/// The arguments that make each h2load request a unary gRPC call: `request` (a file holding
/// one [`grpc_frame`]) as the body, gRPC's headers, `authority` as `:authority`.
pub fn unary_grpc_args(request: &Path, authority: &str) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--data".into(), request.into()];
    for header in [
        "content-type: application/grpc",
        "te: trailers",
        &format!(":authority: {authority}"),
    ] {
        args.extend(["-H".into(), header.into()]);
    }
    args
}

/// True when h2load runs here. Otherwise says so loudly and returns false, or panics when
/// [`lab::REQUIRE_ENV`] is set (`.ci/run` installs it and must not pass by skipping).
pub fn require(test: &str) -> bool {
    let runs = Command::new(PROGRAM)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    runs || lab::skip_or_fail(test, &format!("{PROGRAM} not installed (apt {PACKAGE})"))
}

/// h2load's own count: `requests: N total, N started, N done, N succeeded, N failed, N
/// errored, N timeout` (with `--warm-up-time`, the measured phase only).
#[derive(Debug, PartialEq)]
pub struct Summary {
    pub done: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub errored: u64,
    pub timeout: u64,
}

impl Summary {
    pub fn parse(output: &str) -> Result<Self> {
        let requests = output
            .lines()
            .find_map(|l| l.strip_prefix("requests: "))
            .with_context(|| format!("no `requests:` line in h2load's output:\n{output}"))?;
        let count = |what: &str| {
            requests
                .split(", ")
                .find_map(|part| part.strip_suffix(what)?.trim().parse().ok())
                .with_context(|| format!("no {what} count in h2load's `requests: {requests}`"))
        };
        Ok(Summary {
            done: count(" done")?,
            succeeded: count(" succeeded")?,
            failed: count(" failed")?,
            errored: count(" errored")?,
            timeout: count(" timeout")?,
        })
    }

    pub fn failures(&self) -> u64 {
        self.failed + self.errored + self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "starting benchmark...
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.
Main benchmark duration is over for thread #0. Stopping all clients.
finished in 10.00s, 45123.40 req/s, 3.12MB/s
requests: 451234 total, 451362 started, 451234 done, 451230 succeeded, 4 failed, 1 errored, 2 timeout
status codes: 451230 2xx, 0 3xx, 0 4xx, 4 5xx
";

    #[test]
    fn summaries() {
        let summary = Summary::parse(OUTPUT).unwrap();
        assert_eq!(
            summary,
            Summary {
                done: 451234,
                succeeded: 451230,
                failed: 4,
                errored: 1,
                timeout: 2,
            }
        );
        assert_eq!(summary.failures(), 7);
        assert!(Summary::parse("finished in 1.00s, 1 req/s").is_err());
        assert!(Summary::parse("requests: 5 total, 5 started").is_err());
    }

    #[test]
    fn grpc_frames_hold_one_protobuf_string() {
        assert_eq!(
            grpc_frame("world"),
            [0, 0, 0, 0, 7, 0x0a, 5, b'w', b'o', b'r', b'l', b'd']
        );
    }

    #[test]
    fn unary_grpc_requests() {
        let args = unary_grpc_args(Path::new("/r.bin"), "a.b:1");
        let args: Vec<_> = args.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "--data",
                "/r.bin",
                "-H",
                "content-type: application/grpc",
                "-H",
                "te: trailers",
                "-H",
                ":authority: a.b:1"
            ]
        );
    }
}
