//! The choice itself, apart from any state: which endpoints may be chosen, and power of two
//! choices among them.

use std::{borrow::Cow, net::SocketAddr};

use fastrand::Rng;

/// The endpoints a request may go to: those not in `avoid`, or all of them when that leaves
/// none (a retry had rather reuse an endpoint than fail).
pub(super) fn candidates<'a>(
    endpoints: &'a [SocketAddr],
    avoid: &[SocketAddr],
) -> Cow<'a, [SocketAddr]> {
    // First attempts avoid nothing: neither a scan nor an allocation on the common path.
    if avoid.is_empty() || !endpoints.iter().any(|endpoint| avoid.contains(endpoint)) {
        return Cow::Borrowed(endpoints);
    }
    let others: Vec<SocketAddr> = endpoints
        .iter()
        .copied()
        .filter(|endpoint| !avoid.contains(endpoint))
        .collect();
    if others.is_empty() {
        Cow::Borrowed(endpoints)
    } else {
        Cow::Owned(others)
    }
}

/// Power of two choices among `len` (> 0) candidates: two distinct ones drawn at random, the
/// cheaper wins, the first drawn on a tie. Unlike the global minimum, this does not herd every
/// concurrent request onto the one endpoint that looked cheapest a moment ago, and it costs two
/// lookups whatever the number of endpoints.
pub(super) fn power_of_two(len: usize, rng: &mut Rng, mut cost: impl FnMut(usize) -> f64) -> usize {
    if len == 1 {
        return 0;
    }
    let first = rng.usize(..len);
    // Uniform over the other len - 1.
    let second = (first + 1 + rng.usize(..len - 1)) % len;
    if cost(second) < cost(first) {
        second
    } else {
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(ports: &[u16]) -> Vec<SocketAddr> {
        ports
            .iter()
            .map(|port| SocketAddr::from(([10, 0, 0, 1], *port)))
            .collect()
    }

    #[test]
    fn candidates_leave_out_avoided_endpoints_unless_none_would_be_left() {
        let all = addrs(&[1, 2, 3]);
        assert!(matches!(candidates(&all, &[]), Cow::Borrowed(_)));
        assert!(matches!(candidates(&all, &addrs(&[9])), Cow::Borrowed(_)));
        assert_eq!(*candidates(&all, &addrs(&[2])), addrs(&[1, 3]));
        assert_eq!(*candidates(&all, &addrs(&[1, 2, 3])), all);
        assert!(candidates(&[], &addrs(&[1])).is_empty());
    }

    #[test]
    fn never_picks_the_costlier_of_the_two_drawn() {
        let costs = [5.0, 1.0, 3.0, 3.0, 8.0, 0.5, 2.0];
        let mut rng = Rng::with_seed(7);
        let mut chosen = [0usize; 7];
        for _ in 0..10_000 {
            let mut drawn = Vec::new();
            let pick = power_of_two(costs.len(), &mut rng, |i| {
                drawn.push(i);
                costs[i]
            });
            assert_eq!(drawn.len(), 2);
            assert_ne!(drawn[0], drawn[1], "two distinct candidates");
            assert!(drawn.contains(&pick));
            let other = if drawn[0] == pick { drawn[1] } else { drawn[0] };
            assert!(costs[pick] <= costs[other], "{pick} over {other}");
            chosen[pick] += 1;
        }
        // The costliest is never chosen; the cheapest wins every draw it is in (2/7 of them).
        assert_eq!(chosen[4], 0);
        assert!((2600..3100).contains(&chosen[5]), "{chosen:?}");
    }

    #[test]
    fn one_candidate_needs_no_draw() {
        let mut rng = Rng::with_seed(1);
        assert_eq!(power_of_two(1, &mut rng, |_| unreachable!()), 0);
    }
}
