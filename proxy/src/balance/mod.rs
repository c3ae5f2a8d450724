//! Choosing an endpoint.
//!
//! - Connections (L4): [`RoundRobin`] per Service port, trying the next endpoints in turn when
//!   a connect fails.
//! - Requests (L7): [`Balancers`], by the DestinationRule's [`LbPolicy`]. The default is power
//!   of two choices weighted by a peak-EWMA latency estimate, as linkerd2-proxy does: an
//!   endpoint that answers slowly, or has many requests in flight, gets fewer new ones. Under
//!   an `outlierDetection`, endpoints that keep failing are left out for a while, as Envoy does
//!   (`outlier`): each try reports how it ended through its [`Pick`]. `consistentHash` keeps
//!   requests with the same key on the same endpoint ([`ring`]).
//!
//! Both keep their state per [`BalanceKey`] across config reloads, so a reload neither sends the
//! next requests to the first pod again nor forgets which endpoints are slow. The endpoints are
//! the caller's, given on every pick: the balancer holds no endpoint list that could go stale.
//! What it remembers per endpoint (load, latency, ejections) is forgotten a while after the
//! endpoint was last picked or drawn and its ejections have decayed, which bounds it by the
//! endpoints in recent configs.

mod choose;
mod endpoint;
mod ewma;
mod outlier;
mod pool;
mod ring;
mod round_robin;

use std::{
    collections::HashMap,
    fmt,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
    },
    time::{Duration, Instant},
};

use fastrand::Rng;

use self::pool::Pool;
pub use self::{
    endpoint::Pick,
    outlier::{Ejection, EjectionReason},
    ring::{ConsistentHash, HashKey},
    round_robin::RoundRobin,
};
use crate::config::TrafficPolicy;

/// Identifies a Service port across config generations: (Service FQDN, port). One key is one
/// set of endpoints to balance over (a subset would get its own).
pub type BalanceKey = (String, u16);

/// How requests are spread over a Service port's endpoints: DestinationRule
/// `trafficPolicy.loadBalancer` (`simple` or `consistentHash`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum LbPolicy {
    /// `ROUND_ROBIN`: each endpoint in turn.
    RoundRobin,
    /// `LEAST_REQUEST` (and its deprecated alias `LEAST_CONN`): power of two choices by requests
    /// in flight, as Envoy does.
    LeastRequest,
    /// `RANDOM`.
    Random,
    /// strait's default (`UNSPECIFIED` or no `loadBalancer`): power of two choices by
    /// peak-EWMA latency times requests in flight.
    #[default]
    PeakEwma,
    /// `consistentHash`: a ring hash over the request's key.
    ConsistentHash(ConsistentHash),
}

impl LbPolicy {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::RoundRobin => "ROUND_ROBIN",
            Self::LeastRequest => "LEAST_REQUEST",
            Self::Random => "RANDOM",
            Self::PeakEwma => "PEAK_EWMA",
            Self::ConsistentHash(_) => "RING_HASH",
        }
    }
}

/// `ROUND_ROBIN`; a ring hash with its key: `RING_HASH(header x-user, 1024 points)`.
impl fmt::Display for LbPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if let Self::ConsistentHash(hash) = self {
            let key = match &hash.key {
                ring::HashKey::Header(name) => format!("header {name}"),
                ring::HashKey::Cookie(name) => format!("cookie {name}"),
                ring::HashKey::SourceIp => "source IP".to_owned(),
                ring::HashKey::QueryParameter(name) => format!("query parameter {name}"),
            };
            write!(f, "({key}, {} points)", hash.ring_size)?;
        }
        Ok(())
    }
}

/// How often forgotten endpoints are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Per-request balancing state for every key: one per proxy, kept across config reloads.
///
/// State is per key rather than per endpoint address: a key is what a route balances over, as
/// an Envoy cluster or a linkerd2-proxy balancer is, and a round-robin turn only means something
/// within one endpoint set. An endpoint reached through two keys (a pod behind two Services) is
/// seen by each as carrying only its own requests.
pub struct Balancers {
    /// Shared with the picks that may report to them.
    pools: RwLock<HashMap<BalanceKey, Arc<Pool>>>,
    /// Seeds each new key's generator: random in production, fixed in tests.
    seeds: Mutex<Rng>,
    epoch: Instant,
    /// When the next sweep is due, in nanoseconds since `epoch`: an atomic, so that the check
    /// on every pick is a load.
    next_sweep: AtomicU64,
}

