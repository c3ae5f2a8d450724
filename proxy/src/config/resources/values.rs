//! Field values that are checked as they are decoded, so a resource that decodes cannot hold
//! them wrong: the error names the field, like any other wrong type.

use std::{
    fmt,
    net::IpAddr,
    num::{NonZeroU16, NonZeroU32},
    str::FromStr,
    time::{Duration, SystemTime},
};

use serde::{
    de::{self, Unexpected, Visitor},
    Deserialize, Deserializer,
};

const PORT_RANGE: &str = "a port number from 1 to 65535";

/// A TCP/UDP port number: 1 to 65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortNumber(NonZeroU16);

impl PortNumber {
    pub fn new(port: u16) -> Option<Self> {
        NonZeroU16::new(port).map(Self)
    }

    pub fn get(self) -> u16 {
        self.0.get()
    }

    fn from_int<E: de::Error>(value: i64) -> Result<Self, E> {
        u16::try_from(value)
            .ok()
            .and_then(Self::new)
            .ok_or_else(|| E::invalid_value(Unexpected::Signed(value), &PORT_RANGE))
    }
}

impl fmt::Display for PortNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for PortNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::from_int(i64::deserialize(deserializer)?)
    }
}

/// A Service port's `targetPort`: Kubernetes' IntOrString.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TargetPort {
    Number(PortNumber),
    /// A container port name (Pods) or a `spec.ports` key (WorkloadEntries).
    Name(String),
}

impl fmt::Display for TargetPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(number) => number.fmt(f),
            Self::Name(name) => f.write_str(name),
        }
    }
}

impl<'de> Deserialize<'de> for TargetPort {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TargetPortVisitor;

        impl Visitor<'_> for TargetPortVisitor {
            type Value = TargetPort;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number or a port name")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<TargetPort, E> {
                PortNumber::from_int(value).map(TargetPort::Number)
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<TargetPort, E> {
                match i64::try_from(value) {
                    Ok(value) => self.visit_i64(value),
                    Err(_) => Err(E::invalid_value(Unexpected::Unsigned(value), &PORT_RANGE)),
                }
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<TargetPort, E> {
                // Kubernetes rejects a quoted number: a name must hold a letter.
                if value.is_empty() || value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(E::invalid_value(
                        Unexpected::Str(value),
                        &"a port number (unquoted) or a port name",
                    ));
                }
                Ok(TargetPort::Name(value.to_owned()))
            }
        }

        deserializer.deserialize_any(TargetPortVisitor)
    }
}

/// `spec.clusterIP` and each of `spec.clusterIPs`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ClusterIp {
    /// Empty or absent: the API server would assign one; a file has none, so name-only.
    #[default]
    Unassigned,
    /// `None`: a headless Service, reached by name only.
    Headless,
    Ip(IpAddr),
}

impl ClusterIp {
    pub fn ip(self) -> Option<IpAddr> {
        match self {
            Self::Ip(ip) => Some(ip),
            Self::Unassigned | Self::Headless => None,
        }
    }
}

impl<'de> Deserialize<'de> for ClusterIp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "" => Ok(Self::Unassigned),
            "None" => Ok(Self::Headless),
            ip => IpAddr::from_str(ip).map(Self::Ip).map_err(|_| {
                de::Error::invalid_value(Unexpected::Str(ip), &"an IP address, \"None\" or \"\"")
            }),
        }
    }
}

/// `metadata.creationTimestamp`, as the API server writes it (RFC 3339, UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub SystemTime);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_rfc3339(&text).map(Self).map_err(|_| {
            de::Error::invalid_value(
                Unexpected::Str(&text),
                &"an RFC 3339 UTC time like 2024-01-31T12:00:00Z",
            )
        })
    }
}

/// An Istio duration (`10s`, `1.5s`, `100ms`, `1h30m`): Go's `time.ParseDuration` syntax, at
/// least 1 ms and in whole milliseconds, as Istio's validation requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IstioDuration(Duration);

impl IstioDuration {
    const EXPECTED: &str =
        "a duration like 10s, 1.5s or 100ms, at least 1ms, in whole milliseconds";
    /// Go's units; humantime also reads days, months and years, which Istio refuses.
    const UNITS: &[&str] = &["ns", "us", "µs", "ms", "s", "m", "h"];

    pub fn get(self) -> Duration {
        self.0
    }

