//! A share of requests, as Envoy draws it for faults and mirrors.

use std::fmt;

use crate::config::resources::{IntPercent, Percent};

/// A share of requests in millionths: Envoy's `FractionalPercent` over a million, which Istio
/// makes of a `Percent` (its value × 10 000, truncated) and of the deprecated integer percents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percentage(u32);

impl Percentage {
    /// The denominator: draws are taken modulo this.
    pub const MILLION: u32 = 1_000_000;
    pub const ALWAYS: Self = Self(Self::MILLION);
    pub const NEVER: Self = Self(0);

    pub fn per_million(self) -> u32 {
        self.0
    }

    pub fn is_never(self) -> bool {
        self.0 == 0
    }

    /// Whether the request that drew `draw` (any `u32`, uniformly random; taken modulo a
    /// million) is in the share.
    pub fn admits(self, draw: u32) -> bool {
        draw % Self::MILLION < self.0
    }
}

/// As a percent: `100%`, `50%`, `0.1%`.
impl fmt::Display for Percentage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let percent = f64::from(self.0) / f64::from(Self::MILLION) * 100.0;
        write!(f, "{percent}%")
    }
}

impl From<Percent> for Percentage {
    fn from(percent: Percent) -> Self {
        // The decoded value is within 0..=100, so this stays within 0..=MILLION; `as` truncates
        // as Istio's `uint32(p.Value * 10000)` does.
        Self((percent.get() * 10_000.0) as u32)
    }
}

impl From<IntPercent> for Percentage {
    fn from(percent: IntPercent) -> Self {
        Self(u32::from(percent.get()) * 10_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_below_the_share_are_admitted() {
        let tenth: Percentage = serde_yaml::from_str::<Percent>("{value: 0.1}")
            .unwrap()
            .into();
        assert_eq!(tenth.per_million(), 1_000);
        assert!(tenth.admits(999));
        assert!(!tenth.admits(1_000));
        assert!(tenth.admits(Percentage::MILLION + 5), "modulo a million");
        assert!(Percentage::ALWAYS.admits(u32::MAX));
        assert!(!Percentage::NEVER.admits(0));
        let half = Percentage::from(IntPercent::new(50).unwrap());
        assert_eq!(half.per_million(), 500_000);
    }
}
