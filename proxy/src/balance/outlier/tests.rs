use std::collections::BTreeSet;

use super::*;
use crate::{
    balance::{
        pool::FORGET_AFTER, BalanceKey, Balancers, EndpointStats, LbPolicy, Pick, SWEEP_EVERY,
    },
    config::TrafficPolicy,
};

const UNAVAILABLE: TryOutcome = grpc(14);
const OK: TryOutcome = grpc(0);

const fn grpc(code: u16) -> TryOutcome {
    TryOutcome::Response {
        status: 200,
        grpc: Some(code),
    }
}

const fn http(status: u16) -> TryOutcome {
    TryOutcome::Response { status, grpc: None }
}

fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn percent(percent: u8) -> IntPercent {
    IntPercent::new(percent).unwrap()
}

fn threshold(count: u32) -> Option<NonZeroU32> {
    NonZeroU32::new(count)
}

/// Istio's defaults (an `outlierDetection: {}`) changed by `change`.
fn outliers(change: impl FnOnce(&mut OutlierDetection)) -> OutlierDetection {
    let mut outliers = OutlierDetection::default();
    change(&mut outliers);
    outliers
}

/// Any share of the endpoints may be ejected.
fn eject_any(outliers: &mut OutlierDetection) {
    outliers.max_ejection_percent = percent(100);
}

/// One Service port's endpoints, balanced from `start` on.
struct Port {
    balancers: Balancers,
    policy: TrafficPolicy,
    endpoints: Vec<SocketAddr>,
    start: Instant,
}

impl Port {
    /// Picked from first at `start`, which starts the interval ticks there.
    fn new(endpoints: u8, outlier_detection: Option<OutlierDetection>) -> Self {
        let port = Self {
            balancers: Balancers::with_seed(11),
            policy: TrafficPolicy {
                load_balancer: LbPolicy::RoundRobin,
                outlier_detection,
                ..TrafficPolicy::default()
            },
            endpoints: (1..=endpoints)
                .map(|i| SocketAddr::from(([10, 0, 0, i], 50051)))
                .collect(),
            start: Instant::now(),
        };
        port.usable(Duration::ZERO);
        port
    }

    fn key() -> BalanceKey {
        ("greeter.default.svc.cluster.local".to_string(), 50051)
    }

    fn pick(&self, at: Duration, avoid: &[SocketAddr]) -> Pick {
        let now = self.start + at;
        let pick = self.balancers.pick_at(
            &Self::key(),
            &self.policy,
            &self.endpoints,
            avoid,
            None,
            now,
        );
        pick.expect("endpoints to pick from")
    }

    /// The endpoints that ten picks per endpoint at `at` went to.
    fn usable(&self, at: Duration) -> BTreeSet<SocketAddr> {
        let picks = 10 * self.endpoints.len();
        (0..picks).map(|_| self.pick(at, &[]).endpoint()).collect()
    }

    /// Reports `outcome` for a try at endpoint `index`, picked at `at` by avoiding the others.
    fn report(&self, index: usize, outcome: TryOutcome, at: Duration) -> Option<Ejection> {
        let target = self.endpoints[index];
        let others: Vec<SocketAddr> = self
            .endpoints
            .iter()
            .copied()
            .filter(|&e| e != target)
            .collect();
        let mut pick = self.pick(at, &others);
        assert_eq!(pick.endpoint(), target, "endpoint {index} is usable");
        pick.report_at(outcome, self.start + at)
    }

    /// Reports `count` UNAVAILABLE for endpoint `index`: the ejection the last one caused.
    fn fail(&self, index: usize, count: u32, at: Duration) -> Option<Ejection> {
        for _ in 1..count {
            assert_eq!(self.report(index, UNAVAILABLE, at), None, "too early");
        }
        self.report(index, UNAVAILABLE, at)
    }

    fn stats(&self, index: usize) -> EndpointStats {
        let endpoint = self.endpoints[index];
        let mut stats = self.balancers.snapshot().into_iter();
        stats
            .find(|stats| stats.endpoint == endpoint)
            .expect("endpoint known")
    }

