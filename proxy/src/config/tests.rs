//! The seed manifests and `strait validate`, end to end through the public entry points.

use std::path::PathBuf;

use super::*;

fn seed() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/seed-manifests.yaml"
    ))
}

fn validate(paths: &[PathBuf], strict: bool) -> (i32, String) {
    let mut out = Vec::new();
    let code = validate_command(paths, strict, &mut out);
    (code, String::from_utf8(out).unwrap())
}

#[test]
fn seed_reports_exactly_its_three_problems() {
    let (code, out) = validate(&[seed()], false);
    println!("{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let file = seed().display().to_string();

    // grpc-with-retries is document 5: its route goes to a host no Service has.
    assert!(
        lines[0].starts_with(&format!(
            "warning: {file}#5 VirtualService/default/grpc-with-retries: "
        )),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("spec.http[0].route[0].destination.host: grpc-service.default.svc.cluster.cluster.local matches no Service"));
    assert!(lines[0].contains("NR/UH"));

    // It binds the same host as grpc-canary (document 3), which wins.
    assert!(
        lines[1].starts_with(&format!(
            "warning: {file}#5 VirtualService/default/grpc-with-retries: spec.hosts[0]: "
        )),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains(&format!("grpc-service.default.svc.cluster.local is also bound by VirtualService default/grpc-canary ({file}#3)")));
    assert!(lines[1].contains("default/grpc-canary wins because neither has a creationTimestamp and it comes first in load order"));

    // http2-connection-pool is document 6, with the wrong API group.
    assert!(
        lines[2].starts_with(&format!(
            "error: {file}#6 DestinationRule/default/http2-connection-pool: apiVersion: "
        )),
        "{}",
        lines[2]
    );
    assert!(lines[2].contains("networking.io/v1 does not serve DestinationRule"));
    assert!(lines[2].ends_with("the document is ignored"));

    // grpc-gateway's Secret is not among the manifests: not a problem of the manifests (a
    // strait serving that Gateway logs it).

    assert_eq!(code, 1);
}

#[test]
fn seed_keeps_every_other_document() {
    let loaded = load(&[seed()]).unwrap();
    assert!(loaded.is_complete());
    assert_eq!(loaded.resources.len(), 9, "ten documents, one ignored");
    let model = Model::from_resources(&loaded.resources);
    let names: Vec<String> = model.services().map(Service::fqdn).collect();
    assert_eq!(
        names,
        [
            "grpc-service.default.svc.cluster.local",
            "http2-service.default.svc.cluster.local",
            "server.default.svc.cluster.local"
        ]
    );
    // The seed's Services have no cluster IPs: reachable by name, nothing to capture.
    assert!(model.captured_addrs().is_empty());
    let grpc = model
        .service_port_by_authority("grpc-service:50051", None)
        .unwrap();
    assert_eq!(
        grpc.classification().protocol,
        crate::classify::Protocol::Grpc
    );
    let server = model.service_port_by_authority("server", None).unwrap();
    assert_eq!(
        (server.port(), server.classification().protocol),
        (8080, crate::classify::Protocol::Grpc)
    );
    let http2 = model
        .service_port_by_authority("http2-service.default", None)
        .unwrap();
    assert_eq!(
        http2.classification().protocol,
        crate::classify::Protocol::Http2
    );
}

#[test]
fn strict_turns_warnings_into_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("svc.yaml");
    std::fs::write(&file, "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}], colour: blue}\n")
        .unwrap();
    let (code, out) = validate(std::slice::from_ref(&file), false);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "warning: {}#1 Service/default/a: spec.colour: unknown field; ignored\n",
            file.display()
        )
    );
    let (code, out) = validate(&[file], true);
    assert_eq!(code, 1);
    assert!(out.starts_with("error: "), "{out}");
}

#[test]
fn clean_files_print_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n",
    )
    .unwrap();
    assert_eq!(validate(&[dir.path().to_owned()], true), (0, String::new()));
}

#[test]
fn a_missing_path_is_a_usage_error() {
    let (code, out) = validate(&[PathBuf::from("/nonexistent/strait.yaml")], false);
    assert_eq!(code, 2);
    assert_eq!(
        out,
        "error: /nonexistent/strait.yaml: no such file or directory\n"
    );
}
