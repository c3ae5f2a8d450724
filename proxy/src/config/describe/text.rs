//! The text `strait describe service` prints: one block per port, then the problems.

use std::{
    fmt::Display,
    io::{self, Write},
    time::Duration,
};

use super::Described;
use crate::{
    classify::Protocol,
    config::{
        model::{Backend, ServicePort},
        policy::{ConnectionPool, OutlierDetection, UNLIMITED},
        resources::{GrpcStatus, Labels, Located, StringMatch},
        route::{HeaderKey, PathRewrite},
        Abort, AbortStatus, Delay, HttpRoute, Percentage, RequestMatch, RetryPolicy, Target,
    },
};

pub(super) fn write(out: &mut impl Write, d: &Described<'_>) -> io::Result<()> {
    let service = d.service;
    let from = d.resource.as_ref().map(|r| format!(" ({})", r.source));
    writeln!(
        out,
        "Service: {}{}",
        service.fqdn(),
        from.unwrap_or_default()
    )?;
    match &d.resource {
        Some(r) if !r.resource.spec.selector.is_empty() => {
            writeln!(out, "Selector: {}", labels(&r.resource.spec.selector))?
        }
        _ => writeln!(out, "Selector: none: no endpoints are selected")?,
    }
    if service.cluster_ips.is_empty() {
        writeln!(
            out,
            "Cluster IP: none: reached by name only, never captured"
        )?;
    } else {
        writeln!(out, "Cluster IP: {}", list(&service.cluster_ips))?;
    }
    write_resources(out, "DestinationRules", &d.rules)?;
    write_resources(out, "VirtualServices", &d.virtual_services)?;
    for (vs, gateways) in &d.ingress {
        let meta = &vs.resource.metadata;
        let (ns, name) = (&meta.namespace, &meta.name);
        writeln!(
            out,
            "Ingress: VirtualService {ns}/{name} ({}) at {}",
            vs.source,
            list(gateways)
        )?;
    }
    for port in &service.ports {
        writeln!(out)?;
        write_port(out, d, port)?;
    }
    writeln!(out)?;
    if d.problems.is_empty() {
        return writeln!(out, "Problems: none");
    }
    writeln!(out, "Problems:")?;
    for problem in &d.problems {
        writeln!(out, "  {problem}")?;
    }
    Ok(())
}

fn write_resources<T: crate::config::resources::Object>(
    out: &mut impl Write,
    title: &str,
    found: &[Located<&T>],
) -> io::Result<()> {
    if found.is_empty() {
        return writeln!(out, "{title}: none");
    }
    let named: Vec<String> = found
        .iter()
        .map(|r| {
            let subject = r.subject();
            let part = |v: Option<String>| v.unwrap_or_default();
            format!(
                "{}/{} ({})",
                part(subject.namespace),
                part(subject.name),
                r.source
            )
        })
        .collect();
    writeln!(
        out,
        "{title}: {}{}",
        named.join(", "),
        first_wins(found.len())
    )
}

fn first_wins(count: usize) -> &'static str {
    if count > 1 {
        "; the first applies, the others only where it says nothing"
    } else {
        ""
    }
}

fn write_port(out: &mut impl Write, d: &Described<'_>, port: &ServicePort) -> io::Result<()> {
    let name = port
        .name
        .as_deref()
        .map(|n| format!(" {n}"))
        .unwrap_or_default();
    writeln!(
        out,
        "Port {}{name} -> {}: {}",
        port.port, port.target_port, port.classification
    )?;
    let served = match port.classification.protocol {
        Protocol::Grpc | Protocol::Http2 | Protocol::GrpcWeb => "per request over HTTP/2",
        Protocol::Http => "per request (HTTP/1.1 or HTTP/2, sniffed)",
        Protocol::Tcp | Protocol::Tls => "per connection (TCP relay, no routes)",
    };
    writeln!(out, "  Served: {served}")?;
    write_endpoints(out, port)?;
    write_policy(out, "  ", &port.backend)?;
    for (name, subset) in &port.subsets {
        write!(out, "  Subset {name}: ")?;
        write_subset(out, d, name, subset, &port.backend)?;
    }
    if matches!(port.classification.protocol, Protocol::Tcp | Protocol::Tls) {
        return Ok(());
    }
    for (index, route) in port.routes.iter().enumerate() {
        write_route(out, index, route)?;
    }
    Ok(())
}