    fn all_but(&self, index: usize) -> BTreeSet<SocketAddr> {
        let mut endpoints: BTreeSet<SocketAddr> = self.endpoints.iter().copied().collect();
        endpoints.remove(&self.endpoints[index]);
        endpoints
    }

    fn all(&self) -> BTreeSet<SocketAddr> {
        self.endpoints.iter().copied().collect()
    }
}

#[test]
fn grpc_statuses_count_as_envoy_maps_them() {
    for code in [14, 4] {
        assert_eq!(kind(grpc(code)), Kind::GatewayError, "{code}");
    }
    // UNKNOWN, UNIMPLEMENTED, INTERNAL, DATA_LOSS, and a code gRPC does not define.
    for code in [2, 12, 13, 15, 99] {
        assert_eq!(kind(grpc(code)), Kind::ServerError, "{code}");
    }
    // OK, CANCELLED, INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, UNAUTHENTICATED...
    for code in [0, 1, 3, 5, 6, 7, 8, 9, 10, 11, 16] {
        assert_eq!(kind(grpc(code)), Kind::Success, "{code}");
    }
    assert_eq!(status_for_outliers(grpc(8)), 429);
    assert_eq!(status_for_outliers(grpc(12)), 501);
}

#[test]
fn http_statuses_and_failures_without_a_response() {
    assert_eq!(kind(http(500)), Kind::ServerError);
    assert_eq!(kind(http(501)), Kind::ServerError);
    for status in [502, 503, 504] {
        assert_eq!(kind(http(status)), Kind::GatewayError, "{status}");
    }
    for status in [200, 404, 429] {
        assert_eq!(kind(http(status)), Kind::Success, "{status}");
    }
    // A grpc-status decides over the HTTP status, as in Envoy's router.
    let answered = TryOutcome::Response {
        status: 503,
        grpc: Some(0),
    };
    assert_eq!(kind(answered), Kind::Success);
    for (outcome, status) in [
        (TryOutcome::ConnectFailure, 503),
        (TryOutcome::RefusedStream, 503),
        (TryOutcome::Reset, 503),
        (TryOutcome::PerTryTimeout, 504),
    ] {
        assert_eq!(status_for_outliers(outcome), status, "{outcome:?}");
    }
}

#[test]
fn five_consecutive_unavailable_eject() {
    let port = Port::new(3, Some(outliers(eject_any)));
    let ejection = port.fail(0, 5, secs(1)).expect("ejected");
    assert_eq!(ejection.endpoint, port.endpoints[0]);
    // consecutiveGatewayErrors is not set: the 5xx count ejects.
    assert_eq!(ejection.reason, EjectionReason::Consecutive5xxErrors);
    assert_eq!(ejection.times_ejected, 1);
    assert_eq!(port.usable(secs(2)), port.all_but(0));
    let stats = port.stats(0);
    assert_eq!(
        (stats.times_ejected, stats.ejected_until),
        (1, Some(ejection.until))
    );
}

#[test]
fn a_success_in_between_resets_the_count() {
    let port = Port::new(3, Some(outliers(eject_any)));
    assert_eq!(port.fail(0, 4, secs(1)), None);
    assert_eq!(port.report(0, OK, secs(1)), None);
    // NOT_FOUND is the application's answer, not the endpoint failing.
    assert_eq!(port.fail(0, 4, secs(1)), None);
    assert_eq!(port.report(0, grpc(5), secs(1)), None);
    assert_eq!(port.fail(0, 4, secs(1)), None);
    assert!(port.report(0, UNAVAILABLE, secs(1)).is_some());
}

#[test]
fn a_pick_reports_once() {
    let port = Port::new(3, Some(outliers(eject_any)));
    let mut pick = port.pick(secs(1), &port.endpoints[1..]);
    for _ in 0..5 {
        assert_eq!(pick.report_at(UNAVAILABLE, port.start + secs(1)), None);
    }
    assert_eq!(port.fail(0, 3, secs(1)), None, "the pick counted one");
    assert!(port.report(0, UNAVAILABLE, secs(1)).is_some());
}

