//! The `strait` command line.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use clap::{Args, Parser, Subcommand};
use strait::{
    admin::proxy_config,
    app,
    capture::{self, enrollment::Enrollment},
    config,
    config::resources::Labels,
    gateway::GatewayOptions,
    telemetry::{access_log, logging},
};

#[derive(Parser)]
#[command(
    name = "strait",
    version,
    about = "eBPF-accelerated node proxy for Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node proxy.
    Run(Box<RunArgs>),
    /// Check manifests; exit 0 when clean or only warnings, 1 on errors, 2 on usage errors.
    Validate {
        /// Treat warnings as errors.
        #[arg(long)]
        strict: bool,
        /// Files or directories (recursive *.yaml, *.yml).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Show a running strait's listeners, routes, clusters and endpoints (its `/config_dump`).
    ProxyConfig {
        #[arg(value_enum)]
        section: proxy_config::Section,
        /// The running strait's `--admin` address.
        #[arg(long, default_value = "127.0.0.1:15000")]
        admin: SocketAddr,
        #[arg(short = 'o', long = "output", value_enum, default_value_t = proxy_config::Output::Table)]
        output: proxy_config::Output,
    },
    /// Explain what the config makes of a resource.
    #[command(subcommand)]
    Describe(Describe),
    /// Exit 0 when the strait running with `--ready-file PATH` is ready (a readiness probe
    /// that asks that instance, not whichever strait holds the node's shared ports).
    Probe {
        #[arg(long)]
        ready_file: PathBuf,
    },
}

