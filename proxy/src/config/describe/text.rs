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
        resources::{Labels, Located},
        route::PathRewrite,
        HttpRoute, Target,
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
    if !port.classification.protocol.is_l7() {
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
        list(&route.matches).replace(", ", " or ")
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
    writeln!(out, "    Timeout: {timeout}; retries: {}", route.retries)?;
    if !route.fault.is_none() {
        writeln!(out, "    Fault: {}", route.fault)?;
    }
    if let Some(rewrite) = &route.rewrite {
        writeln!(out, "    Rewrite: {}", path_rewrite(rewrite))?;
    }
    for mirror in &route.mirrors {
        let share = mirror.percentage;
        writeln!(
            out,
            "    Mirror: {share} of requests to {}",
            target(&mirror.target)
        )?;
    }
    Ok(())
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

fn path_rewrite(rewrite: &PathRewrite) -> String {
    match rewrite {
        PathRewrite::Prefix(prefix) => format!("matched uri part -> {prefix}"),
        PathRewrite::Regex { replacement, .. } => format!("uri by regex -> {replacement}"),
    }
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
