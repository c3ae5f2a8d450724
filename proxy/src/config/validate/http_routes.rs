//! A VirtualService's HTTP routes on their own: the header names Istio refuses, and what strait
//! reads differently from what was likely meant. Bad durations and regexes fail decoding.
//!
//! Three things Istio's validation refuses are warnings here, read as Istio's translation
//! would read them had they passed: a `timeout` of 0 (no timeout), `retries` with `attempts`
//! 0 or absent beside other settings (no retries), and `retryOn` tokens that are neither
//! conditions nor status codes (ignored).

use crate::config::{
    diagnostics::Finding,
    resources::{HttpRoute, Retries, RouteTimeout, VirtualService},
    route::{HeaderKey, RetryOn, Skipped, UnusableKey},
};

pub(super) fn check(service: &VirtualService) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (h, route) in service.spec.http.iter().enumerate() {
        let field = format!("spec.http[{h}]");
        findings.extend(timeout(route, &field));
        findings.extend(header_keys(route, &field));
        if let Some(retries) = &route.retries {
            findings.extend(retry_settings(retries, &format!("{field}.retries")));
        }
    }
    findings
}

fn timeout(route: &HttpRoute, field: &str) -> Option<Finding> {
    (route.timeout? == RouteTimeout::Zero).then(|| {
        Finding::warning(
            format!("{field}.timeout"),
            "0s means no timeout, as when timeout is absent, but Istio's validation refuses \
             durations under 1ms: leave timeout out",
        )
    })
}

fn header_keys(route: &HttpRoute, field: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (m, request_match) in route.matches.iter().enumerate() {
        for key in request_match.headers.keys() {
            let field = format!("{field}.match[{m}].headers.{key}");
            findings.extend(HeaderKey::parse(key).err().map(|why| match why {
                UnusableKey::JwtClaim => Finding::warning(
                    field,
                    "JWT claim matches are not supported by strait: this match never applies",
                ),
                UnusableKey::Invalid => Finding::error(field, "not a valid HTTP header name"),
            }));
        }
    }
    findings
}

fn retry_settings(retries: &Retries, field: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let disabled = retries.attempts.unwrap_or(0) == 0;
    if disabled && (retries.per_try_timeout.is_some() || retries.retry_on.is_some()) {
        findings.push(Finding::warning(
            format!("{field}.attempts"),
            "attempts 0 (or absent) disables retries, so perTryTimeout and retryOn are \
             ignored; Istio's validation refuses them beside it",
        ));
    }
    let retry_on = retries.retry_on.as_deref().unwrap_or_default();
    for (token, why) in RetryOn::parse(retry_on).1 {
        let message = match why {
            Skipped::Unsupported => format!("{token}: not supported by strait; ignored"),
            Skipped::Unknown => format!(
                "{token} is neither a retry condition nor an HTTP status code \
                 (Istio's validation refuses it); ignored"
            ),
        };
        findings.push(Finding::warning(format!("{field}.retryOn"), message));
    }
    findings
}