fn write_endpoints(out: &mut impl Write, port: &ServicePort) -> io::Result<()> {
    if port.endpoints.is_empty() {
        return writeln!(
            out,
            "  Endpoints: none: requests get UH (no healthy upstream)"
        );
    }
    writeln!(out, "  Endpoints ({}):", port.endpoints.len())?;
    for endpoint in &port.endpoints {
        writeln!(out, "    {} {}", endpoint.addr, endpoint.source)?;
    }
    Ok(())
}

fn write_subset(
    out: &mut impl Write,
    d: &Described<'_>,
    name: &str,
    subset: &Backend,
    whole: &Backend,
) -> io::Result<()> {
    let defined = d
        .rules
        .iter()
        .flat_map(|rule| &rule.resource.spec.subsets)
        .find(|s| s.name == name);
    let selector = defined.map_or_else(String::new, |s| labels(&s.labels));
    writeln!(out, "{selector}: {}", endpoint_count(subset))?;
    if subset.traffic_policy != whole.traffic_policy {
        write_policy(out, "    ", subset)?;
    }
    Ok(())
}

fn write_policy(out: &mut impl Write, indent: &str, backend: &Backend) -> io::Result<()> {
    let policy = &backend.traffic_policy;
    writeln!(out, "{indent}Load balancer: {}", policy.load_balancer)?;
    writeln!(
        out,
        "{indent}Connection pool: {}",
        pool(&policy.connection_pool)
    )?;
    match &policy.outlier_detection {
        None => writeln!(out, "{indent}Outlier detection: off"),
        Some(od) => writeln!(out, "{indent}Outlier detection: {}", outliers(od)),
    }
}

fn pool(pool: &ConnectionPool) -> String {
    let limit = |n: u32| {
        if n == UNLIMITED {
            "unlimited".to_owned()
        } else {
            n.to_string()
        }
    };
    let per_connection = pool
        .max_requests_per_connection
        .map_or("unlimited".to_owned(), |n| n.to_string());
    let streams = pool
        .max_concurrent_streams
        .map_or("100 (default)".to_owned(), |n| n.to_string());
    format!(
        "maxConnections {}, connectTimeout {}, http1MaxPendingRequests {}, http2MaxRequests {}, \
         maxRequestsPerConnection {per_connection}, maxRetries {}, idleTimeout {}, \
         h2UpgradePolicy {:?}, maxConcurrentStreams {streams}",
        limit(pool.max_connections),
        duration(pool.connect_timeout),
        limit(pool.http1_max_pending_requests),
        limit(pool.http2_max_requests),
        limit(pool.max_retries),
        duration(pool.idle_timeout),
        pool.h2_upgrade,
    )
}

fn outliers(od: &OutlierDetection) -> String {
    let count = |n: Option<std::num::NonZeroU32>| n.map_or("off".to_owned(), |n| n.to_string());
    format!(
        "consecutive5xxErrors {}, consecutiveGatewayErrors {}, interval {}, baseEjectionTime {}, \
         maxEjectionPercent {}, minHealthPercent {}",
        count(od.consecutive_5xx_errors),
        count(od.consecutive_gateway_errors),
        duration(od.interval),
        duration(od.base_ejection_time),
        od.max_ejection_percent,
        od.min_health_percent,
    )
}

fn write_route(out: &mut impl Write, index: usize, route: &HttpRoute) -> io::Result<()> {
    let when = if route.matches.is_empty() {
        "every request".to_owned()
    } else {
        route
            .matches
            .iter()
            .map(request_match)
            .collect::<Vec<_>>()
            .join(" or ")
    };
    writeln!(out, "  Route {index} {}: {when}", route.route_name)?;
    for (destination, share) in route.destinations.iter() {
        writeln!(
            out,
            "    {:>5.1}% -> {}",
            share * 100.0,
            target(&destination.target)
        )?;
    }
    let timeout = route.timeout.map_or("none".to_owned(), duration);
    writeln!(
        out,
        "    Timeout: {timeout}; retries: {}",
        retries(&route.retries)
    )?;
    if let Some(delay) = &route.fault.delay {
        writeln!(out, "    Fault: {}", fault_delay(delay))?;
    }
    if let Some(abort) = &route.fault.abort {
        writeln!(out, "    Fault: {}", fault_abort(abort))?;
    }
    if let Some(rewrite) = &route.rewrite {
        writeln!(out, "    Rewrite: {}", path_rewrite(rewrite))?;
    }
    for mirror in &route.mirrors {
        let share = percent(mirror.percentage);
        writeln!(
            out,
            "    Mirror: {share} of requests to {}",
            target(&mirror.target)
        )?;
    }
    Ok(())
}