impl Default for Balancers {
    fn default() -> Self {
        Self::with_rng(Rng::new())
    }
}

impl Balancers {
    /// Draws from a fixed seed, for reproducible tests.
    pub fn with_seed(seed: u64) -> Self {
        Self::with_rng(Rng::with_seed(seed))
    }

    fn with_rng(rng: Rng) -> Self {
        Self {
            pools: RwLock::default(),
            seeds: Mutex::new(rng),
            epoch: Instant::now(),
            next_sweep: AtomicU64::new(nanos(SWEEP_EVERY)),
        }
    }

    /// Picks an endpoint for one request (one try) among `endpoints` (the current config's
    /// ready endpoints for the Service port, all of them: outlier detection counts ejections as
    /// a share of them), under `policy`'s `loadBalancer` and `outlierDetection`: ejected
    /// endpoints are left out while enough others are healthy. Avoids `avoid` when any other is
    /// usable (a retry prefers another endpoint). `None` when `endpoints` is empty.
    pub fn pick(
        &self,
        key: &BalanceKey,
        policy: &TrafficPolicy,
        endpoints: &[SocketAddr],
        avoid: &[SocketAddr],
    ) -> Option<Pick> {
        self.pick_hashed(key, policy, endpoints, avoid, None)
    }

    /// [`Balancers::pick`] for a request whose consistent hash is `hash` (see
    /// [`HashKey::hash`]); without one, a consistent-hash policy picks at random.
    pub fn pick_hashed(
        &self,
        key: &BalanceKey,
        policy: &TrafficPolicy,
        endpoints: &[SocketAddr],
        avoid: &[SocketAddr],
        hash: Option<u64>,
    ) -> Option<Pick> {
        self.pick_at(key, policy, endpoints, avoid, hash, Instant::now())
    }

    fn pick_at(
        &self,
        key: &BalanceKey,
        policy: &TrafficPolicy,
        endpoints: &[SocketAddr],
        avoid: &[SocketAddr],
        hash: Option<u64>,
        now: Instant,
    ) -> Option<Pick> {
        if endpoints.is_empty() {
            return None;
        }
        let pick = self.with_pool(key, |pool| pool.pick(policy, endpoints, avoid, hash, now));
        self.sweep_if_due(now);
        Some(pick)
    }

    /// Every endpoint the balancer remembers, by key then address: for `/clusters`. An endpoint
    /// that left the config shows until it is forgotten.
    pub fn snapshot(&self) -> Vec<EndpointStats> {
        let now = Instant::now();
        let mut stats: Vec<EndpointStats> = read(&self.pools)
            .iter()
            .flat_map(|(key, pool)| pool.stats(key, now))
            .collect();
        stats.sort_by(|a, b| (&a.key, a.endpoint).cmp(&(&b.key, b.endpoint)));
        stats
    }

    fn with_pool<T>(&self, key: &BalanceKey, f: impl FnOnce(&Arc<Pool>) -> T) -> T {
        if let Some(pool) = read(&self.pools).get(key) {
            return f(pool);
        }
        let rng = lock(&self.seeds).fork();
        let mut pools = write(&self.pools);
        f(pools
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Pool::new(rng))))
    }

    /// At most once per [`SWEEP_EVERY`], by whichever pick comes first, the others going on.
    fn sweep_if_due(&self, now: Instant) {
        let now_nanos = nanos(now.saturating_duration_since(self.epoch));
        let due = self.next_sweep.load(Relaxed);
        let next = now_nanos.saturating_add(nanos(SWEEP_EVERY));
        if now_nanos >= due
            && self
                .next_sweep
                .compare_exchange(due, next, Relaxed, Relaxed)
                .is_ok()
        {
            write(&self.pools).retain(|_, pool| pool.sweep(now));
        }
    }
}

/// One endpoint of one key, for the admin server.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointStats {
    pub key: BalanceKey,
    pub endpoint: SocketAddr,
    /// Requests in flight.
    pub active: usize,
    /// Requests sent since the endpoint was first picked (or last forgotten).
    pub total: u64,
    /// The peak-EWMA latency estimate, now.
    pub ewma: Duration,
    /// Outlier ejections since the endpoint was first picked (or last forgotten).
    pub times_ejected: u64,
    /// While ejected: when it is back in balancing.
    pub ejected_until: Option<Instant>,
}

// The balancer's locks guard counters and estimates that stay valid whatever a panicking
// holder left half done: recover rather than take every later request down too.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Saturates after 584 years.
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
