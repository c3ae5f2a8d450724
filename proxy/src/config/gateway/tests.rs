//! Gateways from manifests: credentials from Secrets, the server a host or SNI picks, the
//! routes merged for a host, and what validation says about what cannot be served.

use std::{path::Path, sync::Arc};

use base64::Engine;

use super::*;
use crate::config::{load_str, Model};

fn pem(host: &str) -> (String, String) {
    let issued = rcgen::generate_simple_self_signed(vec![host.to_owned()]).unwrap();
    (issued.cert.pem(), issued.key_pair.serialize_pem())
}

fn indented(text: &str) -> String {
    text.lines().map(|line| format!("    {line}\n")).collect()
}

/// A Secret with `stringData` entries.
fn secret(name: &str, entries: &[(&str, &str)]) -> String {
    let data: String = entries
        .iter()
        .map(|(key, value)| format!("  {key}: |\n{}", indented(value)))
        .collect();
    format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/tls\nstringData:\n{data}---\n")
}

fn gateway(servers: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers: {servers}\n---\n")
}

fn loaded(yaml: &str) -> (Model, Vec<String>) {
    let loaded = load_str(Path::new("g.yaml"), yaml);
    let problems = loaded.diagnostics.iter().map(ToString::to_string).collect();
    (Model::from_resources(&loaded.resources), problems)
}

fn target(port: u16) -> GatewayTarget {
    let labels = [("istio".to_owned(), "ingressgateway".to_owned())];
    GatewayTarget {
        labels: Arc::new(labels.into_iter().collect()),
        port,
    }
}

fn unserved(model: &Model) -> Vec<(usize, Unserved)> {
    let labels = target(0).labels;
    let gateway = model
        .gateways()
        .served(&labels)
        .next()
        .expect("the Gateway is served");
    gateway.unserved.clone()
}

fn credential_of(model: &Model, port: u16, host: &str) -> Option<Arc<Credential>> {
    match &model.gateways().server_for(&target(port), host)?.1.mode {
        ServerMode::Terminate(credential) => Some(credential.clone()),
        _ => None,
    }
}

#[test]
fn credentials_from_string_data_and_base64_data() {
    let (a_crt, a_key) = pem("a.example.com");
    let (b_crt, b_key) = pem("b.example.com");
    let base64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let data_secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: b}}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n---\n",
        base64(&b_crt),
        base64(&b_key)
    );
    let yaml = secret("a", &[("tls.crt", &a_crt), ("tls.key", &a_key)])
        + &data_secret
        + &gateway(
            "[{port: {number: 443, name: a, protocol: HTTPS}, hosts: [a.example.com], tls: {mode: SIMPLE, credentialName: a}}, \
              {port: {number: 443, name: b, protocol: HTTPS}, hosts: ['*.example.com'], tls: {mode: SIMPLE, credentialName: b}}]",
        );
    let (model, problems) = loaded(&yaml);
    assert!(problems.is_empty(), "{problems:?}");
    let a = credential_of(&model, 443, "a.example.com").unwrap();
    let b = credential_of(&model, 443, "other.example.com").unwrap();
    // The exact host's certificate for its name, the wildcard's for the rest.
    assert_ne!(a, b);
    assert!(a.client_verifier.is_none());
    // No SNI: only a `*` server would do.
    assert!(model.gateways().server_for(&target(443), "*").is_none());
    assert!(model
        .gateways()
        .server_for(&target(443), "example.org")
        .is_none());
}

#[test]
fn gateways_are_served_by_their_selector() {
    let (crt, key) = pem("a.example.com");
    let yaml = secret("a", &[("tls.crt", &crt), ("tls.key", &key)])
        + &gateway("[{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]");
    let (model, _) = loaded(&yaml);
    let mut labels = (*target(80).labels).clone();
    assert_eq!(model.gateways().served(&labels).count(), 1);
    labels.insert("app".into(), "edge".into());
    assert_eq!(model.gateways().served(&labels).count(), 1);
    labels.remove("istio");
    assert_eq!(model.gateways().served(&labels).count(), 0);
}

#[test]
fn mutual_reads_the_ca_from_the_cacert_secret() {
    let (crt, key) = pem("a.example.com");
    let (ca, _) = pem("ca.example.com");
    let server = "[{port: {number: 443, name: a, protocol: HTTPS}, hosts: [a.example.com], tls: {mode: MUTUAL, credentialName: a}}]";
    let without_ca = secret("a", &[("tls.crt", &crt), ("tls.key", &key)]) + &gateway(server);
    let (model, problems) = loaded(&without_ca);
    assert!(credential_of(&model, 443, "a.example.com").is_none());
    // A Secret not in the config is no problem of the manifests; a strait serving the
    // Gateway says why the server is not served.
    assert!(problems.is_empty(), "{problems:?}");
    let (index, why) = &unserved(&model)[0];
    assert_eq!(*index, 0);
    assert!(why.secret_missing);
    assert_eq!(why.message, "MUTUAL needs the clients' CA: Secret default/a has no ca.crt and Secret default/a-cacert is not loaded; the server is not served");
    let with_ca = without_ca + &secret("a-cacert", &[("ca.crt", &ca)]);
    let (model, problems) = loaded(&with_ca);
    assert!(problems.is_empty(), "{problems:?}");
    let credential = credential_of(&model, 443, "a.example.com").unwrap();
    assert!(credential.client_verifier.is_some());
}

