//! Routes through the loader and the model, as the proxy asks for them.

use std::{path::Path, time::Duration};

use http::Request;

use super::*;
use crate::config::{load_str, Model};

/// Service `web` in namespace `shop`, with a gRPC port and an HTTP/2 port.
const WEB: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n\
                   spec: {clusterIP: 10.96.0.10, ports: [{name: grpc, port: 9090}, {name: http2-web, port: 8080}]}\n---\n";

fn virtual_service(name: &str, namespace: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
         metadata: {{name: {name}, namespace: {namespace}}}\nspec: {spec}\n---\n"
    )
}

/// The diagnostics of `yaml`, one line each, and its model.
fn load(yaml: &str) -> (Vec<String>, Model) {
    let loaded = load_str(Path::new("r.yaml"), yaml);
    let problems = loaded.diagnostics.iter().map(ToString::to_string).collect();
    (problems, Model::from_resources(&loaded.resources))
}

/// The model of `yaml`, which must load without a problem.
fn model(yaml: &str) -> Model {
    let (problems, model) = load(yaml);
    assert!(problems.is_empty(), "{problems:#?}");
    model
}

fn routes(model: &Model, port: u16) -> Vec<HttpRoute> {
    let port = model
        .service_port_by_authority(&format!("web.shop:{port}"), None)
        .unwrap();
    port.routes().to_vec()
}

/// Istio's default route for port `port` of web.shop: every request to the whole port.
fn istio_default(model: &Model, port: u16) -> HttpRoute {
    let port = model
        .service_port_by_authority(&format!("web.shop:{port}"), None)
        .unwrap();
    HttpRoute::istio_default(port.backend().clone())
}

/// A gRPC call of `method` (`/package.Service/Method`) on `web.shop:9090`.
fn call(method: &str) -> http::request::Builder {
    Request::post(format!("http://web.shop:9090{method}"))
        .header("content-type", "application/grpc")
}

/// The route_name of the route `request` takes on port `port` of web.shop.
fn route_taken(model: &Model, port: u16, request: &Request<()>) -> Option<String> {
    let port = model
        .service_port_by_authority(&format!("web.shop:{port}"), None)
        .unwrap();
    model
        .http_route(&port, request)
        .map(|route| route.route_name.clone())
}

fn say_hello() -> Request<()> {
    call("/helloworld.Greeter/SayHello").body(()).unwrap()
}

#[test]
fn a_service_without_a_virtual_service_gets_istios_default_route() {
    let model = model(WEB);
    for port in [9090, 8080] {
        assert_eq!(routes(&model, port), [istio_default(&model, port)]);
    }
    let route = istio_default(&model, 9090);
    assert_eq!(
        (route.route_name.as_str(), route.timeout, &route.origin),
        ("default", None, &RouteOrigin::Default)
    );
    assert_eq!(route.retries, RetryPolicy::istio_default());
    assert_eq!(
        route_taken(&model, 9090, &say_hello()).as_deref(),
        Some("default")
    );
}

#[test]
fn a_virtual_service_gives_its_routes_in_order_with_their_settings() {
    let routes_yaml = "{hosts: [web], http: [\
        {name: slow, match: [{uri: {prefix: /helloworld.Greeter/}}], timeout: 2s, \
         retries: {attempts: 3, perTryTimeout: 500ms, retryOn: 'unavailable,resource-exhausted,503'}, \
         route: [{destination: {host: web}}]}, \
        {timeout: 1m, retries: {attempts: 1}, route: [{destination: {host: web}}]}]}";
    let model = model(&(WEB.to_owned() + &virtual_service("web", "shop", routes_yaml)));
    let routes = routes(&model, 9090);
    assert_eq!(routes.len(), 2);

    let slow = &routes[0];
    assert_eq!(slow.name.as_deref(), Some("slow"));
    assert_eq!(slow.route_name, "slow");
    assert_eq!(
        slow.origin,
        RouteOrigin::VirtualService {
            namespace: "shop".into(),
            name: "web".into(),
            index: 0
        }
    );
    assert_eq!(slow.timeout, Some(Duration::from_secs(2)));
    let retries = &slow.retries;
    assert_eq!(retries.attempts, 3);
    assert_eq!(retries.per_try_timeout, Some(Duration::from_millis(500)));
    assert_eq!(
        retries.retry_on,
        RetryOn {
            grpc: GrpcCodes::of(&[GrpcCodes::UNAVAILABLE, GrpcCodes::RESOURCE_EXHAUSTED]),
            status_codes: vec![503],
            ..RetryOn::default()
        }
    );

    let rest = &routes[1];
    assert_eq!(rest.route_name, "shop/web.http[1]");
    assert_eq!(rest.timeout, Some(Duration::from_secs(60)));
    // attempts without retryOn: Istio's default conditions, with the attempts written.
    assert_eq!(
        rest.retries,
        RetryPolicy {
            attempts: 1,
            ..RetryPolicy::istio_default()
        }
    );
    assert!(rest.matches.is_empty());
}

