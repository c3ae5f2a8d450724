//! Field values that are checked as they are decoded, so a resource that decodes cannot hold
//! them wrong: the error names the field, like any other wrong type.

use std::{fmt, net::IpAddr, num::NonZeroU16, str::FromStr, time::SystemTime};

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
    fn timestamps_order() {
        let old = from_yaml::<Timestamp>("2024-01-01T00:00:00Z").unwrap();
        let new = from_yaml::<Timestamp>("2024-01-01T00:00:01Z").unwrap();
        assert!(old < new);
        assert!(from_yaml::<Timestamp>("yesterday").is_err());
    }
}
