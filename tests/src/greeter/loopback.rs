//! Three greeter replicas on loopback behind strait without capture (`--no-ebpf`): requests
//! find the Service by their `:authority`. The fixture of the L7 tests that need no lab.

use std::{fs, net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Result;

use super::{
    run_client, spawn_server, CallOptions, CallReport, CallSummary, Implementation, ServeOptions,
};
use crate::{
    lab::{ChildProcess, LocalStrait},
    manifests,
};

/// The greeter Service's cluster IP and port.
pub const GREETER_VIP: &str = "10.96.0.30:50051";
pub const REPLICAS: [&str; 3] = ["replica-a", "replica-b", "replica-c"];
/// The greeter Service by its full name.
pub const AUTHORITY: &str = "greeter.default.svc.cluster.local:50051";
pub const SERVICE_LABEL: &str = "destination_service=\"greeter.default.svc.cluster.local\"";

pub struct Loopback {
    pub strait: LocalStrait,
    _servers: Vec<ChildProcess>,
    /// Each replica's address, in `REPLICAS` order: for calls that bypass strait.
    pub backends: Vec<SocketAddr>,
    pub config: PathBuf,
}

impl Loopback {
    /// The replicas (`serve` tunes each one's options, named by `REPLICAS`), the greeter
    /// Service over them, an `empty` Service with no endpoints, and strait.
    pub fn start(
        name: &str,
        server: Implementation,
        serve: impl Fn(ServeOptions) -> ServeOptions,
    ) -> Result<Loopback> {
        Self::start_with(name, server, serve, "")
    }

    /// As [`start`](Self::start), with more manifests (VirtualServices, DestinationRules for
    /// `greeter`) in the config from the start.
    pub fn start_with(
        name: &str,
        server: Implementation,
        serve: impl Fn(ServeOptions) -> ServeOptions,
        manifests: &str,
    ) -> Result<Loopback> {
        Self::start_with_args(name, server, serve, manifests, &[])
    }

    /// As [`start_with`](Self::start_with), with more `strait run` arguments.
    pub fn start_with_args(
        name: &str,
        server: Implementation,
        serve: impl Fn(ServeOptions) -> ServeOptions,
        manifests: &str,
        strait_args: &[&str],
    ) -> Result<Loopback> {
        let mut servers = Vec::new();
        let mut backends = Vec::new();
        for replica in REPLICAS {
            let options = serve(ServeOptions::new("127.0.0.1:0".parse()?, replica));
            let (process, addr) = spawn_server(server, &options)?;
            servers.push(process);
            backends.push(addr);
        }
        let config = config_dir(name)?;
        let empty = manifests::Service {
            name: "empty",
            app: "nothing",
            vip: "10.96.0.31:50051".parse()?,
            port_name: "grpc",
            app_protocol: None,
            target_port: &50051,
        };
        let pods: Vec<_> = backends.iter().map(|a| (a.ip(), a.port())).collect();
        fs::write(config.join("greeter.yaml"), greeter_manifests(&pods))?;
        fs::write(config.join("empty.yaml"), empty.yaml())?;
        fs::write(config.join("policy.yaml"), manifests)?;
        let strait = LocalStrait::start(&config, strait_args)?;
        Ok(Loopback {
            strait,
            _servers: servers,
            backends,
            config,
        })
    }

    /// `istio_requests_total` summed over the samples whose labels contain all of `labels`.
    pub fn requests_total(&self, labels: &[&str]) -> Result<u64> {
        self.strait.requests_total(labels)
    }

    /// Runs a client against strait with `authority` and waits for its summary.
    pub fn call(
        &self,
        implementation: Implementation,
        authority: &str,
        tune: impl Fn(CallOptions) -> CallOptions,
    ) -> Result<CallSummary> {
        Ok(self.report(implementation, Some(authority), tune)?.summary)
    }

    /// Every call a client made, through strait with `authority`, or straight to the first
    /// replica with `None`.
    pub fn report(
        &self,
        implementation: Implementation,
        authority: Option<&str>,
        tune: impl Fn(CallOptions) -> CallOptions,
    ) -> Result<CallReport> {
        let to = match authority {
            Some(_) => self.strait.outbound,
            None => self.backends[0],
        };
        let mut options = tune(CallOptions::new(to));
        options.authority = authority.map(str::to_string);
        run_client(implementation, &options, Duration::from_secs(120))
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.config);
    }
}

/// A fresh directory for a test's manifests.
pub fn config_dir(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("strait-grpc-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The greeter Service (gRPC by appProtocol) over pods named by `REPLICAS`, each at `ip` with
/// its `grpc` container port: targetPort is the port's name, so each pod may listen elsewhere.
pub fn greeter_manifests(backends: &[(impl std::fmt::Display, u16)]) -> String {
    let service = manifests::Service {
        name: "greeter",
        app: "greeter",
        vip: GREETER_VIP.parse().unwrap(),
        port_name: "api",
        app_protocol: Some("grpc"),
        target_port: &"grpc",
    };
    let pods = backends
        .iter()
        .zip(REPLICAS)
        .map(|((ip, port), name)| manifests::pod(name, "greeter", ip, &[("grpc", *port)]));
    manifests::documents(std::iter::once(service.yaml()).chain(pods))
}
