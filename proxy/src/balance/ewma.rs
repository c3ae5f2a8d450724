//! Peak-EWMA latency estimate, after Finagle's (also in linkerd2-proxy and tower): quick to
//! believe an endpoint got slower, slow to believe it got faster.

use std::time::{Duration, Instant};

/// How fast the estimate forgets: a sample's weight falls by 1/e per `DECAY` of age.
pub(super) const DECAY: Duration = Duration::from_secs(10);

/// The estimate of an endpoint with no samples yet: the noise floor, so a new endpoint competes
/// on active requests with the fast ones and gets the calls that measure it. (A pessimistic
/// default would keep it out until the default decays, seconds later.)
pub(super) const DEFAULT_RTT: Duration = NOISE_FLOOR;

/// Latency differences below this are noise, not a reason to prefer an endpoint: costs compare
/// estimates rounded up to this floor times a power of two. Without the rounding, power of two
/// choices among equal endpoints at low concurrency (no request in flight anywhere) is decided
/// by jitter alone, and a replica that once had a scheduling hiccup gets no calls until its
/// estimate decays (seconds): one client's 300 calls would skip it entirely. Within a band the
/// choice falls to active requests, then chance; a replica slower by a factor of two or more
/// past the floor still loses. The floor also keeps an idle, decayed estimate from hiding load.
pub(super) const NOISE_FLOOR: Duration = Duration::from_millis(5);

#[derive(Clone, Copy, Debug)]
pub(super) struct PeakEwma {
    nanos: f64,
    updated: Instant,
    /// Whether `nanos` comes from a sample rather than [`DEFAULT_RTT`].
    measured: bool,
    /// The last two raw samples, newest first.
    recent: [Option<f64>; 2],
}

impl PeakEwma {
    pub fn new(now: Instant) -> Self {
        Self {
            nanos: nanos(DEFAULT_RTT),
            updated: now,
            measured: false,
            recent: [None; 2],
        }
    }

    /// The estimate as of `now`. Without samples it decays toward zero, so an endpoint that
    /// was slow, and so stopped being picked, is tried again after a while.
    pub fn estimate(&self, now: Instant) -> Duration {
        Duration::from_secs_f64(self.decayed(now) / 1e9)
    }

    /// The expected cost of one more request with `active` already in flight: the estimated
    /// latency times the requests it would queue behind (including itself).
    pub fn cost(&self, active: usize, now: Instant) -> f64 {
        banded(self.decayed(now)) * (active as f64 + 1.0)
    }

    /// A slowdown replaces the estimate at once (a peak is believed); a sample below is
    /// averaged in with a weight that grows with the time since the last sample. A slowdown is
    /// the median of the last three samples above the estimate: it shows in two of three
    /// requests, while one hiccup (a descheduled thread, a GC pause) is ignored rather than
    /// keeping the endpoint out for seconds. The first sample replaces the default outright:
    /// the default is a placeholder, and averaging against it would let whichever endpoint
    /// was sampled most often look fastest for a whole decay period, starving equal endpoints.
    pub fn observe(&mut self, latency: Duration, now: Instant) {
        let raw = nanos(latency);
        let [newer, older] = self.recent.map(|s| s.unwrap_or(self.nanos));
        self.recent = [Some(raw), Some(newer)];
        let slowdown = median(raw, newer, older);
        self.nanos = if !self.measured {
            raw
        } else if slowdown > self.nanos {
            slowdown
        } else if raw < self.nanos {
            let kept = self.weight(now);
            self.nanos * kept + raw * (1.0 - kept)
        } else {
            // A lone hiccup: not evidence yet.
            return;
        };
        self.measured = true;
        // Samples taken before the lock may arrive out of order: time never runs back.
        self.updated = self.updated.max(now);
    }

    fn decayed(&self, now: Instant) -> f64 {
        self.nanos * self.weight(now)
    }

    /// What is left of the last estimate's weight at `now`.
    fn weight(&self, now: Instant) -> f64 {
        let age = now.saturating_duration_since(self.updated);
        (-age.as_secs_f64() / DECAY.as_secs_f64()).exp()
    }
}

fn median(a: f64, b: f64, c: f64) -> f64 {
    a.max(b).min(a.min(b).max(c))
}