#[test]
fn gateway_errors_are_counted_separately() {
    let policy = outliers(|outliers| {
        eject_any(outliers);
        outliers.consecutive_5xx_errors = None;
        outliers.consecutive_gateway_errors = threshold(3);
    });
    let port = Port::new(3, Some(policy));
    // A 500 is a 5xx but no gateway error: it ends the run of gateway errors.
    for outcome in [UNAVAILABLE, http(502), grpc(13), TryOutcome::PerTryTimeout] {
        assert_eq!(port.report(0, outcome, secs(1)), None);
    }
    assert_eq!(port.report(0, TryOutcome::ConnectFailure, secs(1)), None);
    let ejection = port.report(0, TryOutcome::Reset, secs(1));
    assert_eq!(
        ejection.unwrap().reason,
        EjectionReason::ConsecutiveGatewayErrors
    );

    // With both counted, gateway errors are 5xx too, and a mixed run of five ejects.
    let policy = outliers(|outliers| {
        eject_any(outliers);
        outliers.consecutive_gateway_errors = threshold(10);
    });
    let port = Port::new(3, Some(policy));
    for outcome in [grpc(13), http(503), grpc(2), grpc(4)] {
        assert_eq!(port.report(1, outcome, secs(1)), None);
    }
    let ejection = port.report(1, http(500), secs(1));
    assert_eq!(
        ejection.unwrap().reason,
        EjectionReason::Consecutive5xxErrors
    );
}

#[test]
fn uncounted_errors_never_eject() {
    let policy = outliers(|outliers| {
        eject_any(outliers);
        outliers.consecutive_5xx_errors = None;
    });
    let port = Port::new(3, Some(policy));
    for _ in 0..50 {
        assert_eq!(port.report(0, UNAVAILABLE, secs(1)), None);
    }
    assert_eq!(port.usable(secs(1)), port.all());
}

#[test]
fn ejections_last_until_the_first_tick_after_their_time() {
    // Istio's defaults: interval 10 s, base ejection time 30 s. Ticks at 10 s, 20 s...
    let port = Port::new(3, Some(outliers(eject_any)));
    let ejection = port.fail(0, 5, secs(1)).unwrap();
    assert_eq!(
        ejection.until,
        port.start + secs(40),
        "31 s, rounded up to a tick"
    );
    assert_eq!(port.usable(secs(39)), port.all_but(0));
    assert_eq!(port.usable(secs(40)), port.all());
    assert_eq!(port.stats(0).ejected_until, None);
    // Its counts were reset when it returned: four more errors are not five.
    assert_eq!(port.fail(0, 4, secs(40)), None);
}

#[test]
fn repeated_ejections_last_longer_and_the_multiplier_decays() {
    let port = Port::new(3, Some(outliers(eject_any)));
    let until = |at| {
        port.fail(0, 5, at)
            .map(|ejection| ejection.until - port.start)
    };
    assert_eq!(until(secs(1)), Some(secs(40)));
    // Ejected again before an interval back: twice the base time.
    assert_eq!(until(secs(45)), Some(secs(110)), "45 + 60, rounded up");
    // Back at 110 s; the ticks at 120 s and 130 s find it back for an interval or more: the
    // multiplier falls from 2 to 0, and the next ejection lasts the base time again.
    assert_eq!(port.usable(secs(110)), port.all());
    assert_eq!(until(secs(131)), Some(secs(170)));
    // Ejected again as soon as it is back (2), back at 230 s; the tick at 240 s takes one off,
    // so the next ejection lasts twice the base time again, not three times.
    assert_eq!(until(secs(170)), Some(secs(230)));
    assert_eq!(until(secs(245)), Some(secs(310)), "245 + 60, rounded up");
    assert_eq!(port.stats(0).times_ejected, 5);
}

#[test]
fn ejection_time_is_capped_at_300_seconds() {
    let policy = outliers(|outliers| {
        eject_any(outliers);
        outliers.interval = secs(1);
        outliers.base_ejection_time = secs(100);
    });
    let port = Port::new(3, Some(policy));
    let mut at = secs(0);
    let mut lengths = Vec::new();
    for _ in 0..5 {
        let ejection = port.fail(0, 5, at).unwrap();
        lengths.push(ejection.until - (port.start + at));
        at = ejection.until - port.start;
        assert_eq!(port.usable(at), port.all());
    }
    assert_eq!(
        lengths,
        [secs(100), secs(200), secs(300), secs(300), secs(300)]
    );
}

