//! The access log: one line per request (L7) or connection (TCP), in Istio's default text
//! format or as one JSON object a line with Istio's JSON field names (and `grpc_status`).
//!
//! Off the hot path: a request hands its [`AccessEntry`] to a bounded channel and goes on; a
//! writer task formats and writes, flushing whenever the channel runs dry and at least every
//! [`FLUSH_EVERY`] under load, so a line is out within a second. When the writer falls behind by
//! [`QUEUE`] lines, entries are dropped and counted rather than slowing requests down.

use std::{
    io::{self, Write},
    net::SocketAddr,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime},
};

use serde::Serialize;
use tokio::sync::mpsc;

use super::ResponseFlags;

/// Lines waiting for the writer at most.
const QUEUE: usize = 65_536;
/// The longest a written line waits in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Where the log goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sink {
    Stdout,
    File(PathBuf),
}

impl std::str::FromStr for Sink {
    type Err = std::convert::Infallible;

    /// `-` is standard output, anything else a file path (appended to).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "-" => Self::Stdout,
            path => Self::File(path.into()),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Istio's default text format (`[START_TIME] "METHOD PATH PROTOCOL" CODE FLAGS ...`).
    Text,
    Json,
}

/// What is logged of one request or connection. Fields that do not apply are `None` and print
/// as `-` (text) or `null` (JSON), as Envoy prints them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccessEntry {
    pub start_time: Option<SystemTime>,
    pub method: Option<String>,
    pub path: Option<String>,
    /// `HTTP/2`, `HTTP/1.1`; `None` for TCP.
    pub protocol: Option<&'static str>,
    /// 0 when no response started (as Envoy: the client left, or the connection was TCP).
    pub response_code: u16,
    pub grpc_status: Option<u16>,
    pub response_flags: ResponseFlags,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub duration: Duration,
    pub x_forwarded_for: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub authority: Option<String>,
    pub upstream_host: Option<SocketAddr>,
    pub upstream_cluster: Option<String>,
    pub downstream_local_address: Option<SocketAddr>,
    pub downstream_remote_address: Option<SocketAddr>,
    pub requested_server_name: Option<String>,
    pub route_name: Option<String>,
}

/// The JSON line: Istio's field names, numbers as numbers.
#[derive(Serialize)]
struct JsonLine<'a> {
    start_time: Option<String>,
    method: Option<&'a str>,
    path: Option<&'a str>,
    protocol: Option<&'a str>,
    response_code: u16,
    grpc_status: Option<u16>,
    response_flags: String,
    bytes_received: u64,
    bytes_sent: u64,
    duration: u128,
    x_forwarded_for: Option<&'a str>,
    user_agent: Option<&'a str>,
    request_id: Option<&'a str>,
    authority: Option<&'a str>,
    upstream_host: Option<String>,
    upstream_cluster: Option<&'a str>,
    downstream_local_address: Option<String>,
    downstream_remote_address: Option<String>,
    requested_server_name: Option<&'a str>,
    route_name: Option<&'a str>,
}

impl AccessEntry {
    /// One line, with its newline.
    pub fn format(&self, format: Format) -> String {
        match format {
            Format::Text => self.text(),
            Format::Json => self.json(),
        }
    }

    fn start(&self) -> Option<String> {
        self.start_time
            .map(|t| humantime::format_rfc3339_millis(t).to_string())
    }

    /// Istio's default `accessLogFormat`, field for field; what strait has no value for
    /// (`RESPONSE_CODE_DETAILS`, upstream service time...) is `-`.
    fn text(&self) -> String {
        let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
        let str_or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
        let addr = |value: Option<SocketAddr>| or_dash(value.map(|a| a.to_string()));
        format!(
            "[{}] \"{} {} {}\" {} {} - - \"-\" {} {} {} - \"{}\" \"{}\" \"{}\" \"{}\" \"{}\" {} - {} {} {} {}\n",
            or_dash(self.start()),
            str_or_dash(&self.method),
            str_or_dash(&self.path),
            self.protocol.unwrap_or("-"),
            self.response_code,
            self.response_flags,
            self.bytes_received,
            self.bytes_sent,
            self.duration.as_millis(),
            str_or_dash(&self.x_forwarded_for),
            str_or_dash(&self.user_agent),
            str_or_dash(&self.request_id),
            str_or_dash(&self.authority),
            addr(self.upstream_host),
            str_or_dash(&self.upstream_cluster),
            addr(self.downstream_local_address),
            addr(self.downstream_remote_address),
            str_or_dash(&self.requested_server_name),
            str_or_dash(&self.route_name),
        )
    }

    fn json(&self) -> String {
        let line = JsonLine {
            start_time: self.start(),
            method: self.method.as_deref(),
            path: self.path.as_deref(),
            protocol: self.protocol,
            response_code: self.response_code,
            grpc_status: self.grpc_status,
            response_flags: self.response_flags.to_string(),
            bytes_received: self.bytes_received,
            bytes_sent: self.bytes_sent,
            duration: self.duration.as_millis(),
            x_forwarded_for: self.x_forwarded_for.as_deref(),
            user_agent: self.user_agent.as_deref(),
            request_id: self.request_id.as_deref(),
            authority: self.authority.as_deref(),
            upstream_host: self.upstream_host.map(|a| a.to_string()),
            upstream_cluster: self.upstream_cluster.as_deref(),
            downstream_local_address: self.downstream_local_address.map(|a| a.to_string()),
            downstream_remote_address: self.downstream_remote_address.map(|a| a.to_string()),
            requested_server_name: self.requested_server_name.as_deref(),
            route_name: self.route_name.as_deref(),
        };
        // Plain data: serializing cannot fail.
        serde_json::to_string(&line).unwrap_or_default() + "\n"
    }
}

/// The sending side, shared by every request and connection. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AccessLog {
    entries: mpsc::Sender<AccessEntry>,
    dropped: Arc<AtomicU64>,
}

impl AccessLog {
    /// Opens the sink and starts the writer task (within a tokio runtime). The task ends when
    /// every `AccessLog` clone is gone, after writing what was queued.
    pub fn start(sink: &Sink, format: Format) -> io::Result<Self> {
        let out: Box<dyn Write + Send> = match sink {
            Sink::Stdout => Box::new(io::stdout()),
            Sink::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let (entries, queue) = mpsc::channel(QUEUE);
        tokio::spawn(write_entries(queue, io::BufWriter::new(out), format));
        Ok(Self {
            entries,
            dropped: Arc::default(),
        })
    }

    /// Queues the entry; never waits.
    pub fn log(&self, entry: AccessEntry) {
        if self.entries.try_send(entry).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Entries lost because the writer fell behind (or stopped).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn write_entries(
    mut queue: mpsc::Receiver<AccessEntry>,
    mut out: impl Write,
    format: Format,
) {
    let mut batch = Vec::with_capacity(256);
    let mut flushed_at = std::time::Instant::now();
    while queue.recv_many(&mut batch, 256).await > 0 {
        let written = batch
            .drain(..)
            .try_for_each(|entry| out.write_all(entry.format(format).as_bytes()));
        // Flushed when nothing more waits (a quiet moment, the end of a burst), and under
        // steady load at least every FLUSH_EVERY.
        let due = queue.is_empty() || flushed_at.elapsed() >= FLUSH_EVERY;
        let result = written.and_then(|()| if due { out.flush() } else { Ok(()) });
        if due {
            flushed_at = std::time::Instant::now();
        }
        if let Err(err) = result {
            tracing::warn!(%err, "writing the access log failed");
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests;
