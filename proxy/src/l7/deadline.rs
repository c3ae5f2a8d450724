//! When a request must be answered by: the route's `timeout` and the client's `grpc-timeout`,
//! whichever ends first (Istio lets the header shorten the route's timeout, as Envoy's
//! `grpc_timeout_header_max: 0` does). Each try tells the endpoint how long it has left by
//! sending `grpc-timeout` again, so the deadline is propagated, not only enforced.

use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use tokio::time::Instant;

pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// The instant a request's answer is due, if any.
pub fn deadline(
    started: Instant,
    route_timeout: Option<Duration>,
    headers: &HeaderMap,
) -> Option<Instant> {
    let header = headers
        .get(GRPC_TIMEOUT)
        .and_then(|value| parse_grpc_timeout(value.as_bytes()));
    let timeout = match (route_timeout, header) {
        (Some(route), Some(header)) => route.min(header),
        (route, header) => route.or(header)?,
    };
    Some(started + timeout)
}

/// `grpc-timeout`: at most 8 ASCII digits and a unit (H, M, S, m, u, n), per the gRPC over
/// HTTP/2 spec. Anything else is ignored, as gRPC servers ignore it.
pub fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// In the finest unit that fits in 8 digits, rounded up as grpc-go does (the endpoint may get
/// less than one unit more than is left; zero would mean already expired).
pub fn format_grpc_timeout(timeout: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    let nanos = timeout.as_nanos();
    let (amount, unit) = units
        .iter()
        .map(|&(size, unit)| (nanos.div_ceil(size), unit))
        .find(|&(amount, _)| amount <= MAX)
        .unwrap_or((MAX, 'H'));
    HeaderValue::try_from(format!("{amount}{unit}")).expect("digits and a letter")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_rejects_the_malformed() {
        assert_eq!(parse_grpc_timeout(b"2S"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_grpc_timeout(b"1500m"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_grpc_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout(b"3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout(b"7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout(b"9n"), Some(Duration::from_nanos(9)));
        for bad in [&b""[..], b"S", b"123456789S", b"12x", b"-1S", b"1.5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formats_in_the_finest_unit_that_fits() {
        assert_eq!(format_grpc_timeout(Duration::from_millis(1500)), "1500000u");
        assert_eq!(format_grpc_timeout(Duration::from_secs(200)), "200000m");
        assert_eq!(format_grpc_timeout(Duration::from_nanos(1)), "1n");
        let round_trip = parse_grpc_timeout(format_grpc_timeout(Duration::from_secs(7)).as_bytes());
        assert_eq!(round_trip, Some(Duration::from_secs(7)));
    }

    #[test]
    fn the_earlier_of_route_timeout_and_header_wins() {
        let now = Instant::now();
        let mut headers = HeaderMap::new();
        assert_eq!(deadline(now, None, &headers), None);
        assert_eq!(
            deadline(now, Some(Duration::from_secs(5)), &headers),
            Some(now + Duration::from_secs(5))
        );
        headers.insert(GRPC_TIMEOUT, HeaderValue::from_static("2S"));
        assert_eq!(
            deadline(now, Some(Duration::from_secs(5)), &headers),
            Some(now + Duration::from_secs(2))
        );
        assert_eq!(
            deadline(now, Some(Duration::from_secs(1)), &headers),
            Some(now + Duration::from_secs(1))
        );
    }
}
