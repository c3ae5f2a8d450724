use super::*;
use crate::{config::route::Source, telemetry::Peers};

/// The workload of a Pod with no labels: named after the Pod.
fn workload(name: &str) -> Peer {
    Peer::of(Some(&Source::new(
        name.into(),
        "default".into(),
        Default::default(),
    )))
}

fn edge(source: &str, service: &str) -> Edge {
    Edge {
        source: workload(source),
        destination_service: format!("{service}.default.svc.cluster.local"),
        protocol: "grpc",
    }
}

fn ms(milliseconds: u64) -> Option<Duration> {
    Some(Duration::from_millis(milliseconds))
}

/// `traffic`'s clock `seconds` (and a bit) after it started.
fn at(traffic: &Traffic, seconds: f64) -> Instant {
    traffic.started + Duration::from_secs_f64(seconds)
}

#[test]
fn counts_each_request_on_its_edge_by_status() {
    let traffic = Traffic::default();
    for _ in 0..7 {
        traffic.record_at(
            at(&traffic, 0.1),
            edge("web", "api"),
            Outcome::GrpcStatus(0),
            ms(3),
        );
    }
    traffic.record_at(
        at(&traffic, 0.2),
        edge("web", "api"),
        Outcome::GrpcStatus(14),
        ms(3),
    );
    traffic.record_at(
        at(&traffic, 0.3),
        edge("cron", "api"),
        Outcome::GrpcStatus(0),
        ms(3),
    );

    let summary = traffic.summary_at(at(&traffic, 0.5));
    let web = &summary.edges[1];
    assert_eq!(
        (web.source_workload.as_str(), web.stats.requests),
        ("web", 8)
    );
    assert_eq!(
        web.stats.outcomes,
        BTreeMap::from([("0".into(), 7), ("14".into(), 1)])
    );
    assert_eq!(summary.edges[0].stats.requests, 1, "cron");
    let [api] = &summary.services[..] else {
        panic!("one service: {:?}", summary.services)
    };
    assert_eq!(api.destination_service, "api.default.svc.cluster.local");
    assert_eq!(api.stats.requests, 9);
}

#[test]
fn rates_cover_the_last_complete_seconds() {
    let traffic = Traffic::default();
    // 30 calls a second for 20 s, one in ten failing from second 15 on.
    for second in 0..20 {
        for call in 0..30 {
            let failing = second >= 15 && call % 10 == 0;
            let status = if failing { 14 } else { 0 };
            let when = at(&traffic, second as f64 + call as f64 / 30.0);
            traffic.record_at(when, edge("web", "api"), Outcome::GrpcStatus(status), ms(3));
        }
    }
    // At 20.5 s the window is seconds 10..20; the half-filled second 20 is left out.
    let summary = traffic.summary_at(at(&traffic, 20.5));
    let stats = &summary.edges[0].stats;
    assert_eq!(summary.window_seconds, 10);
    assert_eq!(stats.requests, 600);
    assert_eq!(stats.request_rate, 30.0);
    // Five failing seconds of three errors in ten seconds.
    assert_eq!(stats.error_rate, 1.5);
    assert_eq!(stats.outcome_rates["14"], 1.5);
    assert_eq!(stats.outcome_rates["0"], 28.5);
}

#[test]
fn an_idle_edge_keeps_its_totals_and_loses_its_rate() {
    let traffic = Traffic::default();
    traffic.record_at(
        at(&traffic, 1.0),
        edge("web", "api"),
        Outcome::GrpcStatus(0),
        ms(3),
    );
    let stats = &traffic.summary_at(at(&traffic, 30.0)).edges[0].stats;
    assert_eq!((stats.requests, stats.request_rate), (1, 0.0));
    assert_eq!(
        stats.p50_ms, None,
        "no latency without requests in the window"
    );
}

#[test]
fn a_second_reused_by_the_ring_starts_empty() {
    let traffic = Traffic::default();
    traffic.record_at(
        at(&traffic, 2.0),
        edge("web", "api"),
        Outcome::GrpcStatus(0),
        ms(3),
    );
    // Second 13 takes second 2's slot: second 2's call is gone from it.
    traffic.record_at(
        at(&traffic, 13.0),
        edge("web", "api"),
        Outcome::GrpcStatus(0),
        ms(3),
    );
    let stats = &traffic.summary_at(at(&traffic, 14.0)).edges[0].stats;
    assert_eq!((stats.requests, stats.request_rate), (2, 0.1));
}

#[test]
fn the_rate_divides_by_the_seconds_since_start_when_fewer_than_the_window() {
    let traffic = Traffic::default();
    for call in 0..8 {
        let when = at(&traffic, call as f64 / 4.0);
        traffic.record_at(when, edge("web", "api"), Outcome::GrpcStatus(0), ms(3));
    }
    let summary = traffic.summary_at(at(&traffic, 2.5));
    assert_eq!(summary.window_seconds, 2);
    assert_eq!(summary.edges[0].stats.request_rate, 4.0);
    let first_second = traffic.summary_at(at(&traffic, 0.5));
    assert_eq!(first_second.edges[0].stats.request_rate, 0.0);
}