#[test]
fn max_ejection_percent_follows_envoy() {
    // Envoy ejects only while (ejected + 1) / endpoints stays within the percentage: with
    // Istio's default 10 %, three endpoints eject none.
    let port = Port::new(3, Some(OutlierDetection::default()));
    assert_eq!(port.fail(0, 5, secs(1)), None);
    assert_eq!(port.fail(0, 5, secs(1)), None, "refused again, not stuck");
    assert_eq!(port.usable(secs(1)), port.all());

    let port = Port::new(3, Some(outliers(|o| o.max_ejection_percent = percent(50))));
    assert!(port.fail(0, 5, secs(1)).is_some(), "one of three is 33 %");
    assert_eq!(port.fail(1, 5, secs(1)), None, "two of three would be 67 %");
    assert_eq!(port.usable(secs(1)), port.all_but(0));

    let port = Port::new(10, Some(OutlierDetection::default()));
    assert!(port.fail(0, 5, secs(1)).is_some(), "one of ten is 10 %");
    assert_eq!(port.fail(1, 5, secs(1)), None);
}

#[test]
fn below_min_health_percent_every_endpoint_is_used() {
    let policy = outliers(|outliers| {
        eject_any(outliers);
        outliers.min_health_percent = percent(75);
    });
    let port = Port::new(4, Some(policy));
    assert!(port.fail(0, 5, secs(1)).is_some());
    assert_eq!(
        port.usable(secs(1)),
        port.all_but(0),
        "3 of 4 healthy is 75 %"
    );
    assert!(port.fail(1, 5, secs(1)).is_some());
    assert_eq!(port.usable(secs(1)), port.all(), "2 of 4 is below");
    assert!(
        port.stats(1).ejected_until.is_some(),
        "still ejected, just used"
    );
}

#[test]
fn with_every_endpoint_ejected_all_are_used() {
    let port = Port::new(2, Some(outliers(eject_any)));
    assert!(port.fail(0, 5, secs(1)).is_some());
    assert!(port.fail(1, 5, secs(1)).is_some());
    assert_eq!(port.usable(secs(1)), port.all());
}

#[test]
fn without_outlier_detection_nothing_is_ejected() {
    let port = Port::new(3, None);
    for _ in 0..100 {
        assert_eq!(port.report(0, UNAVAILABLE, secs(1)), None);
    }
    assert_eq!(port.usable(secs(1)), port.all());
    assert_eq!(port.stats(0).times_ejected, 0);
}

#[test]
fn no_load_balancer_picks_an_ejected_endpoint() {
    for load_balancer in [
        LbPolicy::RoundRobin,
        LbPolicy::LeastRequest,
        LbPolicy::Random,
        LbPolicy::PeakEwma,
    ] {
        let mut port = Port::new(4, Some(outliers(|o| o.max_ejection_percent = percent(25))));
        port.policy.load_balancer = load_balancer.clone();
        assert!(port.fail(2, 5, secs(1)).is_some(), "{load_balancer}");
        assert_eq!(port.usable(secs(1)), port.all_but(2), "{load_balancer}");
    }
}

#[test]
fn a_retry_reuses_a_healthy_endpoint_rather_than_an_ejected_one() {
    let port = Port::new(4, Some(outliers(|o| o.max_ejection_percent = percent(50))));
    assert!(port.fail(0, 5, secs(1)).is_some());
    assert!(port.fail(1, 5, secs(1)).is_some());
    for _ in 0..20 {
        let pick = port.pick(secs(1), &port.endpoints[2..]);
        assert!(port.endpoints[2..].contains(&pick.endpoint()));
    }
}

