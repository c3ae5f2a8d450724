//! A VirtualService's HTTP routes on their own: what Istio refuses (header names, weights that
//! are all 0, an empty fault, header changes and rewrites that cannot be applied), and what
//! strait reads differently from what was likely meant. Bad durations, regexes, percentages,
//! statuses and gRPC status names fail decoding.
//!
//! Three things Istio's validation refuses are warnings here, read as Istio's translation
//! would read them had they passed: a `timeout` of 0 (no timeout), `retries` with `attempts`
//! 0 or absent beside other settings (no retries), and `retryOn` tokens that are neither
//! conditions nor status codes (ignored).

use crate::config::{
    diagnostics::Finding,
    resources::{
        Fault, FaultAbort, FaultDelay, Headers, HttpRoute, Retries, Rewrite, RouteTimeout,
        VirtualService,
    },
    route::{
        authority_settings, unusable_header_changes, with_percent_signs, HeaderKey, RetryOn,
        Skipped, Unusable, UnusableKey,
    },
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
        findings.extend(weights(route, &field));
        if let Some(fault) = &route.fault {
            findings.extend(fault_settings(fault, &format!("{field}.fault")));
        }
        findings.extend(all_header_changes(route, &field));
        if let Some(rewrite) = &route.rewrite {
            findings.extend(rewrite_settings(rewrite, &format!("{field}.rewrite")));
        }
        if route.mirror_percent.is_some() {
            let message = "deprecated by Istio: use mirrorPercentage, which wins when both are set";
            findings.push(Finding::warning(format!("{field}.mirrorPercent"), message));
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

/// Among several destinations weights are shares of their total (see
/// [`Destinations`](crate::config::route::Destinations)).
fn weights(route: &HttpRoute, field: &str) -> Option<Finding> {
    if route.route.len() < 2 {
        return None;
    }
    let total: u64 = route
        .route
        .iter()
        .map(|destination| u64::from(destination.weight.unwrap_or(0)))
        .sum();
    let field = format!("{field}.route");
    match total {
        0 => Some(Finding::error(
            field,
            "every destination has weight 0 (or none): Istio refuses this; give each its share",
        )),
        100 => None,
        _ => Some(Finding::warning(
            field,
            format!(
                "the weights add up to {total}, not 100: each destination takes its weight out \
                 of {total} of the requests (Istio releases before 1.15 refuse this)"
            ),
        )),
    }
}

/// Istio reads an absent `percentage` as no request at all (see
/// [`fault`](crate::config::route::Fault)).
const NO_PERCENTAGE: &str = "absent, so no request is affected: Istio reads it as 0% \
     (istio/istio#36303); write percentage: {value: 100} for every request";

fn fault_settings(fault: &Fault, field: &str) -> Vec<Finding> {
    if fault.delay.is_none() && fault.abort.is_none() {
        return vec![Finding::error(
            field,
            "set delay, abort or both: Istio refuses a fault with neither",
        )];
    }
    let delay = fault
        .delay
        .as_ref()
        .map(|delay| delay_settings(delay, &format!("{field}.delay")));
    let abort = fault
        .abort
        .as_ref()
        .map(|abort| abort_settings(abort, &format!("{field}.abort")));
    delay.into_iter().chain(abort).flatten().collect()
}

fn delay_settings(delay: &FaultDelay, field: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    if delay.fixed_delay.is_none() {
        findings.push(Finding::warning(
            format!("{field}.fixedDelay"),
            "missing, so no request is delayed",
        ));
    }
    if delay.percentage.is_none() && delay.percent.is_none() {
        findings.push(Finding::warning(
            format!("{field}.percentage"),
            NO_PERCENTAGE,
        ));
    }
    findings
}

fn abort_settings(abort: &FaultAbort, field: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    if abort.status.is_none() {
        findings.push(Finding::warning(
            field,
            "neither httpStatus nor grpcStatus, so no request is aborted",
        ));
    }
    if abort.percentage.is_none() {
        findings.push(Finding::warning(
            format!("{field}.percentage"),
            NO_PERCENTAGE,
        ));
    }
    findings
}

/// The route's `headers` and each destination's, and the authority they and `rewrite` set.
fn all_header_changes(route: &HttpRoute, field: &str) -> Vec<Finding> {
    let own = route
        .headers
        .as_ref()
        .map(|headers| (headers, format!("{field}.headers")));
    let destinations = route
        .route
        .iter()
        .enumerate()
        .filter_map(|(r, destination)| {
            let headers = destination.headers.as_ref()?;
            Some((headers, format!("{field}.route[{r}].headers")))
        });
    let mut findings: Vec<Finding> = own
        .into_iter()
        .chain(destinations)
        .flat_map(|(headers, field)| header_changes(headers, &field))
        .collect();
    let rewritten = route
        .rewrite
        .as_ref()
        .and_then(|rewrite| rewrite.authority.as_deref())
        .is_some_and(|authority| !authority.is_empty());
    let set = route.headers.as_ref().map_or(0, authority_settings) + usize::from(rewritten);
    if set > 1 {
        findings.push(Finding::error(
            format!("{field}.headers.request"),
            "the authority is set more than once (:authority or host set or added, \
             rewrite.authority): Istio refuses this",
        ));
    }
    findings
}

fn header_changes(headers: &Headers, field: &str) -> Vec<Finding> {
    let unusable = unusable_header_changes(headers)
        .into_iter()
        .map(|(at, why)| {
            let message = match why {
                Unusable::InvalidName => "not a valid HTTP header name",
                Unusable::Internal => {
                    "pseudo-headers and host cannot be changed, except by setting or adding a \
                 request's :authority or host"
                }
                Unusable::InvalidValue => "not a valid HTTP header value",
            };
            Finding::error(format!("{field}.{at}"), message)
        });
    let literal = with_percent_signs(headers).into_iter().map(|at| {
        Finding::warning(
            format!("{field}.{at}"),
            "sent as written: strait does not expand Envoy's %COMMAND%s",
        )
    });
    unusable.chain(literal).collect()
}

fn rewrite_settings(rewrite: &Rewrite, field: &str) -> Option<Finding> {
    let is_set = |value: &Option<String>| value.as_deref().is_some_and(|v| !v.is_empty());
    let uri = is_set(&rewrite.uri);
    let regex = rewrite.uri_regex_rewrite.as_ref();
    if uri && regex.is_some() {
        return Some(Finding::error(
            field,
            "set at most one of uri and uriRegexRewrite",
        ));
    }
    if !uri && regex.is_none() && !is_set(&rewrite.authority) {
        return Some(Finding::error(
            field,
            "set uri, uriRegexRewrite or authority",
        ));
    }
    let authority = rewrite.authority.as_deref().unwrap_or_default();
    if http::HeaderValue::from_str(authority).is_err() {
        return Some(Finding::error(
            format!("{field}.authority"),
            "not a valid HTTP header value",
        ));
    }
    regex.filter(|regex| regex.rewrite.is_empty()).map(|_| {
        Finding::error(
            format!("{field}.uriRegexRewrite.rewrite"),
            "must not be empty",
        )
    })
}
