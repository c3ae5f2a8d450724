//! `deploy/grafana/strait-dashboard.json` asks Prometheus only for series strait exports.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use regex::Regex;
use serde_json::Value;

use super::{
    kernel, reloads::ReloadCollector, requests::RequestOutcome, Metrics, Peer, Peers,
    ResponseFlags, TcpLabels,
};

const DASHBOARD: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/grafana/strait-dashboard.json"
));

/// The series names in the registry's exposition, after one request and one TCP connection.
fn exported_series() -> BTreeSet<String> {
    let mut metrics = Metrics::new();
    metrics.register_collector(Box::new(ReloadCollector(Arc::default())));
    let outcome = RequestOutcome {
        peers: Peers::source_only(Peer::unknown()),
        service: Some(("api".into(), "default".into())),
        grpc: true,
        response_code: 200,
        grpc_status: Some(0),
        flags: ResponseFlags::NONE,
        request_bytes: 12,
        response_bytes: 34,
    };
    metrics.requests.record(&outcome, Duration::from_millis(3));
    let labels = TcpLabels::new(
        Peers::source_only(Peer::unknown()),
        "db",
        "default",
        ResponseFlags::NONE,
    );
    metrics.tcp.connection_opened(&labels);
    metrics
        .tcp
        .connection_closed(&labels, Some((1, 1)), Duration::from_millis(1));
    let mut series: BTreeSet<String> = metrics
        .encode()
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next().map(str::to_string))
        .collect();
    // The kernel's collector needs BPF maps: its families, as counters, end in `_total`.
    series.extend(
        kernel::FAMILIES
            .iter()
            .map(|(name, ..)| format!("{name}_total")),
    );
    series
}

/// Every `expr` in the dashboard: panels' targets, and the selectors of variables' queries.
fn expressions(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                match (key.as_str(), field) {
                    ("expr", Value::String(expr)) => found.push(expr.clone()),
                    ("definition", Value::String(query)) => {
                        found.push(label_values_selector(query))
                    }
                    _ => expressions(field, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| expressions(item, found)),
        _ => {}
    }
}

/// Grafana's `label_values(SELECTOR, LABEL)`: the selector is PromQL, the label is not.
fn label_values_selector(query: &str) -> String {
    let inner = query
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("a variable query other than label_values: {query}"));
    match inner.rsplit_once(',') {
        Some((selector, _label)) => selector.to_string(),
        None => String::new(),
    }
}

/// The metric names a PromQL expression selects: what is left once strings, label matchers,
/// ranges, groupings, Grafana variables, functions and keywords are taken out.
fn metric_names(expr: &str) -> Vec<String> {
    let noise = Regex::new(concat!(
        r#""(?:[^"\\]|\\.)*"|\{[^}]*\}|\[[^\]]*\]|\$\w+"#,
        r"|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
    ))
    .unwrap();
    let identifier = Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?").unwrap();
    let keywords = [
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "group_left",
        "group_right",
    ];
    let bare = noise.replace_all(expr, " ");
    identifier
        .captures_iter(&bare)
        // Followed by `(`: a function or an aggregation.
        .filter(|found| found.get(1).is_none())
        .map(|found| found[0].to_string())
        .filter(|name| !keywords.contains(&name.as_str()))
        .collect()
}

#[test]
fn metric_names_leave_out_labels_functions_and_variables() {
    let expr = r#"histogram_quantile(0.99, sum by (destination_service, le) (rate(istio_request_duration_milliseconds_bucket{reporter="source", destination_service=~"$service"}[$__rate_interval]))) / on() group_left sum(up)"#;
    let names = metric_names(expr);
    assert_eq!(names, ["istio_request_duration_milliseconds_bucket", "up"]);
}

#[test]
fn the_grafana_dashboard_uses_only_series_strait_exports() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    expressions(&dashboard, &mut exprs);
    let used: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    let exported = exported_series();
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "not exported: {unknown:?}; exported: {exported:?}"
    );
    // And it shows each family the issue names.
    for family in [
        "istio_requests_total",
        "istio_request_duration_milliseconds_bucket",
        "istio_tcp_connections_opened_total",
        "istio_tcp_connections_closed_total",
        "istio_tcp_sent_bytes_total",
        "istio_tcp_received_bytes_total",
        "strait_kernel_connections_opened_total",
        "strait_kernel_sent_bytes_total",
    ] {
        assert!(
            used.contains(family),
            "the dashboard has no panel on {family}"
        );
    }
}

#[test]
fn the_grafana_dashboard_takes_its_prometheus_from_a_variable() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(variables.iter().any(|v| v["type"] == "datasource"
        && v["query"] == "prometheus"
        && v["name"] == "datasource"));
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{}",
                panel["title"]
            );
        }
    }
}
