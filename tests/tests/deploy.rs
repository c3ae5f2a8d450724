//! The Kubernetes install (`deploy/`): every manifest passes `kubernetes-validate --strict`
//! offline, as written and as kustomize renders the base, and the rendered objects hold what the
//! install promises: read-only RBAC on exactly the kinds strait reads, named capabilities
//! instead of `privileged`, probes on the metrics port, and a rolling update that keeps a node
//! served. Needs `kubectl` (kustomize) and `pip install kubernetes-validate`; skipped loudly
//! without them (a failure in CI).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{ensure, Context, Result};
use serde::Deserialize;
use serde_yaml::Value;
use strait_tests::lab::skip_or_fail;

/// `deploy/` in the workspace.
fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Whether `program --help` runs; if not, says the test is skipped.
fn have(test: &str, program: &str, install: &str) -> bool {
    let runs = Command::new(program)
        .arg("--help")
        .output()
        .is_ok_and(|out| out.status.success());
    runs || skip_or_fail(test, &format!("{program} not installed: {install}"))
}

/// `kubernetes-validate --strict` on `files`; fails with its report.
fn validate(files: &[PathBuf]) -> Result<()> {
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--quiet"])
        .args(files)
        .output()
        .context("running kubernetes-validate")?;
    let report = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "kubernetes-validate --strict:\n{report}"
    );
    // --quiet prints only warnings and failures: a kind without a schema is a warning.
    ensure!(
        report.trim().is_empty(),
        "kubernetes-validate --strict:\n{report}"
    );
    Ok(())
}

/// The manifests as written: YAML files under `deploy/`, but not the Helm chart (templates,
/// not manifests, until rendered) or kustomize's own file.
fn plain_manifests(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if path.is_dir() {
            if name != "helm" {
                plain_manifests(&path, found)?;
            }
        } else if name.ends_with(".yaml") && name != "kustomization.yaml" {
            found.push(path);
        }
    }
    Ok(())
}

/// `kubectl kustomize deploy/kubernetes`, as documents.
fn rendered() -> Result<(String, Vec<Value>)> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(deploy().join("kubernetes"))
        .output()
        .context("running kubectl kustomize")?;
    ensure!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let documents = serde_yaml::Deserializer::from_str(&text)
        .map(Value::deserialize)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((text, documents))
}

fn object<'a>(documents: &'a [Value], kind: &str) -> Result<&'a Value> {
    documents
        .iter()
        .find(|d| d["kind"] == kind)
        .with_context(|| format!("no {kind} rendered"))
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn every_manifest_passes_strict_offline_validation() -> Result<()> {
    const TEST: &str = "every_manifest_passes_strict_offline_validation";
    if !have(
        TEST,
        "kubernetes-validate",
        "pip install kubernetes-validate",
    ) || !have(TEST, "kubectl", "apt-get install kubectl")
    {
        return Ok(());
    }
    let mut files = Vec::new();
    plain_manifests(&deploy(), &mut files)?;
    ensure!(files.len() >= 4, "too few manifests found: {files:?}");
    validate(&files)?;

    let (text, documents) = rendered()?;
    let kinds: BTreeSet<_> = documents
        .iter()
        .filter_map(|d| d["kind"].as_str())
        .collect();
    let expected = [
        "ClusterRole",
        "ClusterRoleBinding",
        "DaemonSet",
        "Namespace",
        "ServiceAccount",
    ];
    assert_eq!(kinds, expected.into_iter().collect(), "{text}");
    let file = std::env::temp_dir().join(format!("strait-deploy-{}.yaml", std::process::id()));
    std::fs::write(&file, &text)?;
    let validated = validate(std::slice::from_ref(&file));
    let _ = std::fs::remove_file(&file);
    validated
}

/// What strait may do with the API: get, list and watch the kinds it reads, nothing more
/// (no Secrets: only a strait that serves Gateways reads those).
#[test]
fn the_cluster_role_reads_exactly_the_kinds_strait_watches() -> Result<()> {
    const TEST: &str = "the_cluster_role_reads_exactly_the_kinds_strait_watches";
    if !have(TEST, "kubectl", "apt-get install kubectl") {
        return Ok(());
    }
    let (_, documents) = rendered()?;
    let role = object(&documents, "ClusterRole")?;
    let mut granted = BTreeSet::new();
    for rule in role["rules"].as_sequence().context("rules")? {
        assert_eq!(
            strings(&rule["verbs"]),
            set(&["get", "list", "watch"]),
            "{rule:?}"
        );
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                granted.insert(format!("{group}/{resource}"));
            }
        }
    }
    let read = [
        "/namespaces",
        "/pods",
        "/services",
        "networking.istio.io/destinationrules",
        "networking.istio.io/gateways",
        "networking.istio.io/virtualservices",
        "networking.istio.io/workloadentries",
    ];
    assert_eq!(granted, set(&read));
    Ok(())
}

#[test]
fn the_daemon_set_names_its_capabilities_and_probes_itself() -> Result<()> {
    const TEST: &str = "the_daemon_set_names_its_capabilities_and_probes_itself";
    if !have(TEST, "kubectl", "apt-get install kubectl") {
        return Ok(());
    }
    let (_, documents) = rendered()?;
    let daemon_set = object(&documents, "DaemonSet")?;
    let spec = &daemon_set["spec"];
    let update = &spec["updateStrategy"]["rollingUpdate"];
    assert_eq!(update["maxUnavailable"], 0, "a node must stay served");
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["privileged"], false);
    assert_eq!(strings(&security["capabilities"]["drop"]), set(&["ALL"]));
    assert_eq!(
        strings(&security["capabilities"]["add"]),
        set(&["BPF", "NET_ADMIN", "SYS_ADMIN", "SYS_RESOURCE"])
    );
    let metrics_port = container["ports"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "http-metrics")
        .context("no http-metrics port")?;
    assert_eq!(metrics_port["containerPort"], 15020);
    let liveness = &container["livenessProbe"]["httpGet"];
    assert_eq!(liveness["path"], "/healthz/ready");
    assert_eq!(liveness["port"], 15020, "the metrics port, not the admin");
    // Readiness asks this instance, through the file it writes: the ports are shared with the
    // strait it replaces.
    let readiness = strings(&container["readinessProbe"]["exec"]["command"]);
    let ready_file = "--ready-file=/tmp/ready";
    assert!(
        readiness.contains("probe") && readiness.contains(ready_file),
        "{readiness:?}"
    );
    let args = strings(&container["args"]);
    assert!(args.contains(ready_file), "{args:?}");
    assert!(args.contains("--admin=127.0.0.1:15000"), "{args:?}");
    assert!(args.contains("--kubernetes"), "{args:?}");
    assert!(args.contains("--enroll=ambient"), "{args:?}");
    assert!(args.contains("--node-name=$(NODE_NAME)"), "{args:?}");
    let mounts: BTreeSet<_> = container["volumeMounts"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    for path in ["/host/sys/fs/cgroup", "/sys/fs/bpf"] {
        assert!(mounts.contains(path), "{path} not mounted: {mounts:?}");
    }
    for limit in ["requests", "limits"] {
        let resources = &container["resources"][limit];
        assert!(
            resources["cpu"].is_string() && resources["memory"].is_string(),
            "{limit}"
        );
    }
    Ok(())
}
