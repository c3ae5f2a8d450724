//! `/clusters`, as Envoy's admin tells it: per cluster (Istio's name) and endpoint, one
//! `CLUSTER::ADDRESS::STAT::VALUE` line per stat; `?format=json` gives the same as JSON.
//!
//! Stats: `cx_active` (pooled connections open to the endpoint), `rq_active`, `rq_total`
//! (tries sent, retries included), `health_flags` (`healthy` or Envoy's
//! `/failed_outlier_check`), `ejected_until` (RFC 3339, only while ejected), `times_ejected`,
//! `latency_ewma_ms` (the balancer's peak-EWMA estimate).

use std::{
    fmt::Write as _,
    net::SocketAddr,
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};

use crate::telemetry::endpoints::EndpointRow;

#[derive(Debug, Serialize, Deserialize)]
pub struct Clusters {
    pub cluster_statuses: Vec<ClusterStatus>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub name: String,
    pub host_statuses: Vec<HostStatus>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct HostStatus {
    pub address: SocketAddr,
    pub cx_active: usize,
    pub rq_active: usize,
    pub rq_total: u64,
    pub health_flags: String,
    /// While ejected: when it is back in balancing (RFC 3339).
    pub ejected_until: Option<String>,
    pub times_ejected: u64,
    pub latency_ewma_ms: f64,
}

/// Envoy's health flag for a host outlier detection ejected.
pub const FAILED_OUTLIER_CHECK: &str = "/failed_outlier_check";

impl Clusters {
    /// `rows` grouped by cluster (consecutive, as `endpoint_rows` gives them); `now` dates
    /// the ejections.
    pub fn of(rows: Vec<EndpointRow>, now: SystemTime) -> Self {
        let mut cluster_statuses: Vec<ClusterStatus> = Vec::new();
        for row in rows {
            let host = HostStatus::of(&row, now);
            match cluster_statuses.last_mut() {
                Some(last) if last.name == row.cluster => last.host_statuses.push(host),
                _ => cluster_statuses.push(ClusterStatus {
                    name: row.cluster,
                    host_statuses: vec![host],
                }),
            }
        }
        Self { cluster_statuses }
    }

    /// Envoy's text form.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for cluster in &self.cluster_statuses {
            for host in &cluster.host_statuses {
                let prefix = format!("{}::{}", cluster.name, host.address);
                for (stat, value) in host.stats() {
                    let _ = writeln!(out, "{prefix}::{stat}::{value}");
                }
            }
        }
        out
    }
}

impl HostStatus {
    fn of(row: &EndpointRow, now: SystemTime) -> Self {
        let state = &row.state;
        let ejected_until = state.ejected_for.map(|left| rfc3339(now + left));
        Self {
            address: row.endpoint,
            cx_active: state.connections,
            rq_active: state.active,
            rq_total: state.total,
            health_flags: match ejected_until {
                Some(_) => FAILED_OUTLIER_CHECK,
                None => "healthy",
            }
            .to_owned(),
            ejected_until,
            times_ejected: state.times_ejected,
            latency_ewma_ms: millis(state.latency),
        }
    }

    /// `(name, value)` in Envoy's order (counts, then health); `ejected_until` only while set.
    fn stats(&self) -> Vec<(&'static str, String)> {
        let mut stats = vec![
            ("cx_active", self.cx_active.to_string()),
            ("rq_active", self.rq_active.to_string()),
            ("rq_total", self.rq_total.to_string()),
            ("health_flags", self.health_flags.clone()),
        ];
        stats.extend(
            self.ejected_until
                .clone()
                .map(|until| ("ejected_until", until)),
        );
        stats.push(("times_ejected", self.times_ejected.to_string()));
        stats.push(("latency_ewma_ms", self.latency_ewma_ms.to_string()));
        stats
    }
}

/// Milliseconds to the microsecond: enough to compare endpoints, short to read.
fn millis(latency: Duration) -> f64 {
    (latency.as_micros() as f64) / 1000.0
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests;
