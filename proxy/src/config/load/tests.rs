use std::fs;

use super::*;
use crate::config::resources::Object;

fn lines(loaded: &Loaded) -> Vec<String> {
    loaded.diagnostics.iter().map(ToString::to_string).collect()
}

fn names(loaded: &Loaded) -> Vec<String> {
    loaded
        .resources
        .iter()
        .map(|item| item.resource.metadata().name.clone())
        .collect()
}

const SERVICE_A: &str =
    "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n";

#[test]
fn a_malformed_document_names_file_and_document_and_the_rest_load() {
    let text = format!(
        "# header\n---\n{SERVICE_A}---\nkind: Service\nspec: [unclosed\n---\n{}",
        SERVICE_A.replace("{name: a}", "{name: b}")
    );
    let loaded = load_str(Path::new("m.yaml"), &text);
    assert_eq!(names(&loaded), ["a", "b"]);
    let lines = lines(&loaded);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("error: m.yaml#2 -/-/-: -: not valid YAML: "),
        "{}",
        lines[0]
    );
    // Counted from the top of the file: the bad flow sequence starts on line 9.
    assert!(
        lines[0].contains("flow sequence at line 9 column 7"),
        "{}",
        lines[0]
    );
    assert!(!loaded.is_complete());
}

#[test]
fn a_wrong_type_names_the_field() {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: web}\nspec: {ports: [{port: 80, targetPort: [1]}]}\n";
    let loaded = load_str(Path::new("t.yaml"), text);
    assert!(loaded.resources.is_empty());
    let lines = lines(&loaded);
    assert!(
        lines[0].starts_with(
            "error: t.yaml#1 Service/web/a: spec.ports[0].targetPort: invalid type: sequence"
        ),
        "{}",
        lines[0]
    );
    assert!(!loaded.is_complete());
}

#[test]
fn out_of_range_ports_are_errors() {
    let loaded = load_str(
        Path::new("p.yaml"),
        &SERVICE_A.replace("port: 80", "port: 70000"),
    );
    assert!(lines(&loaded)[0].contains("spec.ports[0].port: invalid value: integer `70000`, expected a port number from 1 to 65535"));
}

#[test]
fn missing_and_unknown_kinds() {
    let text = "apiVersion: v1\nmetadata: {name: x}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\n- a list\n";
    let loaded = load_str(Path::new("k.yaml"), text);
    let lines = lines(&loaded);
    assert_eq!(
        lines[0],
        "error: k.yaml#1 -/default/x: kind: kind is required (a string); the document is ignored"
    );
    assert_eq!(lines[1], "warning: k.yaml#2 Deployment/default/d: kind: apps/v1 Deployment is not a kind strait reads; ignored");
    assert!(
        lines[2].starts_with("error: k.yaml#3 -/-/-: -: a manifest must be a mapping"),
        "{}",
        lines[2]
    );
}

#[test]
fn unknown_api_version_drops_only_that_document() {
    let text = "apiVersion: networking.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec: {host: a}\n";
    let loaded = load_str(Path::new("r.yaml"), text);
    assert!(loaded.resources.is_empty());
    assert!(
        loaded.is_complete(),
        "understood and ignored, not undecodable"
    );
    assert!(loaded.has_errors(false));
}

#[test]
fn cluster_scoped_kinds_have_no_namespace() {
    let loaded = load_str(
        Path::new("n.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod, colour: x}\n",
    );
    assert_eq!(
        lines(&loaded),
        ["warning: n.yaml#1 Namespace/-/prod: metadata.colour: unknown field; ignored"]
    );
}

#[test]
fn empty_documents_are_skipped_but_counted() {
    let text = format!(
        "---\n---\n# only a comment\n---\n~\n---\n{}",
        SERVICE_A.replace("port: 80", "port: 0")
    );
    let lines = lines(&load_str(Path::new("e.yaml"), &text));
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("error: e.yaml#4 Service/default/a: spec.ports[0].port"),
        "{}",
        lines[0]
    );
}

#[test]
fn directories_load_recursively_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, name: &str| {
        let path = dir.path().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(
            path,
            SERVICE_A.replace("{name: a}", &format!("{{name: {name}}}")),
        )
        .unwrap();
    };
    write("b.yaml", "b");
    write("a.yml", "a");
    write("sub/c.yaml", "c");
    write("notes.txt", "ignored-extension");
    write(".hidden.yaml", "ignored-hidden");
    write("..data/d.yaml", "ignored-configmap-copy");
    let loaded = load(&[dir.path().to_owned()]).unwrap();
    assert_eq!(names(&loaded), ["a", "b", "c"]);
    assert!(loaded.diagnostics.is_empty());
}

#[test]
fn unreadable_paths_are_load_errors() {
    let err = load(&[PathBuf::from("/nonexistent")]).unwrap_err();
    assert!(matches!(err, LoadError::NotFound { .. }), "{err}");
}

#[test]
fn duplicates_keep_the_first() {
    let loaded = load_str(Path::new("d.yaml"), &format!("{SERVICE_A}---\n{SERVICE_A}"));
    assert_eq!(names(&loaded), ["a"]);
    assert_eq!(
        lines(&loaded),
        ["error: d.yaml#2 Service/default/a: metadata.name: Service default/a is already defined at d.yaml#1; the document is ignored"]
    );
}