    fn parse(text: &str) -> Option<Self> {
        Self::in_range(go_duration(text)?)
    }

    fn in_range(duration: Duration) -> Option<Self> {
        let whole_ms = duration.subsec_nanos().is_multiple_of(1_000_000);
        (duration >= Duration::from_millis(1) && whole_ms).then_some(Self(duration))
    }
}

/// Go's `time.ParseDuration` syntax (`0` needs no unit), non-negative.
fn go_duration(text: &str) -> Option<Duration> {
    let units_ok = text
        .split(|c: char| c.is_ascii_digit() || c == '.')
        .filter(|unit| !unit.is_empty())
        .all(|unit| IstioDuration::UNITS.contains(&unit));
    humantime::parse_duration(text).ok().filter(|_| units_ok)
}

impl<'de> Deserialize<'de> for IstioDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text)
            .ok_or_else(|| de::Error::invalid_value(Unexpected::Str(&text), &Self::EXPECTED))
    }
}

/// An HTTP route's `timeout`: an [`IstioDuration`], or zero, which Envoy reads as no timeout.
/// Istio's validation refuses zero (it is below 1 ms); strait reads it as Envoy would, and
/// validation warns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteTimeout {
    Zero,
    After(IstioDuration),
}

impl RouteTimeout {
    /// `None`: no timeout.
    pub fn get(self) -> Option<Duration> {
        match self {
            Self::Zero => None,
            Self::After(duration) => Some(duration.get()),
        }
    }
}

impl<'de> Deserialize<'de> for RouteTimeout {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let timeout = go_duration(&text).and_then(|duration| match duration.is_zero() {
            true => Some(Self::Zero),
            false => IstioDuration::in_range(duration).map(Self::After),
        });
        timeout.ok_or_else(|| {
            de::Error::invalid_value(
                Unexpected::Str(&text),
                &"a duration like 10s, 1.5s or 100ms in whole milliseconds, or 0s for none",
            )
        })
    }
}

/// A StringMatch `regex`: RE2 syntax (the `regex` crate's, which follows RE2), matching the
/// whole value as Envoy's `safe_regex` does. Compiled when decoded, so a bad pattern is a
/// decode error naming its field, as Istio rejects the resource.
#[derive(Clone, Debug)]
pub struct MatchRegex {
    /// As written.
    pattern: String,
    /// Anchored at both ends.
    regex: regex::bytes::Regex,
}

impl MatchRegex {
    pub fn new(pattern: &str) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err("a regex must not be empty".to_owned());
        }
        let regex = regex::bytes::Regex::new(&format!(r"\A(?:{pattern})\z"))
            .map_err(|err| format!("{pattern:?} is not a valid RE2 regex: {}", last_line(&err)))?;
        Ok(Self {
            pattern: pattern.to_owned(),
            regex,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the whole of `value` matches.
    pub fn is_match(&self, value: &[u8]) -> bool {
        self.regex.is_match(value)
    }
}

/// The `regex` crate's errors span lines (pattern, caret, reason): diagnostics are one line,
/// and the reason is the last.
fn last_line(err: &regex::Error) -> String {
    let text = err.to_string();
    let last = text.lines().last().unwrap_or_default().trim();
    last.strip_prefix("error: ").unwrap_or(last).to_owned()
}

impl PartialEq for MatchRegex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl<'de> Deserialize<'de> for MatchRegex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::new(&text).map_err(de::Error::custom)
    }
}

/// An Istio connection pool count (an `int32` that must not be negative), where 0 means "not
/// set": Istio then applies its default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolLimit(Option<NonZeroU32>);

impl PoolLimit {
    /// `None` when 0 (not set).
    pub fn get(self) -> Option<NonZeroU32> {
        self.0
    }
}

impl<'de> Deserialize<'de> for PoolLimit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = i64::deserialize(deserializer)?;
        i32::try_from(value)
            .ok()
            .and_then(|value| u32::try_from(value).ok())
            .map(|value| Self(NonZeroU32::new(value)))
            .ok_or_else(|| {
                de::Error::invalid_value(
                    Unexpected::Signed(value),
                    &"a non-negative integer up to 2147483647",
                )
            })
    }
}

/// A whole percentage, 0 to 100.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IntPercent(u8);

