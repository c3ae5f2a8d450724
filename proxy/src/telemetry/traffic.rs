//! A live traffic summary kept beside the Prometheus metrics, for the admin dashboard
//! (`/stats/summary`): per edge, source workload -> destination service, the requests (TCP:
//! connections) by outcome and their latency, in total and over the last [`WINDOW_SECS`].
//! Prometheus' families cannot be read back, so the recordings that feed them feed this too.
//!
//! Rates come from one-second slots per edge: a recording lands in the slot of its second
//! (reused, and so cleared, when that second comes round again); a summary adds up the last
//! complete seconds. Exact over the window, with no timer task, and nothing to do when idle.

mod histogram;

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use serde::Serialize;

use self::histogram::LatencyHistogram;
use super::{Peer, ResponseFlags};

/// The rates and latencies cover this many complete seconds.
pub const WINDOW_SECS: u64 = 10;
/// The window's seconds and the one being filled.
const SLOTS: usize = WINDOW_SECS as usize + 1;

/// Who called which Service, and how. Edges are told apart by the client's workload and
/// namespace only (what the summary shows): its pods' versions are one caller.
#[derive(Clone, Debug)]
pub struct Edge {
    /// The client's workload.
    pub source: Peer,
    /// `name.ns.svc.cluster.local`, as in `destination_service`.
    pub destination_service: String,
    /// `grpc`, `http` or `tcp`, as in `request_protocol`.
    pub protocol: &'static str,
}

impl Edge {
    fn key(&self) -> (&str, &str, &str, &str) {
        (
            &self.source.workload,
            &self.source.namespace,
            &self.destination_service,
            self.protocol,
        )
    }
}

impl PartialEq for Edge {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Edge {}

impl std::hash::Hash for Edge {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialOrd for Edge {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Edge {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// How a request or connection ended, as the dashboard counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    GrpcStatus(u16),
    /// The HTTP status class: 2 for 2xx, and so on.
    HttpClass(u16),
    /// A relayed connection: no flags, or why it failed.
    Tcp(ResponseFlags),
}

impl Outcome {
    /// As Istio's dashboards count errors: a gRPC status other than OK, a 5xx, a failed connection.
    fn is_error(self) -> bool {
        match self {
            Outcome::GrpcStatus(status) => status != 0,
            Outcome::HttpClass(class) => class >= 5,
            Outcome::Tcp(flags) => !flags.is_empty(),
        }
    }
}

impl fmt::Display for Outcome {
    /// The summary's keys: the gRPC status number, `5xx`, `ok` or the response flags.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::GrpcStatus(status) => write!(f, "{status}"),
            Outcome::HttpClass(class) => write!(f, "{class}xx"),
            Outcome::Tcp(flags) if flags.is_empty() => f.write_str("ok"),
            Outcome::Tcp(flags) => write!(f, "{flags}"),
        }
    }
}

/// Counts by outcome and latencies, over some span of time.
#[derive(Clone, Debug, Default)]
struct Tally {
    /// Few distinct outcomes per edge: a list beats a map.
    outcomes: Vec<(Outcome, u64)>,
    latency: LatencyHistogram,
}

impl Tally {
    fn add(&mut self, outcome: Outcome, count: u64) {
        match self
            .outcomes
            .iter_mut()
            .find(|(known, _)| *known == outcome)
        {
            Some((_, total)) => *total += count,
            None => self.outcomes.push((outcome, count)),
        }
    }

    fn merge(&mut self, other: &Tally) {
        for (outcome, count) in &other.outcomes {
            self.add(*outcome, *count);
        }
        self.latency.merge(&other.latency);
    }

    fn count(&self, which: impl Fn(Outcome) -> bool) -> u64 {
        let matching = self.outcomes.iter().filter(|(outcome, _)| which(*outcome));
        matching.map(|(_, count)| count).sum()
    }
}

#[derive(Clone, Debug, Default)]
struct Slot {
    /// Seconds since the summary began; `None` while unused.
    second: Option<u64>,
    tally: Tally,
}

#[derive(Clone, Debug, Default)]
struct EdgeTraffic {
    total: Tally,
    by_second: [Slot; SLOTS],
}

impl EdgeTraffic {
    fn record(&mut self, second: u64, outcome: Outcome, latency: Option<Duration>) {
        let slot = &mut self.by_second[second as usize % SLOTS];
        if slot.second != Some(second) {
            *slot = Slot {
                second: Some(second),
                tally: Tally::default(),
            };
        }
        for tally in [&mut self.total, &mut slot.tally] {
            tally.add(outcome, 1);
            if let Some(latency) = latency {
                tally.latency.observe(latency.as_secs_f64() * 1000.0);
            }
        }
    }

    /// The tally of the complete seconds in `window`.
    fn within(&self, window: &std::ops::Range<u64>) -> Tally {
        let mut tally = Tally::default();
        for slot in &self.by_second {
            if slot.second.is_some_and(|second| window.contains(&second)) {
                tally.merge(&slot.tally);
            }
        }
        tally
    }
}

/// The traffic summary; one per process, shared by the request and TCP metrics.
#[derive(Debug)]
pub struct Traffic {
    started: Instant,
    // One short critical section per request; the Prometheus families beside it lock too.
    edges: Mutex<HashMap<Edge, EdgeTraffic>>,
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            edges: Mutex::default(),
        }
    }
}

