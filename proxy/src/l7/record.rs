//! A request's record: its metrics and, with `--access-log`, its access log line, both written
//! when the record is dropped: when the response ended, or when the client left first (DC).

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::SystemTime,
};

use http::{Request, Response, Version};
use tokio::time::Instant;

use super::{authority, grpc, headers::REQUEST_ID};
use crate::{
    config::Backend,
    telemetry::{
        access_log::{AccessEntry, AccessLog},
        requests::{RequestMetrics, RequestOutcome},
        Peer, Peers, ResponseFlags,
    },
};

pub(super) struct Record {
    metrics: Arc<RequestMetrics>,
    started: Instant,
    pub outcome: RequestOutcome,
    /// Whether the response reached its end; a response dropped before that was cut by the
    /// client (Envoy's DC, downstream connection termination).
    pub ended: bool,
    /// Request body bytes read from the client so far, once the body is being read.
    received: Option<Arc<AtomicU64>>,
    /// The access log line being filled, when the log is on. Boxed: most of it is strings, and
    /// a record travels with its response.
    log: Option<Box<Logged>>,
}

struct Logged {
    sink: AccessLog,
    entry: AccessEntry,
}

impl Record {
    /// A record for metrics only (a mirrored copy: Envoy logs no line for those).
    pub fn new(metrics: Arc<RequestMetrics>, grpc: bool) -> Self {
        Self {
            metrics,
            started: Instant::now(),
            outcome: RequestOutcome {
                peers: Peers::source_only(Peer::unknown()),
                service: None,
                grpc,
                response_code: 0,
                grpc_status: None,
                flags: ResponseFlags::NONE,
                request_bytes: 0,
                response_bytes: 0,
            },
            ended: false,
            received: None,
            log: None,
        }
    }

    /// The record of a client's request from `client`, logged to `log` if there is one.
    pub fn of_request<B>(
        metrics: Arc<RequestMetrics>,
        log: Option<&AccessLog>,
        request: &Request<B>,
        client: SocketAddr,
    ) -> Self {
        let mut record = Self::new(metrics, grpc::is_grpc(request));
        record.log = log.map(|sink| {
            Box::new(Logged {
                sink: sink.clone(),
                entry: entry_of(request, client),
            })
        });
        record
    }

    /// Notes the response's status and, for a trailers-only response, its gRPC status.
    pub fn answered<B>(&mut self, response: &Response<B>) {
        self.outcome.response_code = response.status().as_u16();
        self.outcome.grpc_status = grpc::status(response.headers());
    }

    /// The route the request took.
    pub fn route(&mut self, route_name: &str) {
        if let Some(log) = &mut self.log {
            log.entry.route_name = Some(route_name.to_owned());
        }
    }

    /// The cluster (Service port or subset) the request is sent to.
    pub fn cluster(&mut self, backend: &Backend) {
        if let Some(log) = &mut self.log {
            log.entry.upstream_cluster = Some(backend.cluster_name());
        }
    }

    /// The endpoint whose response the client gets.
    pub fn upstream(&mut self, host: SocketAddr) {
        if let Some(log) = &mut self.log {
            log.entry.upstream_host = Some(host);
        }
    }

    /// Counts the request body bytes as `received` counts them.
    pub fn receiving(&mut self, received: Arc<AtomicU64>) {
        self.received = Some(received);
    }

    /// Response body bytes on their way to the client.
    pub fn sent(&mut self, bytes: usize) {
        self.outcome.response_bytes += bytes as u64;
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if !self.ended {
            self.outcome.flags |= ResponseFlags::DOWNSTREAM_TERMINATION;
        }
        let duration = self.started.elapsed();
        if let Some(received) = &self.received {
            self.outcome.request_bytes = received.load(Ordering::Relaxed);
        }
        self.metrics.record(&self.outcome, duration);
        if let Some(log) = self.log.take() {
            let Logged { sink, mut entry } = *log;
            let outcome = &self.outcome;
            entry.response_code = outcome.response_code;
            entry.grpc_status = outcome.grpc_status;
            entry.response_flags = outcome.flags;
            entry.duration = duration;
            entry.bytes_received = outcome.request_bytes;
            entry.bytes_sent = outcome.response_bytes;
            sink.log(entry);
        }
    }
}

/// What the request's head says, as Envoy's access log reads it: before any rewrite.
fn entry_of<B>(request: &Request<B>, client: SocketAddr) -> AccessEntry {
    let header = |name: &str| {
        let value = request.headers().get(name)?;
        Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
    };
    AccessEntry {
        start_time: Some(SystemTime::now()),
        method: Some(request.method().to_string()),
        path: request.uri().path_and_query().map(ToString::to_string),
        protocol: Some(match request.version() {
            Version::HTTP_2 => "HTTP/2",
            Version::HTTP_10 => "HTTP/1.0",
            _ => "HTTP/1.1",
        }),
        x_forwarded_for: header("x-forwarded-for"),
        user_agent: header("user-agent"),
        request_id: header(REQUEST_ID),
        authority: authority(request).map(str::to_owned),
        downstream_remote_address: Some(client),
        ..AccessEntry::default()
    }
}