impl IntPercent {
    pub const fn new(percent: u8) -> Option<Self> {
        if percent <= 100 {
            Some(Self(percent))
        } else {
            None
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for IntPercent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

impl<'de> Deserialize<'de> for IntPercent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = i64::deserialize(deserializer)?;
        u8::try_from(value).ok().and_then(Self::new).ok_or_else(|| {
            de::Error::invalid_value(Unexpected::Signed(value), &"a percentage from 0 to 100")
        })
    }
}

/// Istio's `Percent` message (`{value: 12.5}`): 0 to 100, fractions allowed. An absent
/// `value` is 0, as in Istio's proto.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Deserialize)]
#[serde(try_from = "PercentFields")]
pub struct Percent(f64);

impl Percent {
    pub fn get(self) -> f64 {
        self.0
    }
}

#[derive(Deserialize)]
struct PercentFields {
    #[serde(default)]
    value: f64,
}

impl TryFrom<PercentFields> for Percent {
    type Error = String;

    fn try_from(fields: PercentFields) -> Result<Self, Self::Error> {
        let value = fields.value;
        // The range check is false for NaN too.
        if (0.0..=100.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(format!("value {value} is not a percentage from 0 to 100"))
        }
    }
}

/// A fault abort's `httpStatus`: 200 to 599, as Istio's validation requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HttpStatus(http::StatusCode);

impl HttpStatus {
    pub fn get(self) -> http::StatusCode {
        self.0
    }
}

impl<'de> Deserialize<'de> for HttpStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = i64::deserialize(deserializer)?;
        u16::try_from(value)
            .ok()
            .filter(|code| (200..600).contains(code))
            .and_then(|code| http::StatusCode::from_u16(code).ok())
            .map(Self)
            .ok_or_else(|| {
                de::Error::invalid_value(
                    Unexpected::Signed(value),
                    &"an HTTP status from 200 to 599",
                )
            })
    }
}

/// A gRPC status by its name in gRPC's `statuscodes.md` (`UNAVAILABLE`, `NOT_FOUND`...), as a
/// fault abort's `grpcStatus` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GrpcStatus(u16);

impl GrpcStatus {
    /// Every status gRPC defines, by code: the names Istio accepts.
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];

    pub fn from_name(name: &str) -> Option<Self> {
        let code = Self::NAMES.iter().position(|&known| known == name)?;
        u16::try_from(code).ok().map(Self)
    }

    /// A status gRPC defines.
    pub fn from_code(code: u16) -> Option<Self> {
        (usize::from(code) < Self::NAMES.len()).then_some(Self(code))
    }

    /// The status code, as sent in `grpc-status`.
    pub fn code(self) -> u16 {
        self.0
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[usize::from(self.0)]
    }
}

impl<'de> Deserialize<'de> for GrpcStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_name(&text).ok_or_else(|| {
            de::Error::invalid_value(
                Unexpected::Str(&text),
                &"a gRPC status name such as UNAVAILABLE or NOT_FOUND, in capitals",
            )
        })
    }
}

/// A `uriRegexRewrite.match`: RE2 syntax, found anywhere in the path (not anchored, unlike
/// [`MatchRegex`]), as Envoy's `regex_rewrite` reads it.
#[derive(Clone, Debug)]
pub struct RewriteRegex(regex::Regex);

impl RewriteRegex {
    pub fn new(pattern: &str) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err("a regex must not be empty".to_owned());
        }
        regex::Regex::new(pattern)
            .map(Self)
            .map_err(|err| format!("{pattern:?} is not a valid RE2 regex: {}", last_line(&err)))
    }

    pub fn get(&self) -> &regex::Regex {
        &self.0
    }
}