#[test]
fn unusable_servers_are_reported_and_the_rest_served() {
    let (crt, key) = pem("a.example.com");
    let (_, other_key) = pem("b.example.com");
    let yaml = secret("mismatched", &[("tls.crt", &crt), ("tls.key", &other_key)])
        + &secret("bad", &[("tls.crt", "not a certificate"), ("tls.key", &key)])
        + &gateway(
            "[{port: {number: 443, name: a, protocol: HTTPS}, hosts: [a.example.com], tls: {mode: SIMPLE, credentialName: missing}}, \
              {port: {number: 443, name: b, protocol: HTTPS}, hosts: [b.example.com], tls: {mode: SIMPLE, credentialName: mismatched}}, \
              {port: {number: 443, name: c, protocol: HTTPS}, hosts: [c.example.com], tls: {mode: SIMPLE, credentialName: bad}}, \
              {port: {number: 443, name: d, protocol: HTTPS}, hosts: [d.example.com], tls: {mode: ISTIO_MUTUAL}}, \
              {port: {number: 443, name: e, protocol: TLS}, hosts: [e.example.com], tls: {mode: SIMPLE, credentialName: x}}, \
              {port: {number: 80, name: f, protocol: HTTP}, hosts: ['*']}]",
        );
    let (model, problems) = loaded(&yaml);
    let field = |n: usize, rest: &str| {
        format!("warning: g.yaml#3 Gateway/default/gw: spec.servers[{n}].{rest}")
    };
    // Each server strait cannot serve is known with why; all but the missing Secret are
    // problems of the manifests.
    let unserved = unserved(&model);
    assert_eq!(unserved.len(), 5, "{unserved:?}");
    assert!(unserved[0].1.secret_missing);
    assert_eq!(
        unserved[0].1.message,
        "Secret default/missing is not loaded; the server is not served"
    );
    assert!(unserved[1..].iter().all(|(_, why)| !why.secret_missing));
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert!(
        problems[0].starts_with(&field(
            1,
            "tls.credentialName: Secret default/mismatched tls.key: does not match tls.crt"
        )),
        "{}",
        problems[0]
    );
    assert!(
        problems[1].starts_with(&field(
            2,
            "tls.credentialName: Secret default/bad tls.crt: no PEM certificate"
        )),
        "{}",
        problems[1]
    );
    assert_eq!(
        problems[2],
        field(
            3,
            "tls.mode: ISTIO_MUTUAL is not supported by strait; the server is not served"
        )
    );
    assert!(
        problems[3].starts_with(&field(
            4,
            "port.protocol: TLS with TLS mode SIMPLE is not supported"
        )),
        "{}",
        problems[3]
    );
    let served: Vec<u16> = model
        .gateways()
        .servers_on(&target(80))
        .map(|(_, s)| s.port)
        .collect();
    assert_eq!(served, [80]);
    assert_eq!(model.gateways().servers_on(&target(443)).count(), 0);
}

#[test]
fn routes_of_every_virtual_service_bound_to_the_gateway_for_a_host() {
    let service = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.96.0.9, ports: [{name: http, port: 80}]}\n---\n";
    let vs = |name: &str, namespace: &str, host: &str, prefix: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
                 spec: {{hosts: ['{host}'], gateways: [default/gw], http: [{{match: [{{uri: {{prefix: {prefix}}}}}], route: [{{destination: {{host: web.default.svc.cluster.local}}}}]}}]}}\n---\n")
    };
    let yaml = String::from(service)
        + &gateway("[{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*.example.com', 'team/only.example.org']}]")
        + &vs("first", "default", "a.example.com", "/first")
        + &vs("second", "default", "a.example.com", "/second")
        + &vs("wild", "default", "*.example.com", "/wild")
        + &vs("outsider", "default", "only.example.org", "/outsider");
    let (model, problems) = loaded(&yaml);
    assert!(
        problems.iter().all(|p| !p.contains("Gateway")),
        "{problems:?}"
    );
    let route = |host: &str, path: &str| {
        let request = http::Request::get(format!("http://{host}{path}"))
            .body(())
            .unwrap();
        model
            .gateways()
            .http_route(&target(80), host, (&request).into())
            .map(|route| route.route_name.clone())
    };
    // Merged in order for the host; the wildcard VirtualService serves other hosts.
    assert_eq!(
        route("a.example.com", "/first").as_deref(),
        Some("default/first.http[0]")
    );
    assert_eq!(
        route("a.example.com", "/second").as_deref(),
        Some("default/second.http[0]")
    );
    assert_eq!(route("a.example.com", "/wild"), None);
    assert_eq!(
        route("b.example.com", "/wild").as_deref(),
        Some("default/wild.http[0]")
    );
    // `team/only.example.org` admits VirtualServices of namespace team only.
    assert_eq!(route("only.example.org", "/outsider"), None);
    assert_eq!(route("nobody.example.net", "/first"), None);
}