#[derive(Subcommand)]
enum Describe {
    /// Each port's classification and why, its endpoints, policy, subsets and routes, and what
    /// is wrong with them.
    Service {
        /// NAME (namespace default), NAME.NAMESPACE or the Service's FQDN.
        name: String,
        /// YAML files or directories, as `strait run` reads them.
        #[arg(short = 'c', long = "config", required = true)]
        config: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum EnrollArg {
    /// Every process in `--cgroup`.
    All,
    /// The pods ambient mode's labels enroll on this node.
    Ambient,
}

#[derive(Args)]
struct RunArgs {
    /// YAML files or directories, watched for changes.
    #[arg(short = 'c', long = "config")]
    config: Vec<PathBuf>,
    /// Read Services, Pods, Namespaces, TLS Secrets and Istio's resources from the Kubernetes
    /// API (in-cluster service account, else the kubeconfig) instead of files.
    #[arg(long, conflicts_with = "config")]
    kubernetes: bool,
    /// Where captured connections arrive. With eBPF capture, pods must be able to reach it.
    #[arg(long, default_value = "0.0.0.0:15001")]
    outbound: SocketAddr,
    /// Admin server (config dumps, log levels): keep it on loopback.
    #[arg(long, default_value = "127.0.0.1:15000")]
    admin: SocketAddr,
    /// Prometheus and readiness probes only.
    #[arg(long, default_value = "0.0.0.0:15020")]
    metrics: SocketAddr,
    /// The cgroup v2 directory whose processes are captured (default: the cgroup v2 root).
    #[arg(long)]
    cgroup: Option<PathBuf>,
    /// bpffs directory for the kernel maps (in `v<version>` below it): a strait started beside
    /// this one, as in a rolling update, shares them and takes over without a gap.
    #[arg(long, default_value = "/sys/fs/bpf/strait")]
    bpf_pin_dir: PathBuf,
    /// Whose connections the kernel captures: every process in `--cgroup`, or the pods Istio's
    /// ambient labels enroll on `--node-name` (`istio.io/dataplane-mode=ambient` on the
    /// namespace or the pod; `none` on the pod opts it out).
    #[arg(long, value_enum, default_value_t = EnrollArg::All, requires_if("ambient", "node_name"))]
    enroll: EnrollArg,
    /// This node's name (the Pods' `spec.nodeName`), for `--enroll ambient`.
    #[arg(long)]
    node_name: Option<String>,
    /// No kernel capture: the same as `--capture none`.
    #[arg(long, conflicts_with = "capture")]
    no_ebpf: bool,
    /// How connections are captured.
    #[arg(long, value_enum, default_value_t = capture::Mode::Ebpf)]
    capture: capture::Mode,
    /// With `--capture iptables`: also listen at the outbound port inside these pod network
    /// namespaces (files such as /var/run/netns/NAME), whose REDIRECT rules point there.
    #[arg(long, requires = "capture")]
    pod_netns: Vec<PathBuf>,
    /// The kernel object to load instead of the one built into this binary.
    #[arg(long)]
    ebpf_object: Option<PathBuf>,
    /// Give up connecting to an endpoint after this long.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
    /// On SIGTERM, wait this long for open connections to finish.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
    /// Serve the Istio Gateways whose selector these labels satisfy (none by default), e.g.
    /// `istio=ingressgateway`.
    #[arg(long, value_name = "K=V,...", value_parser = strait::gateway::parse_labels)]
    gateway_labels: Option<Labels>,
    /// The address gateway ports listen on.
    #[arg(long, default_value = "0.0.0.0")]
    gateway_bind: IpAddr,
    /// An access log line per request and TCP connection, to this file (appended) or `-`
    /// (standard output); in Istio's text format, or JSON with `--log-format json`.
    #[arg(long, value_name = "PATH|-")]
    access_log: Option<access_log::Sink>,
    /// A file written when strait is ready and removed when it shuts down, for an exec
    /// readiness probe (`strait probe --ready-file PATH`).
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// strait's own log and the access log: text, or one JSON object a line.
    #[arg(long, value_enum, default_value_t = logging::LogFormat::Text)]
    log_format: logging::LogFormat,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Probe { ready_file } => {
            if strait::handover::probe(&ready_file) {
                ExitCode::SUCCESS
            } else {
                eprintln!("not ready: {} is absent", ready_file.display());
                ExitCode::FAILURE
            }
        }
        Command::Validate { strict, paths } => {
            let code = config::validate_command(&paths, strict, &mut std::io::stdout().lock());
            ExitCode::from(code as u8)
        }
        Command::Describe(Describe::Service { name, config }) => {
            let code = config::describe_command(&config, &name, &mut std::io::stdout().lock());
            ExitCode::from(code as u8)
        }
        Command::ProxyConfig {
            section,
            admin,
            output,
        } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let shown = runtime
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(proxy_config::proxy_config(admin, section, output)));
            match shown {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run(args) => {
            let log_levels = logging::init(args.log_format);
            match run(args, log_levels) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!("{err:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn run(args: Box<RunArgs>, log_levels: logging::LogLevels) -> anyhow::Result<()> {
    let options = app::RunOptions {
        config: if args.kubernetes {
            app::ConfigSource::Kubernetes
        } else {
            app::ConfigSource::Files(args.config)
        },
        outbound: args.outbound,
        admin: args.admin,
        metrics: args.metrics,
        capture: if args.no_ebpf {
            capture::Mode::None
        } else {
            args.capture
        },
        cgroup: args.cgroup,
        bpf_pin_dir: args.bpf_pin_dir,
        ready_file: args.ready_file,
        enrollment: match (args.enroll, args.node_name) {
            (EnrollArg::All, _) => Enrollment::All,
            (EnrollArg::Ambient, Some(node)) => Enrollment::Ambient { node },
            (EnrollArg::Ambient, None) => anyhow::bail!("--enroll ambient needs --node-name"),
        },
        ebpf_object: args.ebpf_object,
        pod_netns: args.pod_netns,
        connect_timeout: args.connect_timeout,
        drain_timeout: args.drain_timeout,
        log_levels,
        gateway: args.gateway_labels.map(|labels| GatewayOptions {
            labels: Arc::new(labels),
            bind: args.gateway_bind,
        }),
        access_log: args.access_log.map(|sink| {
            let format = match args.log_format {
                logging::LogFormat::Text => access_log::Format::Text,
                logging::LogFormat::Json => access_log::Format::Json,
            };
            (sink, format)
        }),
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(app::run(options))
}