impl PartialEq for RewriteRegex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl<'de> Deserialize<'de> for RewriteRegex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::new(&text).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_yaml<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, String> {
        serde_yaml::from_str(text).map_err(|err| err.to_string())
    }

    #[test]
    fn port_numbers() {
        assert_eq!(from_yaml::<PortNumber>("8080").unwrap().get(), 8080);
        for bad in ["0", "65536", "-1"] {
            let err = from_yaml::<PortNumber>(bad).unwrap_err();
            assert!(
                err.contains("expected a port number from 1 to 65535"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn target_ports() {
        assert_eq!(
            from_yaml::<TargetPort>("50051").unwrap(),
            TargetPort::Number(PortNumber::new(50051).unwrap())
        );
        assert_eq!(
            from_yaml::<TargetPort>("grpc").unwrap(),
            TargetPort::Name("grpc".into())
        );
        assert!(from_yaml::<TargetPort>("\"8080\"")
            .unwrap_err()
            .contains("unquoted"));
        assert!(from_yaml::<TargetPort>("70000").is_err());
    }

    #[test]
    fn cluster_ips() {
        assert_eq!(from_yaml::<ClusterIp>("None").unwrap(), ClusterIp::Headless);
        assert_eq!(
            from_yaml::<ClusterIp>("\"\"").unwrap(),
            ClusterIp::Unassigned
        );
        assert_eq!(
            from_yaml::<ClusterIp>("10.96.0.10").unwrap().ip(),
            Some("10.96.0.10".parse().unwrap())
        );
        assert_eq!(
            from_yaml::<ClusterIp>("fd00::a").unwrap().ip(),
            Some("fd00::a".parse().unwrap())
        );
        assert!(from_yaml::<ClusterIp>("10.96.0").is_err());
    }

    #[test]
    fn istio_durations() {
        let parse = |text: &str| from_yaml::<IstioDuration>(text).map(IstioDuration::get);
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1ms"), Ok(Duration::from_millis(1)));
        for bad in [
            "500us", "1.0005s", "0s", "10", "1d", "1 h", "soon", "-1s", "5",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("expected a duration like 10s"), "{bad}: {err}");
        }
    }

    #[test]
    fn route_timeouts_take_zero_for_none() {
        let parse = |text: &str| from_yaml::<RouteTimeout>(text).map(RouteTimeout::get);
        assert_eq!(parse("2s"), Ok(Some(Duration::from_secs(2))));
        assert_eq!(parse("500ms"), Ok(Some(Duration::from_millis(500))));
        assert_eq!(parse("1m"), Ok(Some(Duration::from_secs(60))));
        assert_eq!(parse("0s"), Ok(None));
        assert_eq!(parse("0"), Ok(None));
        for bad in ["500us", "-1s", "5", "1d", "soon"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("or 0s for none"), "{bad}: {err}");
        }
    }

    #[test]
    fn match_regexes_are_whole_value_and_one_line_errors() {
        let regex = from_yaml::<MatchRegex>("'/helloworld\\.Greeter/.*'").unwrap();
        assert_eq!(regex.as_str(), "/helloworld\\.Greeter/.*");
        assert!(regex.is_match(b"/helloworld.Greeter/SayHello"));
        assert!(!regex.is_match(b"/x/helloworld.Greeter/SayHello"));
        let alternation = MatchRegex::new("a|b").unwrap();
        assert!(alternation.is_match(b"b"));
        assert!(
            !alternation.is_match(b"ab"),
            "anchoring wraps the whole pattern"
        );
        let err = from_yaml::<MatchRegex>("'(unclosed'").unwrap_err();
        assert!(
            err.contains("\"(unclosed\" is not a valid RE2 regex: unclosed group"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        assert!(from_yaml::<MatchRegex>("''")
            .unwrap_err()
            .contains("must not be empty"));
    }

    #[test]
    fn pool_limits() {
        let parse = |text: &str| from_yaml::<PoolLimit>(text).map(|l| l.get().map(|n| n.get()));
        assert_eq!(parse("100"), Ok(Some(100)));
        assert_eq!(parse("0"), Ok(None), "0 is not set");
        assert_eq!(parse("2147483647"), Ok(Some(i32::MAX as u32)));
        for bad in ["-1", "2147483648"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("a non-negative integer"), "{bad}: {err}");
        }
    }

    #[test]
    fn int_percents() {
        assert_eq!(from_yaml::<IntPercent>("100").unwrap().get(), 100);
        assert_eq!(from_yaml::<IntPercent>("0").unwrap().to_string(), "0%");
        for bad in ["101", "-1", "300"] {
            let err = from_yaml::<IntPercent>(bad).unwrap_err();
            assert!(err.contains("a percentage from 0 to 100"), "{bad}: {err}");
        }
    }

    #[test]
    fn timestamps_order() {
        let old = from_yaml::<Timestamp>("2024-01-01T00:00:00Z").unwrap();
        let new = from_yaml::<Timestamp>("2024-01-01T00:00:01Z").unwrap();
        assert!(old < new);
        assert!(from_yaml::<Timestamp>("yesterday").is_err());
    }
}
