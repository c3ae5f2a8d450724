//! Three greeter replicas on loopback behind strait without capture (`--no-ebpf`): requests
//! find the Service by their `:authority`. The fixture of the L7 tests that need no lab.

use std::{
    collections::BTreeMap,
    fs,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use anyhow::{ensure, Context, Result};

use super::{
    parse_served, run_client, spawn_server, CallOptions, CallReport, CallSummary, Implementation,
    ServeOptions,
};
use crate::{
    lab::{wait_until, ChildProcess, LocalStrait},
    manifests,
};

/// The greeter Service's cluster IP and port.
pub const GREETER_VIP: &str = "10.96.0.30:50051";
pub const REPLICAS: [&str; 3] = ["replica-a", "replica-b", "replica-c"];
/// The greeter Service by its full name.
pub const AUTHORITY: &str = "greeter.default.svc.cluster.local:50051";
pub const SERVICE_LABEL: &str = "destination_service=\"greeter.default.svc.cluster.local\"";

/// The seed's replicas ([`Loopback::start_seed`]): name, the Pod's `app` and `version` labels,
/// and the port its Service's targetPort names.
pub const SEED_REPLICAS: [(&str, &str, &str, u16); 3] = [
    ("grpc-v1", "grpc-server", "v1", 50051),
    ("grpc-v2", "grpc-server", "v2", 50051),
    ("server-v1", "server", "v1", 8080),
];
/// The seed's gRPC Service, which its `grpc-canary` VirtualService splits 90/10.
pub const SEED_GRPC_AUTHORITY: &str = "grpc-service.default.svc.cluster.local:50051";
/// The seed's `server` Service, which its `server-fault` VirtualService delays by 10 s.
pub const SEED_SERVER_AUTHORITY: &str = "server.default.svc.cluster.local:8080";
/// How long strait may take to apply (or reject) a changed file: its debounce and a load.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Each replica's server and its name.
type Servers = Vec<(ChildProcess, String)>;

pub struct Loopback {
    pub strait: LocalStrait,
    /// Each replica's server and name, in start order.
    servers: Servers,
    /// Each replica's address, in start order: for calls that bypass strait.
    pub backends: Vec<SocketAddr>,
    pub config: PathBuf,
}

/// Whether strait applied a changed config or kept the last good one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reload {
    Accepted,
    Rejected,
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
        let listen: SocketAddr = "127.0.0.1:0".parse()?;
        let options = REPLICAS.map(|replica| serve(ServeOptions::new(listen, replica)));
        let (servers, backends) = spawn_replicas(server, &options)?;
        let empty = manifests::Service {
            name: "empty",
            app: "nothing",
            vip: "10.96.0.31:50051".parse()?,
            port_name: "grpc",
            app_protocol: None,
            target_port: &50051,
        };
        let pods: Vec<_> = backends.iter().map(|a| (a.ip(), a.port())).collect();
        let files = [
            ("greeter.yaml", greeter_manifests(&pods)),
            ("empty.yaml", empty.yaml()),
            ("policy.yaml", manifests.to_owned()),
        ];
        Self::launch(name, servers, backends, &files, strait_args)
    }

    /// The seed manifests as users wrote them (`seed.yaml`; the seed itself, or with a
    /// document changed by [`manifests::seed_replacing`]), `manifests` beside them
    /// (`policy.yaml`), and a Greeter for each of [`SEED_REPLICAS`] as a Pod the seed's
    /// Services select, each on a loopback address of its own so that it can listen on the
    /// port the Service names.
    pub fn start_seed(
        name: &str,
        server: Implementation,
        serve: impl Fn(ServeOptions) -> ServeOptions,
        seed: &str,
        manifests: &str,
    ) -> Result<Loopback> {
        let options: Vec<_> = own_loopback_ips(SEED_REPLICAS.len())
            .into_iter()
            .zip(SEED_REPLICAS)
            .map(|(ip, (replica, _, _, port))| serve(ServeOptions::new((ip, port).into(), replica)))
            .collect();
        let (servers, backends) = spawn_replicas(server, &options)?;
        let pods = backends.iter().zip(SEED_REPLICAS).map(|(addr, replica)| {
            let (name, app, version, _) = replica;
            let labels = [("app", app), ("version", version)];
            manifests::labelled_pod(name, &labels, addr.ip(), &[])
        });
        let files = [
            ("seed.yaml", seed.to_owned()),
            ("pods.yaml", manifests::documents(pods)),
            ("policy.yaml", manifests.to_owned()),
        ];
        Self::launch(name, servers, backends, &files, &[])
    }

    /// Writes `files` into a fresh config directory and starts strait on it with
    /// `strait_args` besides.
    fn launch(
        name: &str,
        servers: Servers,
        backends: Vec<SocketAddr>,
        files: &[(&str, String)],
        strait_args: &[&str],
    ) -> Result<Loopback> {
        let config = config_dir(name)?;
        for (file, contents) in files {
            fs::write(config.join(file), contents)?;
        }
        let strait = LocalStrait::start(&config, strait_args)?;
        Ok(Loopback {
            strait,
            servers,
            backends,
            config,
        })
    }

    /// `istio_requests_total` summed over the samples whose labels contain all of `labels`.
    pub fn requests_total(&self, labels: &[&str]) -> Result<u64> {
        self.strait.requests_total(labels)
    }

    /// Replaces the config file `file` as an editor does (a new file renamed over it) and
    /// waits until strait's reload counters say it took the change as `expect`ed.
    pub fn rewrite(&self, file: &str, contents: &str, expect: Reload) -> Result<()> {
        let counts = || -> Result<(u64, u64)> {
            Ok((
                self.strait.reloads("accepted")?,
                self.strait.reloads("rejected")?,
            ))
        };
        let before = counts()?;
        let staged = self.config.with_extension(format!("{file}.new"));
        fs::write(&staged, contents)?;
        fs::rename(&staged, self.config.join(file))?;
        let mut after = before;
        let reloaded = wait_until(RELOAD_TIMEOUT, || {
            after = counts().unwrap_or(before);
            after != before
        });
        ensure!(
            reloaded,
            "strait did not reload {file} within {RELOAD_TIMEOUT:?}"
        );
        let outcome = if after.1 > before.1 {
            Reload::Rejected
        } else {
            Reload::Accepted
        };
        ensure!(
            outcome == expect,
            "strait's reload of {file} was {outcome:?}, not {expect:?}:{}",
            self.strait.process.stderr_report()
        );
        Ok(())
    }

    /// Calls each replica served since the last look (from the lines its server prints as
    /// each call ends), by replica name.
    pub fn served(&mut self) -> BTreeMap<String, u64> {
        self.servers
            .iter_mut()
            .map(|(server, name)| {
                let lines = server.queued_lines();
                let calls = lines.iter().filter_map(|l| parse_served(l)).count();
                (name.clone(), calls as u64)
            })
            .collect()
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

/// Starts a server for each of `options` and waits until all listen: the servers with their
/// names, and their addresses.
fn spawn_replicas(
    server: Implementation,
    options: &[ServeOptions],
) -> Result<(Servers, Vec<SocketAddr>)> {
    let mut servers = Vec::new();
    let mut backends = Vec::new();
    for options in options {
        let (process, addr) = spawn_server(server, options)
            .with_context(|| format!("starting replica {} on {}", options.name, options.listen))?;
        servers.push((process, options.name.clone()));
        backends.push(addr);
    }
    Ok((servers, backends))
}

/// `count` loopback addresses no other fixture of this machine's tests uses:
/// `127.<fixture>.<pid>.<1..>` (Linux routes all of 127/8 to loopback).
fn own_loopback_ips(count: usize) -> Vec<IpAddr> {
    static FIXTURES: AtomicU32 = AtomicU32::new(0);
    let fixture = 64 + FIXTURES.fetch_add(1, Ordering::Relaxed) % 128;
    let pid = std::process::id() % 251;
    (1..=count)
        .map(|host| Ipv4Addr::new(127, fixture as u8, pid as u8, host as u8).into())
        .collect()
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
    let pods = backends.iter().zip(REPLICAS).map(|((ip, port), name)| {
        // `replica` lets a DestinationRule subset pick one.
        let labels = [("app", "greeter"), ("replica", name)];
        manifests::labelled_pod(name, &labels, ip, &[("grpc", *port)])
    });
    manifests::documents(std::iter::once(service.yaml()).chain(pods))
}
