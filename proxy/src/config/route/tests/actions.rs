//! What routes do to requests on the way: faults, header changes, rewrites.

use http::{HeaderValue, StatusCode};

use super::*;

/// The first route of port 9090 of web.shop under a VirtualService with one HTTP route whose
/// other fields are `fields` (`fault: {...}`), and the problems of the load.
fn route_with(fields: &str) -> (Vec<String>, HttpRoute) {
    let spec =
        format!("{{hosts: [web], http: [{{{fields}, route: [{{destination: {{host: web}}}}]}}]}}");
    let (problems, model) = load(&(WEB.to_owned() + &virtual_service("web", "shop", &spec)));
    (problems, routes(&model, 9090).remove(0))
}

const FIELD: &str = "r.yaml#2 VirtualService/shop/web: spec.http[0]";

#[test]
fn the_seeds_delay_and_a_grpc_abort() {
    let (problems, route) = route_with(
        "fault: {delay: {percentage: {value: 100.0}, fixedDelay: 10s}, \
         abort: {grpcStatus: UNAVAILABLE, percentage: {value: 50}}}",
    );
    assert!(problems.is_empty(), "{problems:#?}");
    let delay = route.fault.delay.unwrap();
    assert_eq!(delay.duration, Duration::from_secs(10));
    assert_eq!(delay.percentage, Percentage::ALWAYS);
    let abort = route.fault.abort.unwrap();
    assert_eq!(abort.status, AbortStatus::Grpc(GrpcCodes::UNAVAILABLE));
    assert_eq!(abort.percentage.per_million(), 500_000);
    assert!(abort.percentage.admits(499_999) && !abort.percentage.admits(500_000));
}

#[test]
fn an_http_abort_and_the_deprecated_delay_percent() {
    let (problems, route) = route_with(
        "fault: {delay: {percent: 20, fixedDelay: 1.5s}, abort: {httpStatus: 503, percentage: {value: 0.1}}}",
    );
    assert!(problems.is_empty(), "{problems:#?}");
    let delay = route.fault.delay.unwrap();
    assert_eq!(
        (delay.duration, delay.percentage.per_million()),
        (Duration::from_millis(1500), 200_000)
    );
    let abort = route.fault.abort.unwrap();
    assert_eq!(
        abort.status,
        AbortStatus::Http(StatusCode::SERVICE_UNAVAILABLE)
    );
    assert_eq!(abort.percentage.per_million(), 1_000);
}

#[test]
fn a_fault_without_percentage_or_status_injects_nothing_and_says_so() {
    let (problems, route) =
        route_with("fault: {delay: {fixedDelay: 1s}, abort: {percentage: {value: 100}}}");
    assert!(route.fault.is_none());
    let absent = "absent, so no request is affected: Istio reads it as 0% (istio/istio#36303); \
                  write percentage: {value: 100} for every request";
    assert_eq!(
        problems,
        [
            format!("warning: {FIELD}.fault.delay.percentage: {absent}"),
            format!("warning: {FIELD}.fault.abort: neither httpStatus nor grpcStatus, so no request is aborted"),
        ]
    );
    let (problems, route) = route_with("fault: {delay: {percentage: {value: 100}}}");
    assert!(route.fault.is_none());
    assert_eq!(
        problems,
        [format!(
            "warning: {FIELD}.fault.delay.fixedDelay: missing, so no request is delayed"
        )]
    );
}