/// The estimate rounded up to [`NOISE_FLOOR`] times a power of two.
fn banded(estimate: f64) -> f64 {
    let floor = nanos(NOISE_FLOOR);
    if estimate <= floor {
        return floor;
    }
    floor * (estimate / floor).log2().ceil().exp2()
}

fn nanos(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn close(actual: Duration, expected: Duration) -> bool {
        actual.abs_diff(expected) < Duration::from_micros(10)
    }

    #[test]
    fn starts_at_the_default() {
        let now = Instant::now();
        assert!(close(PeakEwma::new(now).estimate(now), DEFAULT_RTT));
    }

    #[test]
    fn costs_ignore_differences_below_the_noise_floor_and_within_a_band() {
        let now = Instant::now();
        let sampled = |latency| {
            let mut ewma = PeakEwma::new(now);
            ewma.observe(latency, now);
            ewma
        };
        let (fast, jittery) = (sampled(Duration::from_micros(300)), sampled(ms(4)));
        assert_eq!(fast.cost(0, now), jittery.cost(0, now));
        assert!(
            fast.cost(0, now) < jittery.cost(1, now),
            "then fewer active requests win"
        );
        assert_eq!(sampled(ms(11)).cost(0, now), sampled(ms(19)).cost(0, now));
        assert!(sampled(ms(4)).cost(0, now) < sampled(ms(11)).cost(0, now));
        assert!(sampled(ms(20)).cost(0, now) < sampled(ms(200)).cost(0, now));
    }

    #[test]
    fn the_first_sample_replaces_the_default() {
        let now = Instant::now();
        let mut ewma = PeakEwma::new(now);
        ewma.observe(ms(1), now);
        assert!(close(ewma.estimate(now), ms(1)));
    }

    #[test]
    fn a_peak_replaces_the_estimate_once_it_repeats() {
        let now = Instant::now();
        let mut ewma = PeakEwma::new(now);
        ewma.observe(ms(5), now);
        ewma.observe(ms(200), now);
        assert!(
            close(ewma.estimate(now), ms(5)),
            "one hiccup is not a slowdown"
        );
        ewma.observe(ms(5), now);
        assert!(close(ewma.estimate(now), ms(5)));
        ewma.observe(ms(200), now);
        ewma.observe(ms(200), now);
        assert!(close(ewma.estimate(now), ms(200)), "two of three are");
    }

    #[test]
    fn median_of_three() {
        assert_eq!(median(1.0, 2.0, 3.0), 2.0);
        assert_eq!(median(3.0, 1.0, 2.0), 2.0);
        assert_eq!(median(2.0, 3.0, 1.0), 2.0);
        assert_eq!(median(5.0, 5.0, 1.0), 5.0);
    }

    #[test]
    fn lower_samples_move_the_estimate_by_their_age() {
        let start = Instant::now();
        let mut soon = PeakEwma::new(start);
        soon.observe(ms(100), start);
        let mut late = soon;
        // Two lower samples, so the median sees them.
        for ewma_at in [start + ms(10), start + ms(10)] {
            soon.observe(ms(10), ewma_at);
        }
        for ewma_at in [start + DECAY, start + DECAY] {
            late.observe(ms(10), ewma_at);
        }
        // 10 ms after a 100 ms sample, 10 ms ones barely count; a decay period later, the
        // first counts for 1 - 1/e.
        let soon = soon.estimate(start + ms(10)).as_secs_f64();
        assert!(soon > 0.099, "{soon}");
        let late = late.estimate(start + DECAY).as_secs_f64();
        let kept = (-1f64).exp();
        assert!(
            (late - (0.1 * kept + 0.01 * (1.0 - kept))).abs() < 1e-6,
            "{late}"
        );
    }

    #[test]
    fn idle_estimates_decay_toward_zero() {
        let start = Instant::now();
        let mut ewma = PeakEwma::new(start);
        ewma.observe(ms(200), start);
        let later = ewma.estimate(start + DECAY * 4);
        assert!(later < ms(4), "{later:?}");
        assert!(ewma.cost(3, start + DECAY * 10_000) > ewma.cost(2, start + DECAY * 10_000));
    }

    #[test]
    fn cost_grows_with_active_requests() {
        let now = Instant::now();
        let ewma = PeakEwma::new(now);
        assert_eq!(ewma.cost(1, now), 2.0 * ewma.cost(0, now));
    }
}
