//! Port classification (DESIGN.md): what a Service port speaks decides whether strait proxies it
//! per request (L7) or as an opaque byte stream. `appProtocol` wins, then the port name's
//! `<protocol>[-<suffix>]` prefix, as in Istio; anything else is opaque TCP.

use std::fmt;

/// What strait does with a Service port's traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Grpc,
    GrpcWeb,
    Http2,
    Http,
    /// Opaque TCP.
    Tcp,
    /// TLS strait cannot look into: proxied as TCP.
    Tls,
}

impl Protocol {
    /// Whether strait handles the port per request rather than per connection.
    pub fn is_l7(self) -> bool {
        matches!(self, Self::Grpc | Self::GrpcWeb | Self::Http2 | Self::Http)
    }

    /// Whether clients speak only HTTP/2 with prior knowledge on the port (gRPC): its
    /// connections go straight to the HTTP/2 server. On the other L7 ports a client may speak
    /// HTTP/1.x or HTTP/2, told apart by its first bytes.
    pub fn is_http2_only(self) -> bool {
        matches!(self, Self::Grpc)
    }

    /// Whether endpoints get HTTP/2 whatever the client speaks: Istio's `IsHTTP2()` ports
    /// (gRPC, gRPC-Web, HTTP/2). On `http` ports the DestinationRule's `h2UpgradePolicy`
    /// decides.
    pub fn is_http2_upstream(self) -> bool {
        matches!(self, Self::Grpc | Self::GrpcWeb | Self::Http2)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::GrpcWeb => "grpc-web",
            Self::Http2 => "http2",
            Self::Http => "http",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which field decided, with the value it had, for `strait describe` and logs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClassifiedBy {
    AppProtocol(String),
    PortName(String),
    /// Neither field names a protocol strait knows.
    Default,
}

impl fmt::Display for ClassifiedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AppProtocol(value) => write!(f, "appProtocol {value}"),
            Self::PortName(name) => write!(f, "port name {name}"),
            Self::Default => f.write_str("no recognised appProtocol or port name"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Classification {
    pub protocol: Protocol,
    pub reason: ClassifiedBy,
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (by {})", self.protocol, self.reason)
    }
}

/// Classifies a Service port from its `appProtocol` and `name`.
///
/// An `appProtocol` strait does not know (a vendor's `example.com/foo`) falls through to the
/// port name rather than forcing TCP, as Istio does.
pub fn classify(app_protocol: Option<&str>, port_name: Option<&str>) -> Classification {
    if let Some(value) = app_protocol {
        if let Some(protocol) = app_protocol_named(value) {
            return Classification {
                protocol,
                reason: ClassifiedBy::AppProtocol(value.to_owned()),
            };
        }
    }
    if let Some(name) = port_name {
        if let Some(protocol) = port_name_protocol(name) {
            return Classification {
                protocol,
                reason: ClassifiedBy::PortName(name.to_owned()),
            };
        }
    }
    Classification {
        protocol: Protocol::Tcp,
        reason: ClassifiedBy::Default,
    }
}

/// `appProtocol` values: the protocol names, plus Kubernetes' standard `kubernetes.io/*` ones.
fn app_protocol_named(value: &str) -> Option<Protocol> {
    let lower = value.to_ascii_lowercase();
    match lower.as_str() {
        "kubernetes.io/h2c" => Some(Protocol::Http2),
        // WebSocket starts as HTTP/1.1; wss is TLS strait cannot see into.
        "kubernetes.io/ws" => Some(Protocol::Http),
        "kubernetes.io/wss" => Some(Protocol::Tls),
        other => protocol_named(other),
    }
}

/// Istio's `<protocol>[-<suffix>]`: the longest prefix ending at a `-` wins, so `grpc-web-ui` is
/// gRPC-Web and `grpc-api` is gRPC.
fn port_name_protocol(name: &str) -> Option<Protocol> {
    let lower = name.to_ascii_lowercase();
    std::iter::once(lower.as_str())
        .chain(lower.rmatch_indices('-').map(|(end, _)| &lower[..end]))
        .find_map(protocol_named)
}

/// Protocol names, lower case, as Istio spells them.
fn protocol_named(name: &str) -> Option<Protocol> {
    Some(match name {
        "grpc" => Protocol::Grpc,
        "grpc-web" => Protocol::GrpcWeb,
        "http2" | "h2c" => Protocol::Http2,
        "http" => Protocol::Http,
        "https" | "tls" => Protocol::Tls,
        // Protocols Istio knows by name but only proxies as TCP.
        "tcp" | "mongo" | "mysql" | "redis" => Protocol::Tcp,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protocol(app_protocol: Option<&str>, name: Option<&str>) -> Protocol {
        classify(app_protocol, name).protocol
    }

    #[test]
    fn app_protocol_values() {
        let table = [
            ("grpc", Protocol::Grpc),
            ("grpc-web", Protocol::GrpcWeb),
            ("kubernetes.io/h2c", Protocol::Http2),
            ("h2c", Protocol::Http2),
            ("http2", Protocol::Http2),
            ("HTTP", Protocol::Http),
            ("kubernetes.io/ws", Protocol::Http),
            ("kubernetes.io/wss", Protocol::Tls),
            ("https", Protocol::Tls),
            ("tls", Protocol::Tls),
            ("tcp", Protocol::Tcp),
            ("mysql", Protocol::Tcp),
        ];
        for (value, expected) in table {
            // The port name says otherwise: appProtocol must win.
            let got = classify(Some(value), Some("http-other"));
            assert_eq!(got.protocol, expected, "appProtocol {value}");
            assert_eq!(got.reason, ClassifiedBy::AppProtocol(value.to_owned()));
        }
    }

    #[test]
    fn port_name_prefixes() {
        let table = [
            ("grpc", Protocol::Grpc),
            ("grpc-api", Protocol::Grpc),
            ("grpc-web", Protocol::GrpcWeb),
            ("grpc-web-ui", Protocol::GrpcWeb),
            ("http2", Protocol::Http2),
            ("http2-web", Protocol::Http2),
            ("http", Protocol::Http),
            ("http-metrics", Protocol::Http),
            ("HTTP-Upper", Protocol::Http),
            ("https-admin", Protocol::Tls),
            ("tls", Protocol::Tls),
            ("tls-db", Protocol::Tls),
            ("tcp", Protocol::Tcp),
            ("tcp-raw-thing", Protocol::Tcp),
        ];
        for (name, expected) in table {
            let got = classify(None, Some(name));
            assert_eq!(got.protocol, expected, "port name {name}");
            assert_eq!(got.reason, ClassifiedBy::PortName(name.to_owned()));
        }
    }

    #[test]
    fn anything_else_is_opaque_tcp() {
        for name in ["grpcx", "web", "httpx-foo", "my-grpc", ""] {
            let got = classify(None, Some(name));
            assert_eq!(
                got,
                Classification {
                    protocol: Protocol::Tcp,
                    reason: ClassifiedBy::Default
                },
                "{name}"
            );
        }
        assert_eq!(protocol(None, None), Protocol::Tcp);
    }

    #[test]
    fn unknown_app_protocol_falls_through_to_the_name() {
        let got = classify(Some("example.com/custom"), Some("grpc-api"));
        assert_eq!(got.protocol, Protocol::Grpc);
        assert_eq!(got.reason, ClassifiedBy::PortName("grpc-api".into()));
        assert_eq!(protocol(Some("example.com/custom"), None), Protocol::Tcp);
    }

    #[test]
    fn l7_and_display() {
        assert!(Protocol::Grpc.is_l7() && Protocol::Http.is_l7() && Protocol::Http2.is_l7());
        assert!(!Protocol::Tcp.is_l7() && !Protocol::Tls.is_l7());
        assert!(Protocol::Grpc.is_http2_only() && !Protocol::Http2.is_http2_only());
        assert!(Protocol::GrpcWeb.is_http2_upstream() && !Protocol::Http.is_http2_upstream());
        assert_eq!(
            classify(Some("grpc"), None).to_string(),
            "grpc (by appProtocol grpc)"
        );
        assert_eq!(
            classify(None, Some("http2-web")).to_string(),
            "http2 (by port name http2-web)"
        );
    }
}
