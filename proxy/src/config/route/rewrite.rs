//! A route's `rewrite` of the path, as Envoy applies what Istio makes of it. (`rewrite.authority`
//! is the destinations' [`authority`](super::RouteDestination::authority).)
//!
//! - `uri`: Envoy's `prefix_rewrite`, which replaces what the route's match matched: the prefix
//!   of a `prefix` match, the whole path (query kept) of an `exact` or `regex` match, and `/`
//!   when the match has no `uri` or the route no match (Istio gives those a `/` prefix match),
//!   so `uri: /v2` turns `/a` into `/v2a` there.
//! - `uriRegexRewrite`: Envoy's `regex_rewrite`: every match of `match` in the path (query
//!   kept aside) is replaced by `rewrite`, in which `\1` names the first group.

use crate::config::resources::{self, RewriteRegex, StringMatch};

#[derive(Clone, Debug, PartialEq)]
pub enum PathRewrite {
    /// `rewrite.uri`.
    Prefix(String),
    /// `rewrite.uriRegexRewrite`; `replacement` in the `regex` crate's syntax (`${1}`).
    Regex {
        regex: RewriteRegex,
        replacement: String,
    },
}

impl PathRewrite {
    /// `uriRegexRewrite` when set, else a non-empty `uri` (validation refuses both at once).
    pub(crate) fn from_spec(spec: Option<&resources::Rewrite>) -> Option<Self> {
        let spec = spec?;
        if let Some(regex) = &spec.uri_regex_rewrite {
            return Some(Self::Regex {
                regex: regex.pattern.clone(),
                replacement: rust_replacement(&regex.rewrite),
            });
        }
        let prefix = spec.uri.as_deref().filter(|uri| !uri.is_empty())?;
        Some(Self::Prefix(prefix.to_owned()))
    }

    /// The path and query to send instead of `path_and_query`, which the `uri` condition
    /// `matched` (of the match the request met; `None`: none) matched.
    pub fn apply(&self, path_and_query: &str, matched: Option<&StringMatch>) -> String {
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path_and_query, None),
        };
        match self {
            Self::Prefix(prefix) => {
                let replaced = match matched {
                    Some(StringMatch::Prefix(matched)) => matched.len(),
                    Some(StringMatch::Exact(_) | StringMatch::Regex(_)) => path.len(),
                    None => usize::from(path.starts_with('/')),
                };
                // `matched` matched the request, so this is in range (and, misused, no panic).
                let rest = path_and_query.get(replaced..).unwrap_or_default();
                format!("{prefix}{rest}")
            }
            Self::Regex { regex, replacement } => {
                let path = regex.get().replace_all(path, replacement.as_str());
                match query {
                    Some(query) => format!("{path}?{query}"),
                    None => path.into_owned(),
                }
            }
        }
    }
}

/// RE2's (Envoy's) substitution syntax in the `regex` crate's: `\N` becomes `${N}`, `\\` a
/// backslash, and a `$` is escaped.
fn rust_replacement(envoy: &str) -> String {
    let mut out = String::with_capacity(envoy.len());
    let mut chars = envoy.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(&digit)) if digit.is_ascii_digit() => {
                out.push_str(&format!("${{{digit}}}"));
                chars.next();
            }
            ('\\', Some('\\')) => {
                out.push('\\');
                chars.next();
            }
            ('$', _) => out.push_str("$$"),
            (c, _) => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::resources::MatchRegex;

    fn prefix(to: &str) -> PathRewrite {
        PathRewrite::Prefix(to.to_owned())
    }

    #[test]
    fn a_prefix_rewrite_replaces_what_was_matched() {
        let matched = StringMatch::Prefix("/ratings".into());
        assert_eq!(
            prefix("/v1/bookRatings").apply("/ratings/1?x=y", Some(&matched)),
            "/v1/bookRatings/1?x=y"
        );
        let exact = StringMatch::Exact("/a".into());
        assert_eq!(prefix("/b").apply("/a?q", Some(&exact)), "/b?q");
        let regex = StringMatch::Regex(MatchRegex::new("/a.*").unwrap());
        assert_eq!(prefix("/b").apply("/abc?q", Some(&regex)), "/b?q");
        // No uri condition: Istio's `/` prefix.
        assert_eq!(prefix("/v2").apply("/a", None), "/v2a");
    }

    #[test]
    fn a_regex_rewrite_replaces_every_match_in_the_path_only() {
        let spec: resources::Rewrite = serde_yaml::from_str(
            r"{uriRegexRewrite: {match: '^/service/([^/]+)(/.*)$', rewrite: '\2/instance/\1'}}",
        )
        .unwrap();
        let rewrite = PathRewrite::from_spec(Some(&spec)).unwrap();
        assert_eq!(
            rewrite.apply("/service/foo/v1/api?x=/service/a/b", None),
            "/v1/api/instance/foo?x=/service/a/b"
        );
        assert_eq!(rust_replacement(r"\1$x\\"), r"${1}$$x\");
        let every: resources::Rewrite =
            serde_yaml::from_str("{uriRegexRewrite: {match: a, rewrite: b}}").unwrap();
        assert_eq!(
            PathRewrite::from_spec(Some(&every))
                .unwrap()
                .apply("/aa", None),
            "/bb"
        );
    }

    #[test]
    fn an_empty_uri_is_no_rewrite() {
        let spec: resources::Rewrite = serde_yaml::from_str("{uri: '', authority: a}").unwrap();
        assert_eq!(PathRewrite::from_spec(Some(&spec)), None);
    }
}