fn request_match(m: &RequestMatch) -> String {
    let mut parts = Vec::new();
    let mut string = |what: &str, value: &Option<StringMatch>| {
        if let Some(value) = value {
            parts.push(format!("{what} {}", string_match(value)));
        }
    };
    string("uri", &m.uri);
    string("method", &m.method);
    string("authority", &m.authority);
    for header in &m.headers {
        let name = match &header.name {
            HeaderKey::Header(name) => name.as_str(),
            HeaderKey::Pseudo(name) => name,
        };
        let value = header
            .value
            .as_ref()
            .map_or("present".to_owned(), string_match);
        parts.push(format!("header {name} {value}"));
    }
    if let Some(port) = m.port {
        parts.push(format!("port {port}"));
    }
    if parts.is_empty() {
        return "every request".to_owned();
    }
    parts.join(" and ")
}

fn string_match(value: &StringMatch) -> String {
    match value {
        StringMatch::Exact(exact) => format!("= {exact}"),
        StringMatch::Prefix(prefix) => format!("starts with {prefix}"),
        StringMatch::Regex(regex) => format!("matches {}", regex.as_str()),
    }
}

fn target(target: &Target) -> String {
    match target {
        Target::Backend(backend) => {
            let subset = backend
                .subset
                .as_deref()
                .map(|s| format!(" subset {s}"))
                .unwrap_or_default();
            format!(
                "{}:{}{subset} ({})",
                backend.fqdn,
                backend.port,
                endpoint_count(backend)
            )
        }
        Target::Unresolved(why) => format!("nowhere: {why}; requests get NR"),
    }
}

fn endpoint_count(backend: &Backend) -> String {
    match backend.endpoints.len() {
        0 => "no endpoints: requests get UH".to_owned(),
        1 => "1 endpoint".to_owned(),
        n => format!("{n} endpoints"),
    }
}

fn retries(policy: &RetryPolicy) -> String {
    if policy.attempts == 0 {
        return "off".to_owned();
    }
    let default = if *policy == RetryPolicy::istio_default() {
        " (Istio's default)"
    } else {
        ""
    };
    let per_try = policy
        .per_try_timeout
        .map(|t| format!(", {} per try", duration(t)))
        .unwrap_or_default();
    format!(
        "{} on {}{per_try}{default}",
        policy.attempts, policy.retry_on
    )
}

fn fault_delay(delay: &Delay) -> String {
    format!(
        "delay {} on {} of requests (DI)",
        duration(delay.duration),
        percent(delay.percentage)
    )
}

fn fault_abort(abort: &Abort) -> String {
    let status = match abort.status {
        AbortStatus::Http(status) => format!("HTTP {}", status.as_u16()),
        AbortStatus::Grpc(code) => match GrpcStatus::from_code(code) {
            Some(status) => format!("gRPC status {code} {}", status.name()),
            None => format!("gRPC status {code}"),
        },
    };
    format!(
        "abort with {status} on {} of requests (FI)",
        percent(abort.percentage)
    )
}

fn path_rewrite(rewrite: &PathRewrite) -> String {
    match rewrite {
        PathRewrite::Prefix(prefix) => format!("matched uri part -> {prefix}"),
        PathRewrite::Regex { replacement, .. } => format!("uri by regex -> {replacement}"),
    }
}

fn percent(share: Percentage) -> String {
    let value = f64::from(share.per_million()) / f64::from(Percentage::MILLION) * 100.0;
    format!("{value}%")
}

fn duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn labels(labels: &Labels) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn list<T: Display>(items: &[T]) -> String {
    items
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
