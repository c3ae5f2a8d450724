//! Connection-level (L4) balancing: round robin per Service port, with the cursor surviving
//! config reloads so a reload does not send the next connections to the same pod.

use std::{collections::HashMap, sync::Mutex};

use super::BalanceKey;

#[derive(Default)]
pub struct RoundRobin {
    cursors: Mutex<HashMap<BalanceKey, Rotation>>,
}

impl RoundRobin {
    /// The order in which to try `len` endpoints for the next connection: a rotation starting at
    /// the next endpoint in turn, so a failed connect falls over to the following one.
    pub fn order(&self, key: &BalanceKey, len: usize) -> impl Iterator<Item = usize> {
        let start = if len == 0 {
            0
        } else {
            let mut cursors = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
            cursors.entry(key.clone()).or_default().next(len)
        };
        (0..len).map(move |i| (start + i) % len)
    }
}

/// A round-robin position over an endpoint set that may grow or shrink between turns.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Rotation(usize);

impl Rotation {
    /// The index whose turn it is among `len` (> 0) endpoints.
    pub fn next(&mut self, len: usize) -> usize {
        let index = self.0 % len;
        self.0 = index + 1;
        index
    }

    /// The first of `all`, from the one whose turn it is on, that `takes`; the turn moves past
    /// it. `None` (the turn unmoved) when none does.
    pub fn next_of<T: Copy>(&mut self, all: &[T], takes: impl Fn(&T) -> bool) -> Option<T> {
        let len = all.len();
        let start = self.0 % len.max(1);
        let index = (0..len)
            .map(|i| (start + i) % len)
            .find(|&i| takes(&all[i]))?;
        self.0 = index + 1;
        Some(all[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_over_endpoints_and_falls_over_in_order() {
        let rr = RoundRobin::default();
        let key = ("greeter.default.svc.cluster.local".to_string(), 80);
        let firsts: Vec<usize> = (0..6).map(|_| rr.order(&key, 3).next().unwrap()).collect();
        assert_eq!(firsts, [0, 1, 2, 0, 1, 2]);
        assert_eq!(rr.order(&key, 3).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(rr.order(&key, 3).collect::<Vec<_>>(), [1, 2, 0]);
    }

    #[test]
    fn shrinking_endpoint_set_stays_in_range() {
        let rr = RoundRobin::default();
        let key = ("a".to_string(), 1);
        for _ in 0..5 {
            rr.order(&key, 5).next();
        }
        assert!(rr.order(&key, 2).all(|i| i < 2));
        assert_eq!(rr.order(&key, 0).count(), 0);
    }

    /// A retry that avoids one endpoint takes the next in turn; the turns go on over all, so
    /// the endpoints that answer share evenly.
    #[test]
    fn turns_skip_what_is_not_taken_without_skewing() {
        let mut rotation = Rotation::default();
        let all = ['a', 'b', 'c'];
        let mut answered = std::collections::HashMap::new();
        for _ in 0..300 {
            let mut first = rotation.next_of(&all, |_| true).unwrap();
            if first == 'a' {
                // 'a' fails every call: the retry avoids it.
                first = rotation.next_of(&all, |&e| e != 'a').unwrap();
            }
            *answered.entry(first).or_insert(0) += 1;
        }
        assert_eq!(answered.get(&'a'), None);
        assert_eq!((answered[&'b'], answered[&'c']), (150, 150), "{answered:?}");
        assert_eq!(rotation.next_of(&all, |_| false), None);
        assert_eq!(Rotation::default().next_of(&[] as &[char], |_| true), None);
    }

    #[test]
    fn ports_are_balanced_independently() {
        let rr = RoundRobin::default();
        let (a, b) = (("s".to_string(), 1), ("s".to_string(), 2));
        assert_eq!(rr.order(&a, 2).next(), Some(0));
        assert_eq!(rr.order(&b, 2).next(), Some(0));
        assert_eq!(rr.order(&a, 2).next(), Some(1));
    }
}