#[test]
fn the_first_route_a_request_matches_is_its_route() {
    let spec = "{hosts: [web.shop.svc.cluster.local], http: [\
        {name: hello, match: [{uri: {exact: /helloworld.Greeter/SayHello}}], route: [{destination: {host: web}}]}, \
        {name: greeter, match: [{uri: {prefix: /helloworld.Greeter/}}], route: [{destination: {host: web}}]}, \
        {name: reflection, match: [{uri: {regex: '/grpc\\.reflection\\.v1(alpha)?\\.ServerReflection/.+'}}], route: [{destination: {host: web}}]}]}";
    let model = model(&(WEB.to_owned() + &virtual_service("web", "shop", spec)));
    let taken = |method: &str| route_taken(&model, 9090, &call(method).body(()).unwrap());
    assert_eq!(
        taken("/helloworld.Greeter/SayHello").as_deref(),
        Some("hello")
    );
    assert_eq!(
        taken("/helloworld.Greeter/SayHelloAgain").as_deref(),
        Some("greeter")
    );
    assert_eq!(
        taken("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo").as_deref(),
        Some("reflection")
    );
    // A regex matches the whole path.
    assert_eq!(taken("/grpc.reflection.v1.ServerReflection/"), None);
    // Nothing matches: no route (NR), not the default route.
    assert_eq!(taken("/other.Service/Call"), None);
}

#[test]
fn uri_exact_and_regex_ignore_the_query_and_prefix_does_not() {
    let spec = "{hosts: [web], http: [\
        {name: exact, match: [{uri: {exact: /a}}], route: [{destination: {host: web}}]}, \
        {name: query, match: [{uri: {prefix: '/b?x='}}], route: [{destination: {host: web}}]}]}";
    let model = model(&(WEB.to_owned() + &virtual_service("web", "shop", spec)));
    let get = |uri: &str| {
        let request = Request::get(format!("http://web.shop:8080{uri}"))
            .body(())
            .unwrap();
        route_taken(&model, 8080, &request)
    };
    assert_eq!(get("/a?debug=1").as_deref(), Some("exact"));
    assert_eq!(get("/b?x=1").as_deref(), Some("query"));
    assert_eq!(get("/b"), None);
}

#[test]
fn headers_must_be_present_and_match() {
    let spec = "{hosts: [web], http: [\
        {name: canary, match: [{headers: {x-canary: {exact: 'true'}, x-user: {regex: 'qa-[0-9]+'}}}], route: [{destination: {host: web}}]}, \
        {name: traced, match: [{headers: {X-Trace: {}}}], route: [{destination: {host: web}}]}, \
        {name: tenant, match: [{headers: {x-tenant: {exact: 'acme,other'}}}], route: [{destination: {host: web}}]}]}";
    let model = model(&(WEB.to_owned() + &virtual_service("web", "shop", spec)));
    let with = |headers: &[(&str, &str)]| {
        let mut request = call("/helloworld.Greeter/SayHello");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        route_taken(&model, 9090, &request.body(()).unwrap())
    };
    assert_eq!(
        with(&[("x-canary", "true"), ("x-user", "qa-7")]).as_deref(),
        Some("canary")
    );
    // Every condition of a match must hold; the regex matches the whole value.
    assert_eq!(with(&[("x-canary", "true")]), None);
    assert_eq!(with(&[("x-canary", "true"), ("x-user", "qa-7x")]), None);
    // `{}` asks only for presence, whatever the value; names are case-insensitive.
    assert_eq!(with(&[("x-trace", "")]).as_deref(), Some("traced"));
    assert_eq!(with(&[]), None);
    // A header sent twice is matched as its values joined by a comma.
    assert_eq!(
        with(&[("x-tenant", "acme"), ("x-tenant", "other")]).as_deref(),
        Some("tenant")
    );
    assert_eq!(with(&[("x-tenant", "acme")]), None);
}