impl Traffic {
    /// Counts a request (or a TCP connection) that ended; `latency` when it has one.
    pub fn record(&self, edge: Edge, outcome: Outcome, latency: Option<Duration>) {
        self.record_at(Instant::now(), edge, outcome, latency);
    }

    fn record_at(&self, now: Instant, edge: Edge, outcome: Outcome, latency: Option<Duration>) {
        let second = self.second(now);
        let mut edges = self.edges.lock().unwrap_or_else(PoisonError::into_inner);
        edges
            .entry(edge)
            .or_default()
            .record(second, outcome, latency);
    }

    pub fn summary(&self) -> Summary {
        self.summary_at(Instant::now())
    }

    fn summary_at(&self, now: Instant) -> Summary {
        let current = self.second(now);
        // The complete seconds, at most the window's, fewer just after start.
        let window = current.saturating_sub(WINDOW_SECS)..current;
        let seconds = window.end - window.start;
        let tallies: Vec<(Edge, Tally, Tally)> = {
            let edges = self.edges.lock().unwrap_or_else(PoisonError::into_inner);
            edges
                .iter()
                .map(|(edge, traffic)| {
                    (edge.clone(), traffic.total.clone(), traffic.within(&window))
                })
                .collect()
        };
        Summary::of(tallies, seconds)
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.started).as_secs()
    }
}

/// `/stats/summary`.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// The seconds the rates and latencies cover (fewer than [`WINDOW_SECS`] just after start).
    pub window_seconds: u64,
    /// Sorted by source, then destination.
    pub edges: Vec<EdgeSummary>,
    /// The edges added up per destination and protocol, sorted.
    pub services: Vec<ServiceSummary>,
}

#[derive(Debug, Serialize)]
pub struct EdgeSummary {
    pub source_workload: String,
    pub source_workload_namespace: String,
    pub destination_service: String,
    pub request_protocol: &'static str,
    #[serde(flatten)]
    pub stats: Stats,
}

#[derive(Debug, Serialize)]
pub struct ServiceSummary {
    pub destination_service: String,
    pub request_protocol: &'static str,
    #[serde(flatten)]
    pub stats: Stats,
}

/// Requests (TCP: connections) since start and over the window.
#[derive(Debug, Serialize)]
pub struct Stats {
    pub requests: u64,
    /// By outcome: the gRPC status number, the HTTP class (`5xx`), `ok` or TCP's flags.
    pub outcomes: BTreeMap<String, u64>,
    /// Per second, over the window.
    pub request_rate: f64,
    pub error_rate: f64,
    pub outcome_rates: BTreeMap<String, f64>,
    /// Over the window; `null` when it saw no request with a latency.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl Summary {
    fn of(mut tallies: Vec<(Edge, Tally, Tally)>, seconds: u64) -> Summary {
        tallies.sort_by(|(a, ..), (b, ..)| a.cmp(b));
        let mut services: BTreeMap<(String, &'static str), (Tally, Tally)> = BTreeMap::new();
        for (edge, total, window) in &tallies {
            let key = (edge.destination_service.clone(), edge.protocol);
            let (service_total, service_window) = services.entry(key).or_default();
            service_total.merge(total);
            service_window.merge(window);
        }
        let edges = tallies
            .into_iter()
            .map(|(edge, total, window)| EdgeSummary {
                source_workload: edge.source.workload.clone(),
                source_workload_namespace: edge.source.namespace.clone(),
                destination_service: edge.destination_service,
                request_protocol: edge.protocol,
                stats: Stats::of(&total, &window, seconds),
            })
            .collect();
        let services = services
            .into_iter()
            .map(
                |((destination_service, protocol), (total, window))| ServiceSummary {
                    destination_service,
                    request_protocol: protocol,
                    stats: Stats::of(&total, &window, seconds),
                },
            )
            .collect();
        Summary {
            window_seconds: seconds,
            edges,
            services,
        }
    }
}

impl Stats {
    fn of(total: &Tally, window: &Tally, seconds: u64) -> Stats {
        // No complete second yet: no rate rather than a division by zero.
        let per_second = |count: u64| match seconds {
            0 => 0.0,
            _ => count as f64 / seconds as f64,
        };
        let by_outcome = |tally: &Tally| -> BTreeMap<String, u64> {
            let outcomes = tally.outcomes.iter();
            outcomes.map(|(o, count)| (o.to_string(), *count)).collect()
        };
        Stats {
            requests: total.count(|_| true),
            outcomes: by_outcome(total),
            request_rate: per_second(window.count(|_| true)),
            error_rate: per_second(window.count(Outcome::is_error)),
            outcome_rates: by_outcome(window)
                .into_iter()
                .map(|(outcome, count)| (outcome, per_second(count)))
                .collect(),
            p50_ms: window.latency.quantile(0.5),
            p99_ms: window.latency.quantile(0.99),
        }
    }
}

#[cfg(test)]
mod tests;