#[test]
fn a_departed_endpoint_is_no_longer_ejected_and_is_forgotten() {
    let mut port = Port::new(4, Some(outliers(|o| o.max_ejection_percent = percent(40))));
    assert!(port.fail(0, 5, secs(1)).is_some());
    assert_eq!(port.fail(1, 5, secs(1)), None, "2 of 4 is over 40 %");
    // A reload removes the ejected one: its ejection no longer counts, 1 of 3 is within 40 %.
    let departed = port.endpoints.remove(0);
    assert_eq!(port.usable(secs(2)), port.all());
    assert!(port.fail(0, 5, secs(2)).is_some());

    // Back after the balancer forgot it: a new endpoint, with nothing counted.
    let later = secs(2) + FORGET_AFTER + SWEEP_EVERY;
    port.usable(later);
    let known = |port: &Port| {
        port.balancers
            .snapshot()
            .iter()
            .any(|s| s.endpoint == departed)
    };
    assert!(!known(&port));
    port.endpoints.insert(0, departed);
    port.usable(later);
    assert_eq!(port.stats(0).times_ejected, 0);
    assert_eq!(port.fail(0, 4, later), None);
    let ejection = port
        .fail(0, 1, later)
        .expect("the other one is back by now");
    assert_eq!(
        ejection.until,
        port.start + secs(110),
        "72 + 30 s, rounded up: a first ejection"
    );
}

#[test]
fn an_endpoint_that_returns_within_the_forget_window_keeps_its_count() {
    let mut port = Port::new(3, Some(outliers(eject_any)));
    assert_eq!(port.fail(0, 3, secs(1)), None);
    let departed = port.endpoints.remove(0);
    port.usable(secs(2));
    port.endpoints.insert(0, departed);
    assert!(port.fail(0, 2, secs(3)).is_some(), "3 + 2 consecutive");
}

#[test]
fn an_interval_change_keeps_the_ticks_already_applied() {
    let port = Port::new(3, Some(outliers(eject_any)));
    assert_eq!(
        port.fail(0, 5, secs(1)).unwrap().until,
        port.start + secs(40)
    );
    let mut port = port;
    let mut policy = port.policy.outlier_detection.unwrap();
    policy.interval = secs(25);
    port.policy.outlier_detection = Some(policy);
    // Ticks so far: 10 s, 20 s (applied by this pick at 21 s); next every 25 s: 45 s, 70 s.
    assert_eq!(port.usable(secs(21)), port.all_but(0));
    assert_eq!(port.usable(secs(44)), port.all_but(0));
    assert_eq!(port.usable(secs(45)), port.all());
}

#[test]
fn idle_keys_catch_up_on_their_ticks_at_once() {
    let port = Port::new(3, Some(outliers(eject_any)));
    assert!(port.fail(0, 5, secs(1)).is_some());
    assert!(port.fail(0, 5, secs(40)).is_some(), "second ejection: 60 s");
    // Hours later: back long ago, and the multiplier has decayed to nothing.
    let later = secs(4 * 3600);
    assert_eq!(port.usable(later), port.all());
    let ejection = port.fail(0, 5, later).unwrap();
    assert_eq!(ejection.until - (port.start + later), secs(30));
}

#[test]
fn absurd_ejection_times_do_not_overflow() {
    let policy = outliers(|outliers| {
        eject_any(outliers);
        outliers.base_ejection_time = Duration::from_secs(u64::MAX / 2);
    });
    let port = Port::new(3, Some(policy));
    let ejection = port.fail(0, 5, secs(1)).unwrap();
    assert!(ejection.until > port.start + secs(3600 * 24 * 365));
    assert_eq!(port.usable(secs(2)), port.all_but(0));
}

#[test]
fn racing_reports_eject_once() {
    let port = Port::new(3, Some(outliers(eject_any)));
    let mut picks: Vec<Pick> = (0..400)
        .map(|_| port.pick(secs(1), &port.endpoints[1..]))
        .collect();
    assert!(picks
        .iter()
        .all(|pick| pick.endpoint() == port.endpoints[0]));
    let at = port.start + secs(1);
    let ejections: usize = std::thread::scope(|scope| {
        let reporters: Vec<_> = picks
            .chunks_mut(100)
            .map(|picks| {
                scope.spawn(move || {
                    let reports = picks.iter_mut().map(|pick| pick.report_at(UNAVAILABLE, at));
                    reports.flatten().count()
                })
            })
            .collect();
        reporters.into_iter().map(|r| r.join().unwrap()).sum()
    });
    assert_eq!(ejections, 1);
    assert_eq!(port.stats(0).times_ejected, 1);
}