#[test]
fn method_authority_and_pseudo_headers() {
    let spec = "{hosts: [web], http: [\
        {name: get, match: [{method: {exact: GET}, authority: {prefix: 'web.shop:'}}], route: [{destination: {host: web}}]}, \
        {name: path, match: [{headers: {':path': {prefix: /v2/}}}], route: [{destination: {host: web}}]}]}";
    let model = model(&(WEB.to_owned() + &virtual_service("web", "shop", spec)));
    let request = |method: &str, uri: &str| {
        let request = Request::builder().method(method).uri(uri).body(()).unwrap();
        route_taken(&model, 8080, &request)
    };
    assert_eq!(
        request("GET", "http://web.shop:8080/").as_deref(),
        Some("get")
    );
    assert_eq!(request("POST", "http://web.shop:8080/"), None);
    assert_eq!(request("GET", "http://web:8080/"), None);
    assert_eq!(
        request("PUT", "http://web.shop:8080/v2/x").as_deref(),
        Some("path")
    );
    // HTTP/1.1 in origin form: the authority is the Host header.
    let host = Request::get("/")
        .header("host", "web.shop:8080")
        .body(())
        .unwrap();
    assert_eq!(route_taken(&model, 8080, &host).as_deref(), Some("get"));
}

#[test]
fn matches_are_ored_and_a_request_head_can_be_parts() {
    let spec = "{hosts: [web], http: [{name: either, match: [\
        {uri: {exact: /a}}, {headers: {x-b: {exact: '1'}}}], route: [{destination: {host: web}}]}]}";
    let model = model(&(WEB.to_owned() + &virtual_service("web", "shop", spec)));
    let route = &routes(&model, 9090)[0];
    let (a, _) = Request::get("http://web.shop:9090/a")
        .body(())
        .unwrap()
        .into_parts();
    let (b, _) = Request::get("http://web.shop:9090/c")
        .header("x-b", "1")
        .body(())
        .unwrap()
        .into_parts();
    let (neither, _) = Request::get("http://web.shop:9090/c")
        .body(())
        .unwrap()
        .into_parts();
    assert!(route.matches(&a, 9090));
    assert!(route.matches(&b, 9090));
    assert!(!route.matches(&neither, 9090));
}

#[test]
fn a_match_for_another_port_never_applies() {
    let spec = "{hosts: [web], http: [\
        {name: grpc-only, match: [{port: 9090}], route: [{destination: {host: web}}]}, \
        {name: mixed, match: [{port: 9090, uri: {prefix: /a}}, {port: 8080, uri: {prefix: /b}}], route: [{destination: {host: web}}]}]}";
    let model = model(&(WEB.to_owned() + &virtual_service("web", "shop", spec)));
    let names = |port| -> Vec<String> {
        routes(&model, port)
            .into_iter()
            .map(|route| route.route_name)
            .collect()
    };
    assert_eq!(names(9090), ["grpc-only", "mixed"]);
    assert_eq!(names(8080), ["mixed"]);
    let mixed = &routes(&model, 8080)[0];
    assert_eq!(mixed.matches.len(), 1, "only the port-8080 match is kept");
    let request = Request::get("http://web.shop:8080/a").body(()).unwrap();
    assert!(!mixed.matches(&request, 8080));
    assert!(!routes(&model, 9090)[0].matches(&request, 8080));
}

#[test]
fn a_port_a_virtual_service_has_no_routes_for_takes_the_next_then_the_default() {
    // Istio builds a port's routes from the first VirtualService with any for that port.
    let first = virtual_service(
        "first",
        "shop",
        "{hosts: [web], http: [{match: [{port: 9090}], route: [{destination: {host: web}}]}]}",
    );
    let second = virtual_service(
        "second",
        "shop",
        "{hosts: [web], http: [{match: [{port: 8080}], route: [{destination: {host: web}}]}]}",
    );
    let (problems, model) = load(&(WEB.to_owned() + &first + &second));
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains("are used only on ports where shop/first has none"));
    assert_eq!(routes(&model, 9090)[0].route_name, "shop/first.http[0]");
    assert_eq!(routes(&model, 8080)[0].route_name, "shop/second.http[0]");

    let model = self::model(&(WEB.to_owned() + &first));
    assert_eq!(routes(&model, 8080), [istio_default(&model, 8080)]);
}

