//! The seed's TLS ingress gateway: strait serves `lab-ingress` on the node's address; the
//! client calls `greeter.example.com` through it over TLS (the host as SNI, ALPN h2), trusting
//! only the certificate made for this lab, and each call is balanced on its own.

use std::{ffi::OsString, fs, path::PathBuf};

use anyhow::{Context, Result};
use strait_tests::{
    greeter::{CallOptions, Implementation},
    lab::{Lab, Pod},
};

use super::{failures, Played};
use crate::lab::REPLICAS;

pub const HOST: &str = "greeter.example.com";
const PORT: u16 = 443;
const SECRET: &str = "greeter-example-tls";
const CALLS: u64 = 30;

/// Where this lab's certificate and Secret are kept (one directory per lab).
fn dir(lab: &Lab) -> PathBuf {
    std::env::temp_dir().join(format!("strait-{}-ingress", lab.node_netns()))
}

fn ca_file(lab: &Lab) -> PathBuf {
    dir(lab).join("ca.pem")
}

/// Makes the certificate and its Secret, and returns strait's extra arguments: serve the
/// ingress Gateway on the node's address, with the Secret in the config.
pub fn strait_args(lab: &Lab) -> Result<Vec<OsString>> {
    let dir = dir(lab);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let issued = rcgen::generate_simple_self_signed(vec![HOST.to_owned()])?;
    let (cert, key) = (issued.cert.pem(), issued.key_pair.serialize_pem());
    fs::write(ca_file(lab), &cert)?;
    let secret = dir.join("secret.yaml");
    fs::write(&secret, secret_manifest(&cert, &key))?;
    Ok(vec![
        "--gateway-labels".into(),
        "istio=ingressgateway".into(),
        "--gateway-bind".into(),
        lab.node_ip().to_string().into(),
        "--config".into(),
        secret.into_os_string(),
    ])
}

/// A `kubernetes.io/tls` Secret with the PEM as `stringData`.
fn secret_manifest(cert: &str, key: &str) -> String {
    let block = |pem: &str| {
        pem.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {SECRET}\n  namespace: default\n\
         type: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        block(cert),
        block(key)
    )
}

pub fn play(lab: &mut Lab, client: &Pod) -> Result<Played> {
    let to = (lab.node_ip(), PORT).into();
    let mut options = CallOptions::new(to).count(CALLS).tls(&ca_file(lab), HOST);
    options.authority = Some(HOST.to_owned());
    let summary = lab
        .greeter_call(client, Implementation::Rust, &options)?
        .summary;
    let answered: Vec<String> = REPLICAS
        .iter()
        .map(|replica| format!("{replica} {}", summary.from_instance(replica)))
        .collect();
    let report = format!(
        "  gRPC  https://{HOST}:{PORT} via the Gateway, {CALLS} calls on ONE TLS connection: {}",
        answered.join(", ")
    );
    let mut problems: Vec<String> = failures(&summary, "calls through the Gateway")
        .into_iter()
        .collect();
    let replicas = REPLICAS
        .iter()
        .filter(|replica| summary.from_instance(replica) > 0)
        .count();
    if replicas < 2 {
        problems.push(format!(
            "the calls through the Gateway were not balanced per call: {}",
            answered.join(", ")
        ));
    }
    Ok(Played { report, problems })
}

/// Removes the lab's certificate and Secret.
pub fn clean(lab: &Lab) {
    let _ = fs::remove_dir_all(dir(lab));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_valid_yaml_with_the_pem() {
        let yaml = secret_manifest("-----BEGIN X-----\nAAA\n-----END X-----\n", "K\n");
        let value: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        let data = &value["stringData"];
        assert_eq!(
            data["tls.crt"].as_str(),
            Some("-----BEGIN X-----\nAAA\n-----END X-----\n")
        );
        assert_eq!(data["tls.key"].as_str(), Some("K\n"));
        assert_eq!(value["type"].as_str(), Some("kubernetes.io/tls"));
    }
}