#[test]
fn latency_quantiles_come_from_the_window() {
    let traffic = Traffic::default();
    for latency in [2, 3, 4, 5, 6, 7, 8, 9, 9, 10] {
        traffic.record_at(
            at(&traffic, 0.5),
            edge("web", "api"),
            Outcome::GrpcStatus(0),
            ms(latency),
        );
    }
    let stats = &traffic.summary_at(at(&traffic, 1.5)).services[0].stats;
    // Four in (1, 5] ms, six in (5, 10]: histogram_quantile's 5 + 5 * (5 - 4) / 6.
    let p50 = stats.p50_ms.unwrap();
    assert!((p50 - (5.0 + 5.0 / 6.0)).abs() < 1e-9, "{p50}");
}

#[test]
fn errors_are_non_ok_grpc_statuses_5xx_and_failed_connections() {
    let errors = [
        Outcome::GrpcStatus(4),
        Outcome::HttpClass(5),
        Outcome::Tcp(ResponseFlags::UPSTREAM_CONNECT_FAILURE),
    ];
    let fine = [
        Outcome::GrpcStatus(0),
        Outcome::HttpClass(4),
        Outcome::Tcp(ResponseFlags::NONE),
    ];
    assert!(errors.iter().all(|o| o.is_error()));
    assert!(fine.iter().all(|o| !o.is_error()));
    let keys: Vec<String> = errors.iter().chain(&fine).map(Outcome::to_string).collect();
    assert_eq!(keys, ["4", "5xx", "UF", "0", "4xx", "ok"]);
}

#[test]
fn the_summary_is_json_with_istio_label_names() {
    let traffic = Traffic::default();
    traffic.record_at(
        at(&traffic, 0.5),
        edge("web", "api"),
        Outcome::GrpcStatus(0),
        None,
    );
    let json = serde_json::to_value(traffic.summary_at(at(&traffic, 1.5))).unwrap();
    let edge = &json["edges"][0];
    assert_eq!(edge["source_workload"], "web");
    assert_eq!(edge["destination_service"], "api.default.svc.cluster.local");
    assert_eq!(edge["request_protocol"], "grpc");
    assert_eq!(edge["request_rate"], 1.0);
    assert_eq!(edge["p99_ms"], serde_json::Value::Null);
}

#[test]
fn the_request_and_tcp_metrics_feed_the_summary() {
    use crate::telemetry::{requests::RequestOutcome, Metrics, TcpLabels};
    let metrics = Metrics::new();
    let frontend = Peers::source_only(workload("frontend"));
    let outcome = RequestOutcome {
        peers: frontend.clone(),
        service: Some(("web".into(), "shop".into())),
        grpc: false,
        response_code: 503,
        grpc_status: None,
        flags: ResponseFlags::NO_HEALTHY_UPSTREAM,
        request_bytes: 12,
        response_bytes: 34,
    };
    metrics.requests.record(&outcome, Duration::from_millis(2));
    let refused = TcpLabels::new(
        frontend,
        "db",
        "shop",
        ResponseFlags::UPSTREAM_CONNECT_FAILURE,
    );
    metrics.tcp.connection_opened(&refused);
    metrics
        .tcp
        .connection_closed(&refused, None, Duration::from_millis(1));

    let summary = metrics.traffic.summary();
    let outcomes: Vec<_> = summary
        .edges
        .iter()
        .map(|e| {
            (
                e.destination_service.as_str(),
                e.request_protocol,
                &e.stats.outcomes,
            )
        })
        .collect();
    let one = |key: &str| BTreeMap::from([(key.to_string(), 1)]);
    assert_eq!(
        outcomes,
        [
            ("db.shop.svc.cluster.local", "tcp", &one("UF")),
            ("web.shop.svc.cluster.local", "http", &one("5xx")),
        ]
    );
    // Each edge is the client workload's.
    assert!(
        summary
            .edges
            .iter()
            .all(|e| e.source_workload == "frontend"),
        "{:?}",
        summary.edges
    );
}

/// A client workload's pods of two versions are one caller on the dashboard, as in its summary.
#[test]
fn a_workloads_versions_are_one_edge() {
    let versioned = |version: &str| {
        let labels = [("app", "web"), ("version", version)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Peer::of(Some(&Source::new("web-x".into(), "default".into(), labels)))
    };
    let traffic = Traffic::default();
    for version in ["v1", "v2"] {
        let edge = Edge {
            source: versioned(version),
            destination_service: "api.default.svc.cluster.local".into(),
            protocol: "grpc",
        };
        traffic.record_at(at(&traffic, 0.1), edge, Outcome::GrpcStatus(0), ms(1));
    }
    let summary = traffic.summary_at(at(&traffic, 2.0));
    assert_eq!(summary.edges.len(), 1, "{:?}", summary.edges);
    assert_eq!(summary.edges[0].stats.requests, 2);
}