#[test]
fn the_oldest_virtual_service_for_a_host_wins() {
    let dated = |name: &str, time: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
             metadata: {{name: {name}, namespace: shop, creationTimestamp: '{time}'}}\n\
             spec: {{hosts: [web], http: [{{route: [{{destination: {{host: web}}}}]}}]}}\n---\n"
        )
    };
    let yaml = WEB.to_owned()
        + &dated("newer", "2024-06-01T00:00:00Z")
        + &dated("older", "2024-01-01T00:00:00Z");
    let (problems, model) = load(&yaml);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(routes(&model, 9090)[0].route_name, "shop/older.http[0]");
}

#[test]
fn hosts_in_every_form_and_only_the_mesh_scope() {
    let route = "http: [{route: [{destination: {host: web.shop.svc.cluster.local}}]}]";
    let gateway = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: shop}\n\
                   spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]}\n---\n";
    let cases = [
        // Namespace-relative, from another namespace.
        (
            virtual_service("v", "default", &format!("{{hosts: [web.shop], {route}}}")),
            true,
        ),
        (
            virtual_service("v", "shop", &format!("{{hosts: [web], {route}}}")),
            true,
        ),
        (
            virtual_service(
                "v",
                "default",
                &format!("{{hosts: [WEB.shop.svc.cluster.local.], {route}}}"),
            ),
            true,
        ),
        // A short name is in the VirtualService's own namespace.
        (
            virtual_service("v", "default", &format!("{{hosts: [web], {route}}}")),
            false,
        ),
        (
            virtual_service("v", "shop", &format!("{{hosts: [api], {route}}}")),
            false,
        ),
        (
            virtual_service(
                "v",
                "shop",
                &format!("{{hosts: [web], gateways: [gw], {route}}}"),
            ),
            false,
        ),
        (
            virtual_service(
                "v",
                "shop",
                &format!("{{hosts: [web], gateways: [mesh, gw], {route}}}"),
            ),
            true,
        ),
        (
            virtual_service(
                "v",
                "shop",
                &format!("{{hosts: ['*.shop.svc.cluster.local'], {route}}}"),
            ),
            true,
        ),
    ];
    for (vs, applies) in cases {
        let (problems, model) = load(&(WEB.to_owned() + gateway + &vs));
        assert!(problems.is_empty(), "{vs}: {problems:#?}");
        let origin = &routes(&model, 9090)[0].origin;
        assert_eq!(*origin != RouteOrigin::Default, applies, "{vs}");
    }
}

#[test]
fn a_host_of_its_own_beats_a_wildcard() {
    let wildcard = virtual_service(
        "wild",
        "shop",
        "{hosts: ['*.shop.svc.cluster.local'], http: [{route: [{destination: {host: web}}]}]}",
    );
    let own = virtual_service(
        "own",
        "shop",
        "{hosts: [web], http: [{route: [{destination: {host: web}}]}]}",
    );
    let model = model(&(WEB.to_owned() + &wildcard + &own));
    assert_eq!(routes(&model, 9090)[0].route_name, "shop/own.http[0]");
}

