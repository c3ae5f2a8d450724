//! Request latency in Istio's buckets, and the quantile Prometheus' `histogram_quantile` would
//! read from them, so the dashboard's p50/p99 agree with Grafana's.

use super::super::requests::DURATION_BUCKETS_MS;

/// Buckets: Istio's upper bounds, then `+Inf`.
const BUCKETS: usize = DURATION_BUCKETS_MS.len() + 1;

/// Observations per bucket (not cumulative: two histograms merge by adding).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: [u64; BUCKETS],
}

impl LatencyHistogram {
    pub fn observe(&mut self, milliseconds: f64) {
        // Prometheus' buckets are `le`: a value on a bound belongs to that bound's bucket.
        let bucket = DURATION_BUCKETS_MS
            .iter()
            .position(|bound| milliseconds <= *bound)
            .unwrap_or(BUCKETS - 1);
        self.counts[bucket] += 1;
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (count, more) in self.counts.iter_mut().zip(other.counts) {
            *count += more;
        }
    }

    /// The `q` quantile in milliseconds, `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let cumulative: Vec<u64> = self
            .counts
            .iter()
            .scan(0, |sum, count| {
                *sum += count;
                Some(*sum)
            })
            .collect();
        histogram_quantile(q, &DURATION_BUCKETS_MS, &cumulative)
    }
}

/// Prometheus' `histogram_quantile` (promql/quantile.go `bucketQuantile`): `bounds` are the
/// finite upper bounds, `cumulative` the cumulative counts of those buckets followed by `+Inf`'s.
/// Linear interpolation inside the bucket the rank falls in, the lowest bucket starting at 0; a
/// rank in the `+Inf` bucket gives the highest finite bound. `None` when nothing was observed.
pub fn histogram_quantile(q: f64, bounds: &[f64], cumulative: &[u64]) -> Option<f64> {
    debug_assert_eq!(cumulative.len(), bounds.len() + 1);
    let total = *cumulative.last()?;
    if total == 0 || q.is_nan() {
        return None;
    }
    if q < 0.0 {
        return Some(f64::NEG_INFINITY);
    }
    if q > 1.0 {
        return Some(f64::INFINITY);
    }
    let rank = q * total as f64;
    let bucket = cumulative[..bounds.len()]
        .iter()
        .position(|count| *count as f64 >= rank);
    let Some(bucket) = bucket else {
        return bounds.last().copied();
    };
    let end = bounds[bucket];
    if bucket == 0 && end <= 0.0 {
        return Some(end);
    }
    let (start, below) = match bucket {
        0 => (0.0, 0),
        _ => (bounds[bucket - 1], cumulative[bucket - 1]),
    };
    let in_bucket = (cumulative[bucket] - below) as f64;
    Some(start + (end - start) * ((rank - below as f64) / in_bucket))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten requests: four in (1, 5] ms, six in (5, 10] ms.
    fn four_fast_six_slower() -> LatencyHistogram {
        let mut histogram = LatencyHistogram::default();
        for ms in [2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 9.5, 10.0] {
            histogram.observe(ms);
        }
        histogram
    }

    fn assert_close(actual: Option<f64>, expected: f64) {
        let actual = actual.expect("a quantile");
        assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
    }

    #[test]
    fn interpolates_inside_the_bucket_the_rank_falls_in() {
        let histogram = four_fast_six_slower();
        // p50: rank 5 is the first of six in (5, 10]: 5 + 5 * (5 - 4) / 6.
        assert_close(histogram.quantile(0.5), 5.0 + 5.0 / 6.0);
        // p99: rank 9.9: 5 + 5 * (9.9 - 4) / 6.
        assert_close(histogram.quantile(0.99), 5.0 + 5.0 * 5.9 / 6.0);
        // p40: rank 4 is exactly the count up to 5 ms: the bucket (1, 5] ends there.
        assert_close(histogram.quantile(0.4), 5.0);
        // p10: rank 1 of four in (1, 5]: 1 + 4 * 1 / 4.
        assert_close(histogram.quantile(0.1), 2.0);
    }

    #[test]
    fn the_lowest_bucket_starts_at_zero() {
        let mut histogram = LatencyHistogram::default();
        histogram.observe(0.1);
        histogram.observe(0.5);
        // Two in [0, 0.5]: p50 is rank 1 of 2, halfway.
        assert_close(histogram.quantile(0.5), 0.25);
    }

    #[test]
    fn a_rank_past_every_finite_bound_gives_the_highest_bound() {
        let mut histogram = LatencyHistogram::default();
        histogram.observe(1.0);
        histogram.observe(7_200_000.0);
        assert_close(histogram.quantile(0.99), 3_600_000.0);
    }

    #[test]
    fn merged_histograms_add_their_counts() {
        let mut merged = LatencyHistogram::default();
        merged.merge(&four_fast_six_slower());
        merged.merge(&four_fast_six_slower());
        // Twenty: eight up to 5 ms, then twelve in (5, 10]; p50 rank 10: 5 + 5 * 2 / 12.
        assert_close(merged.quantile(0.5), 5.0 + 5.0 * 2.0 / 12.0);
    }

    #[test]
    fn nothing_observed_has_no_quantile() {
        assert_eq!(LatencyHistogram::default().quantile(0.5), None);
    }
}