#[test]
fn faults_istio_refuses_drop_the_virtual_service() {
    for (fields, expected) in [
        (
            "fault: {abort: {grpcStatus: Unavailable, percentage: {value: 1}}}",
            "fault.abort.grpcStatus: invalid value: string \"Unavailable\", expected a gRPC status name such as UNAVAILABLE or NOT_FOUND, in capitals",
        ),
        (
            "fault: {abort: {httpStatus: 700, percentage: {value: 1}}}",
            "fault.abort.httpStatus: invalid value: integer `700`, expected an HTTP status from 200 to 599",
        ),
        (
            "fault: {abort: {httpStatus: 503, grpcStatus: INTERNAL}}",
            "fault.abort: set at most one of httpStatus and grpcStatus",
        ),
        (
            "fault: {delay: {fixedDelay: 1s, percentage: {value: 150}}}",
            "fault.delay.percentage: value 150 is not a percentage from 0 to 100",
        ),
        (
            "fault: {delay: {fixedDelay: 1s, percent: 101}}",
            "fault.delay.percent: invalid value: integer `101`, expected a percentage from 0 to 100",
        ),
        (
            "fault: {delay: {fixedDelay: soon, percent: 1}}",
            "fault.delay.fixedDelay: invalid value: string \"soon\"",
        ),
        ("fault: {}", "fault: set delay, abort or both: Istio refuses a fault with neither"),
        (
            "mirror: {host: web}, mirrorPercentage: {value: -1}",
            "mirrorPercentage: value -1 is not a percentage from 0 to 100",
        ),
    ] {
        let (problems, route) = route_with(fields);
        assert_eq!(problems.len(), 1, "{fields}: {problems:#?}");
        assert!(
            problems[0].starts_with(&format!("error: {FIELD}.{expected}")),
            "{fields}: {}",
            problems[0]
        );
        assert_eq!(route.origin, RouteOrigin::Default, "{fields}");
    }
}

/// `name: value` for each change, `-name` for a removal.
fn changes(changes: &HeaderChanges) -> Vec<String> {
    changes
        .iter()
        .map(|change| match change {
            HeaderChange::Remove(name) => format!("-{name}"),
            HeaderChange::Set(name, value) => format!("{name}={}", value.to_str().unwrap()),
            HeaderChange::Add(name, value) => format!("{name}+={}", value.to_str().unwrap()),
        })
        .collect()
}

#[test]
fn header_changes_of_the_route_and_of_each_destination() {
    let spec = "{hosts: [web], http: [{headers: {request: {set: {x-route: r}}, response: {remove: [server]}}, route: [\
        {destination: {host: web}, weight: 75, headers: {request: {add: {X-Dest: a}}, response: {set: {x-from: a}}}}, \
        {destination: {host: web}, weight: 25}]}]}";
    let route = routes(
        &model(&(WEB.to_owned() + &virtual_service("web", "shop", spec))),
        9090,
    )
    .remove(0);
    let mut destinations = route
        .destinations
        .iter()
        .map(|(destination, _)| destination);
    let (a, b) = (destinations.next().unwrap(), destinations.next().unwrap());
    // Several destinations: each one's changes, then the route's (Envoy's order).
    assert_eq!(changes(&a.request_headers), ["x-dest+=a", "x-route=r"]);
    assert_eq!(changes(&a.response_headers), ["x-from=a", "-server"]);
    assert_eq!(changes(&b.request_headers), ["x-route=r"]);
    let mut request = http::HeaderMap::new();
    request.insert("x-route", HeaderValue::from_static("client"));
    a.request_headers.apply(&mut request);
    assert_eq!(request["x-route"], "r");
    assert_eq!(request["x-dest"], "a");
}

#[test]
fn the_authority_from_rewrite_or_headers() {
    let (problems, route) = route_with("rewrite: {authority: web.internal}");
    assert!(problems.is_empty(), "{problems:#?}");
    let destination = route.destinations.pick(0);
    assert_eq!(
        destination.authority,
        Some(HeaderValue::from_static("web.internal"))
    );
    assert!(destination.request_headers.is_empty());
    assert_eq!(route.rewrite, None, "no path rewrite");

    let (_, route) = route_with("headers: {request: {set: {':authority': other}}}");
    assert_eq!(
        route.destinations.pick(0).authority,
        Some(HeaderValue::from_static("other"))
    );

    let (problems, _) = route_with("rewrite: {authority: a}, headers: {request: {add: {host: b}}}");
    assert_eq!(
        problems,
        [format!("error: {FIELD}.headers.request: the authority is set more than once (:authority or host set or added, \
                  rewrite.authority): Istio refuses this; the document is ignored")]
    );
}