#[test]
fn retry_settings() {
    let policy = |retries: &str| {
        let spec = format!("{{hosts: [web], http: [{{retries: {retries}, route: [{{destination: {{host: web}}}}]}}]}}");
        let (problems, model) = load(&(WEB.to_owned() + &virtual_service("web", "shop", &spec)));
        (problems, routes(&model, 9090)[0].retries.clone())
    };
    // attempts 0, or absent: no retries.
    assert_eq!(policy("{attempts: 0}"), (vec![], RetryPolicy::disabled()));
    assert_eq!(policy("{}"), (vec![], RetryPolicy::disabled()));
    let (problems, disabled) = policy("{perTryTimeout: 1s, retryOn: 5xx}");
    assert_eq!(disabled, RetryPolicy::disabled());
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].starts_with("warning: r.yaml#2 VirtualService/shop/web: spec.http[0].retries.attempts: attempts 0 (or absent) disables retries"), "{}", problems[0]);

    let (problems, on) = policy(
        "{attempts: 2, retryOn: '5xx, gateway-error,reset,connect-failure,refused-stream,retriable-4xx,\
         retriable-status-codes,cancelled,deadline-exceeded,internal,429,409,envoy-ratelimited,bogus,600'}",
    );
    assert_eq!(
        on.retry_on,
        RetryOn {
            server_error: true,
            gateway_error: true,
            reset: true,
            connect_failure: true,
            refused_stream: true,
            status_codes: vec![409, 429],
            grpc: GrpcCodes::of(&[
                GrpcCodes::CANCELLED,
                GrpcCodes::DEADLINE_EXCEEDED,
                GrpcCodes::INTERNAL
            ]),
        }
    );
    let field = "warning: r.yaml#2 VirtualService/shop/web: spec.http[0].retries.retryOn: ";
    assert_eq!(
        problems,
        [
            format!("{field}envoy-ratelimited: not supported by strait; ignored"),
            format!("{field}bogus is neither a retry condition nor an HTTP status code (Istio's validation refuses it); ignored"),
            format!("{field}600 is neither a retry condition nor an HTTP status code (Istio's validation refuses it); ignored"),
        ]
    );

    // A written retryOn replaces the default's 503; codes alone retry only those codes.
    let (_, codes) = policy("{attempts: 1, retryOn: '502,503'}");
    assert_eq!(
        codes.retry_on,
        RetryOn {
            status_codes: vec![502, 503],
            ..RetryOn::default()
        }
    );
    let (_, unavailable) = policy("{attempts: 1, retryOn: unavailable}");
    assert!(!unavailable.retry_on.retries(TryOutcome::Response {
        status: 503,
        grpc: None
    }));
    assert!(unavailable.retry_on.retries(TryOutcome::Response {
        status: 200,
        grpc: Some(GrpcCodes::UNAVAILABLE)
    }));
}

#[test]
fn retry_remote_localities_is_reported_and_ignored() {
    let spec = "{hosts: [web], http: [{retries: {attempts: 2, retryRemoteLocalities: true}, route: [{destination: {host: web}}]}]}";
    let (problems, model) = load(&(WEB.to_owned() + &virtual_service("web", "shop", spec)));
    assert_eq!(
        problems,
        ["warning: r.yaml#2 VirtualService/shop/web: spec.http[0].retries.retryRemoteLocalities: not supported by strait; ignored"]
    );
    assert_eq!(routes(&model, 9090)[0].retries.attempts, 2);
}

#[test]
fn timeouts() {
    let timeout = |value: &str| {
        let spec = format!("{{hosts: [web], http: [{{timeout: {value}, route: [{{destination: {{host: web}}}}]}}]}}");
        let (problems, model) = load(&(WEB.to_owned() + &virtual_service("web", "shop", &spec)));
        let timeout = model
            .service("web", "shop")
            .and_then(|service| service.ports[0].routes.first().map(|route| route.timeout));
        (problems, timeout)
    };
    assert_eq!(
        timeout("500ms"),
        (vec![], Some(Some(Duration::from_millis(500))))
    );
    assert_eq!(
        timeout("1.5s"),
        (vec![], Some(Some(Duration::from_millis(1500))))
    );
    let (problems, zero) = timeout("0s");
    assert_eq!(zero, Some(None), "0s: no timeout");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains("spec.http[0].timeout: 0s means no timeout"));
    let (problems, bad) = timeout("'10'");
    assert!(
        problems[0].starts_with(
            "error: r.yaml#2 VirtualService/shop/web: spec.http[0].timeout: invalid value"
        ),
        "{problems:#?}"
    );
    assert_eq!(
        bad,
        Some(None),
        "the VirtualService is dropped: the default route"
    );
}

