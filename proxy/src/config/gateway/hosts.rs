//! Host patterns at a gateway: a server's `hosts` (`[namespace/]host`), VirtualService hosts
//! and TLS `sniHosts`, each an exact name, `*.suffix` or `*`, compared without case.

use std::cmp::Reverse;

/// One of a server's `hosts`: which VirtualServices may bind it (by namespace) and for which
/// host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerHost {
    /// `None`: any namespace (`*/host`, or no `namespace/` at all).
    pub namespace: Option<String>,
    pub host: String,
}

impl ServerHost {
    /// `host`, `*/host`, `./host` (the Gateway's own namespace) or `namespace/host`.
    pub fn parse(written: &str, gateway_namespace: &str) -> Self {
        let (namespace, host) = match written.split_once('/') {
            Some(("*", host)) => (None, host),
            Some((".", host)) => (Some(gateway_namespace.to_owned()), host),
            Some((namespace, host)) => (Some(namespace.to_owned()), host),
            None => (None, written),
        };
        Self {
            namespace,
            host: host.to_ascii_lowercase(),
        }
    }

    pub fn allows_namespace(&self, namespace: &str) -> bool {
        self.namespace.as_deref().is_none_or(|own| own == namespace)
    }
}

/// Whether `pattern` covers the name `host` (both lower case).
pub fn covers(pattern: &str, host: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix('*') {
        // `*.example.com` covers `a.example.com` and `a.b.example.com`, not `example.com`.
        Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        None => pattern == host,
    }
}

/// Whether some name is covered by both patterns: a VirtualService host a server can serve.
pub fn intersect(a: &str, b: &str) -> bool {
    covers(a, b) || covers(b, a)
}

/// How specific a pattern is; smaller wins: exact names, then the longest wildcard, then `*`.
pub fn specificity(pattern: &str) -> (u8, Reverse<usize>) {
    match pattern {
        "*" => (2, Reverse(0)),
        wildcard if wildcard.starts_with('*') => (1, Reverse(wildcard.len())),
        exact => (0, Reverse(exact.len())),
    }
}

/// The most specific of `patterns` covering `host`, with its index.
pub fn best_match<'p>(
    patterns: impl IntoIterator<Item = &'p str>,
    host: &str,
) -> Option<(usize, &'p str)> {
    patterns
        .into_iter()
        .enumerate()
        .filter(|(_, pattern)| covers(pattern, host))
        .min_by_key(|(index, pattern)| (specificity(pattern), *index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_host_namespaces() {
        let parse = |written| ServerHost::parse(written, "edge");
        assert_eq!(parse("a.example.com").namespace, None);
        assert_eq!(parse("*/a.example.com").namespace, None);
        assert_eq!(parse("./A.example.com").namespace.as_deref(), Some("edge"));
        assert_eq!(parse("./A.example.com").host, "a.example.com");
        let team = parse("team/*.example.com");
        assert!(team.allows_namespace("team") && !team.allows_namespace("edge"));
        assert!(parse("*").allows_namespace("anything"));
    }

    #[test]
    fn wildcards_cover_subdomains_only() {
        assert!(covers("*", "a.example.com"));
        assert!(covers("*.example.com", "a.example.com"));
        assert!(covers("*.example.com", "a.b.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "a.example.org"));
        assert!(covers("a.example.com", "a.example.com"));
        assert!(!covers("a.example.com", "b.example.com"));
        assert!(intersect("a.example.com", "*.example.com"));
        assert!(!intersect("a.example.com", "*.example.org"));
    }

    #[test]
    fn exact_beats_wildcard_beats_star() {
        let patterns = ["*", "*.example.com", "a.example.com", "*.a.example.com"];
        let best = |host| best_match(patterns, host).map(|(_, p)| p);
        assert_eq!(best("a.example.com"), Some("a.example.com"));
        assert_eq!(best("x.a.example.com"), Some("*.a.example.com"));
        assert_eq!(best("b.example.com"), Some("*.example.com"));
        assert_eq!(best("example.org"), Some("*"));
        assert_eq!(best_match(["a.example.com"], "b.example.com"), None);
    }
}