#[test]
fn header_changes_istio_refuses_drop_the_virtual_service() {
    let (problems, route) = route_with(
        "headers: {request: {set: {':path': /x}, remove: ['bad name']}, response: {add: {x-peer: '%DOWNSTREAM_REMOTE_ADDRESS%'}}}",
    );
    assert_eq!(
        problems,
        [
            format!("error: {FIELD}.headers.request.set.:path: pseudo-headers and host cannot be changed, except by setting or adding a request's :authority or host; the document is ignored"),
            format!("error: {FIELD}.headers.request.remove.bad name: not a valid HTTP header name; the document is ignored"),
            format!("warning: {FIELD}.headers.response.add.x-peer: sent as written: strait does not expand Envoy's %COMMAND%s"),
        ]
    );
    assert_eq!(route.origin, RouteOrigin::Default);
}

#[test]
fn a_uri_rewrite_replaces_the_prefix_the_request_matched() {
    let spec = "{hosts: [web], http: [{match: [{uri: {prefix: /ratings}}, {uri: {exact: /stars}}, {headers: {x-any: {}}}], \
        rewrite: {uri: /v1/bookRatings}, route: [{destination: {host: web}}]}]}";
    let route = routes(
        &model(&(WEB.to_owned() + &virtual_service("web", "shop", spec))),
        9090,
    )
    .remove(0);
    let rewritten = |uri: &str, header: Option<&str>| {
        let mut request = Request::get(format!("http://web.shop:9090{uri}"));
        if let Some(header) = header {
            request = request.header(header, "1");
        }
        route.rewritten_path(&request.body(()).unwrap(), 9090)
    };
    assert_eq!(
        rewritten("/ratings/7?x=1", None).as_deref(),
        Some("/v1/bookRatings/7?x=1")
    );
    assert_eq!(
        rewritten("/stars?x=1", None).as_deref(),
        Some("/v1/bookRatings?x=1")
    );
    // A match with no uri condition is Istio's `/` prefix.
    assert_eq!(
        rewritten("/other", Some("x-any")).as_deref(),
        Some("/v1/bookRatingsother")
    );
    let (_, plain) = route_with("timeout: 1s");
    assert_eq!(plain.rewritten_path(&say_hello(), 9090), None);
}

#[test]
fn a_regex_rewrite_and_rewrites_istio_refuses() {
    let (problems, route) = route_with(
        r"rewrite: {uriRegexRewrite: {match: '^/helloworld\.Greeter/(.*)$', rewrite: '/helloworld.v2.Greeter/\1'}}",
    );
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(
        route.rewritten_path(&say_hello(), 9090).as_deref(),
        Some("/helloworld.v2.Greeter/SayHello")
    );
    for (fields, expected) in [
        (
            "rewrite: {uri: /a, uriRegexRewrite: {match: a, rewrite: b}}",
            "rewrite: set at most one of uri and uriRegexRewrite",
        ),
        (
            "rewrite: {uri: ''}",
            "rewrite: set uri, uriRegexRewrite or authority",
        ),
        (
            "rewrite: {authority: \"a\\x01\"}",
            "rewrite.authority: not a valid HTTP header value",
        ),
        (
            "rewrite: {uriRegexRewrite: {match: a, rewrite: ''}}",
            "rewrite.uriRegexRewrite.rewrite: must not be empty",
        ),
        (
            "rewrite: {uriRegexRewrite: {match: '(a', rewrite: b}}",
            "rewrite.uriRegexRewrite.match: \"(a\" is not a valid RE2 regex: unclosed group",
        ),
    ] {
        let (problems, _) = route_with(fields);
        assert_eq!(problems.len(), 1, "{fields}: {problems:#?}");
        assert!(
            problems[0].starts_with(&format!("error: {FIELD}.{expected}")),
            "{fields}: {}",
            problems[0]
        );
    }
}