#[test]
fn bad_regexes_and_header_names_drop_the_virtual_service() {
    let vs = |matches: &str| {
        let spec = format!("{{hosts: [web], http: [{{match: [{matches}], route: [{{destination: {{host: web}}}}]}}]}}");
        let (problems, model) = load(&(WEB.to_owned() + &virtual_service("web", "shop", &spec)));
        (problems, routes(&model, 9090))
    };
    let (problems, routes) = vs("{uri: {regex: '/a(b'}}");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].starts_with("error: r.yaml#2 VirtualService/shop/web: spec.http[0].match[0].uri.regex: \"/a(b\" is not a valid RE2 regex: unclosed group"), "{}", problems[0]);
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].origin, RouteOrigin::Default);

    let (problems, routes) = vs("{headers: {'x user': {exact: a}}}");
    assert_eq!(
        problems,
        ["error: r.yaml#2 VirtualService/shop/web: spec.http[0].match[0].headers.x user: not a valid HTTP header name; the document is ignored"]
    );
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].origin, RouteOrigin::Default);

    let (problems, _) = vs("{uri: {exact: /a, prefix: /b}}");
    assert!(
        problems[0]
            .contains("spec.http[0].match[0].uri: set exactly one of exact, prefix and regex"),
        "{problems:#?}"
    );
    let (problems, _) = vs("{headers: {x-a: {exact: a, regex: a}}}");
    assert!(
        problems[0].contains("headers.x-a: set at most one of exact, prefix and regex"),
        "{problems:#?}"
    );
}

#[test]
fn a_jwt_claim_match_never_applies() {
    let spec = "{hosts: [web], http: [\
        {name: claims, match: [{headers: {'@request.auth.claims.group': {exact: admin}}}], route: [{destination: {host: web}}]}, \
        {name: claims-or-path, match: [{headers: {'@request.auth.claims.group': {exact: admin}}}, {uri: {prefix: /}}], route: [{destination: {host: web}}]}]}";
    let (problems, model) = load(&(WEB.to_owned() + &virtual_service("web", "shop", spec)));
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].contains("spec.http[0].match[0].headers.@request.auth.claims.group: JWT claim matches are not supported by strait: this match never applies"));
    let names: Vec<String> = routes(&model, 9090)
        .into_iter()
        .map(|r| r.route_name)
        .collect();
    assert_eq!(names, ["claims-or-path"]);
    assert_eq!(routes(&model, 9090)[0].matches.len(), 1);
}

#[test]
fn the_seed_manifests_routes() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/seed-manifests.yaml"
    ))
    .unwrap();
    let (_, model) = load(&text);
    let port = |authority: &str| model.service_port_by_authority(authority, None).unwrap();
    // grpc-canary wins grpc-service over grpc-with-retries: its one route, Istio's retries.
    let grpc = port("grpc-service:50051");
    assert_eq!(grpc.routes().len(), 1);
    let canary = &grpc.routes()[0];
    assert_eq!(canary.route_name, "default/grpc-canary.http[0]");
    assert_eq!(canary.retries, RetryPolicy::istio_default());
    assert_eq!(canary.timeout, None);
    let request = Request::post("http://grpc-service:50051/helloworld.Greeter/SayHello")
        .body(())
        .unwrap();
    assert_eq!(
        model
            .http_route(&grpc, &request)
            .map(|r| r.route_name.as_str()),
        Some("default/grpc-canary.http[0]")
    );
    // 90/10 over the subsets of grpc-service-dr (no Pods in the seed: no endpoints, UH).
    let subsets: Vec<(Option<&str>, f64, usize)> = canary
        .destinations
        .iter()
        .map(|(destination, share)| {
            let backend = destination.target.backend().unwrap();
            (backend.subset.as_deref(), share, backend.endpoints.len())
        })
        .collect();
    assert_eq!(subsets, [(Some("v1"), 0.9, 0), (Some("v2"), 0.1, 0)]);
    // server-fault delays every request to server by 10 s, then sends it to subset v1, which
    // no DestinationRule defines (Istio: 503, no cluster).
    let fault = &port("server").routes()[0];
    assert_eq!(fault.route_name, "default/server-fault.http[0]");
    let delay = fault.fault.delay.unwrap();
    assert_eq!(
        (delay.duration, delay.percentage),
        (Duration::from_secs(10), Percentage::ALWAYS)
    );
    assert_eq!(fault.fault.abort, None);
    assert!(matches!(
        fault.destinations.pick(0).target,
        Target::Unresolved(Unresolved::NoSubset { .. })
    ));
    // grpc-ingress is bound to a gateway only; http2-service has no VirtualService.
    let http2 = port("http2-service.default");
    assert_eq!(
        http2.routes(),
        [HttpRoute::istio_default(http2.backend().clone())]
    );
}

mod actions;
mod destinations;
