//! `strait run`: wires config, capture, the outbound listener and the admin servers together,
//! and shuts them down in the order that keeps the node served (fail open first, then drain).

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use anyhow::{Context, Result};
use strait_common::{SockAddr, HEARTBEAT_INTERVAL_MS};
use tokio::{net::TcpListener, sync::watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{error, info, warn};

use crate::{
    admin::{self, AdminState, Scope},
    balance::RoundRobin,
    capture::{
        self,
        ebpf::KernelCapture,
        enrollment::{Enrolled, Enrollment},
        OriginalDst,
    },
    config::{self, Model},
    gateway::{self, GatewayOptions},
    handover,
    l7::L7Proxy,
    listener::Outbound,
    telemetry::{
        access_log::{self, AccessLog},
        endpoints::EndpointCollector,
        kernel::KernelCollector,
        logging::LogLevels,
        process::ProcessCollector,
        reloads::ReloadCollector,
        Metrics,
    },
};

/// Where the config comes from.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// YAML files and directories, followed as they change.
    Files(Vec<PathBuf>),
    /// The Kubernetes API, watched.
    Kubernetes,
}

/// Everything `strait run` needs, resolved from the command line.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub config: ConfigSource,
    pub outbound: SocketAddr,
    pub admin: SocketAddr,
    pub metrics: SocketAddr,
    pub capture: capture::Mode,
    pub cgroup: Option<PathBuf>,
    /// Where the kernel maps are pinned (`v<version>` below it), shared with the next strait.
    pub bpf_pin_dir: PathBuf,
    /// Whose connections are captured.
    pub enrollment: Enrollment,
    /// `--ready-file`: this instance's readiness, for an exec probe.
    pub ready_file: Option<PathBuf>,
    pub ebpf_object: Option<PathBuf>,
    /// With iptables capture: pod network namespaces to listen in (at the outbound port).
    pub pod_netns: Vec<PathBuf>,
    pub connect_timeout: Duration,
    pub drain_timeout: Duration,
    /// Changed by the admin server's `/logging`.
    pub log_levels: LogLevels,
    /// `--access-log` and the format of its lines.
    pub access_log: Option<(access_log::Sink, access_log::Format)>,
    /// `--gateway-labels`: `None` serves no Gateway.
    pub gateway: Option<GatewayOptions>,
}

pub async fn run(options: RunOptions) -> Result<()> {
    let ready_file = handover::ReadyFile::new(options.ready_file.clone())?;
    let config = match &options.config {
        ConfigSource::Files(paths) => config::watch(paths.clone()).context("loading the config")?,
        ConfigSource::Kubernetes => {
            let client = kube::Client::try_default()
                .await
                .context("connecting to the Kubernetes API")?;
            info!("listing Services, Pods and Istio's resources from the Kubernetes API");
            // Only a strait that serves Gateways needs their certificates.
            let secrets = match options.gateway {
                Some(_) => config::kubernetes::Secrets::Read,
                None => config::kubernetes::Secrets::Ignored,
            };
            config::kubernetes::watch_cluster(client, secrets).await
        }
    };
    let model = config.models.clone();
    // With eBPF capture one strait serves the node, and the next one starts beside it.
    let port = match options.capture {
        capture::Mode::Ebpf => {
            handover::migrate_pending_connections();
            handover::Port::Shared
        }
        capture::Mode::Iptables | capture::Mode::None => handover::Port::Exclusive,
    };
    // Listeners first: the kernel must never redirect to a port nobody listens on.
    let outbound_listener = handover::bind(options.outbound, "outbound", port)?;
    let pod_listeners = pod_listeners(&options)?;
    let admin_listener = handover::bind(options.admin, "admin", port)?;
    let metrics_listener = handover::bind(options.metrics, "metrics", port)?;

    let mut metrics = Metrics::new();
    metrics.register_collector(Box::new(ReloadCollector(config.stats.clone())));
    metrics.register_collector(Box::new(ProcessCollector));
    let (original_dst, kernel) = match options.capture {
        capture::Mode::Ebpf => {
            let (kernel, enrolled) = attach_kernel(&options, &model.borrow())?;
            metrics.register_collector(Box::new(KernelCollector::new(
                kernel.counters(),
                model.clone(),
            )));
            (
                OriginalDst::Kernel(kernel.orig_dst()),
                Some((kernel, enrolled)),
            )
        }
        capture::Mode::Iptables => (OriginalDst::Iptables, None),
        capture::Mode::None => (OriginalDst::None, None),
    };

    let shutdown = CancellationToken::new();
    let connections = TaskTracker::new();
    let kernel_task = kernel.map(|(kernel, enrolled)| {
        tokio::spawn(maintain_kernel(
            kernel,
            enrolled,
            model.clone(),
            shutdown.clone(),
        ))
    });

    let access_log = match &options.access_log {
        Some((sink, format)) => {
            Some(AccessLog::start(sink, *format).context("opening the access log")?)
        }
        None => None,
    };
    let l7 = Arc::new(
        L7Proxy::new(model.clone(), metrics.requests.clone(), shutdown.clone())
            .with_access_log(access_log.clone()),
    );
    tokio::spawn(l7.clone().prune_pool_on_reload());
    metrics.register_collector(Box::new(EndpointCollector::new(l7.clone(), model.clone())));
    let outbound = Arc::new(Outbound {
        model: model.clone(),
        original_dst,
        balancer: RoundRobin::default(),
        metrics: metrics.tcp.clone(),
        connect_timeout: options.connect_timeout,
        l7: l7.clone(),
        access_log,
    });
    let state = Arc::new(AdminState {
        metrics,
        model: model.clone(),
        endpoints: l7.clone(),
        log_levels: options.log_levels.clone(),
        ready: Default::default(),
    });
    tokio::spawn(admin::serve(
        admin_listener,
        state.clone(),
        Scope::Admin,
        shutdown.clone(),
    ));
    tokio::spawn(admin::serve(
        metrics_listener,
        state.clone(),
        Scope::Metrics,
        shutdown.clone(),
    ));
    if let Some(gateway) = options.gateway.clone() {
        let (bound, first_bound) = tokio::sync::oneshot::channel();
        tokio::spawn(gateway::serve(
            gateway,
            port,
            model.clone(),
            outbound.clone(),
            shutdown.clone(),
            connections.clone(),
            bound,
        ));
        // Ready means the gateway ports of the first config are listening too.
        let _ = first_bound.await;
    }
    for listener in std::iter::once(outbound_listener).chain(pod_listeners) {
        tokio::spawn(
            outbound
                .clone()
                .serve(listener, shutdown.clone(), connections.clone()),
        );
    }
    state.ready.store(true, Ordering::Release);
    ready_file.ready()?;
    info!(outbound = %options.outbound, admin = %options.admin, capture = ?options.capture, "strait is ready");

    let signal = shutdown_signal().await?;
    ready_file.unready();
    info!(signal, "shutting down: capture off, draining connections");
    shutdown.cancel();
    if let Some(task) = kernel_task {
        // Detached before draining, so new connects go straight to their destination.
        let _ = task.await;
    }
    connections.close();
    if tokio::time::timeout(options.drain_timeout, connections.wait())
        .await
        .is_err()
    {
        warn!(
            remaining = connections.len(),
            "drain timeout: closing the remaining connections"
        );
    }
    Ok(())
}

/// The in-pod listeners of iptables capture, bound at the outbound port in each pod namespace.
fn pod_listeners(options: &RunOptions) -> Result<Vec<TcpListener>> {
    let addr = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), options.outbound.port());
    options
        .pod_netns
        .iter()
        .map(|netns| {
            let listener = capture::iptables::listen_in_netns(netns, addr)?;
            TcpListener::from_std(listener).context("registering an in-pod listener")
        })
        .collect()
}

fn attach_kernel(options: &RunOptions, model: &Model) -> Result<(KernelCapture, Enrolled)> {
    let cgroup = match &options.cgroup {
        Some(dir) => dir.clone(),
        None => capture::cgroup::default_root()?,
    };
    let object = capture::ebpf::object_bytes(options.ebpf_object.as_deref())?;
    let pins = capture::pins::PinDir::under(&options.bpf_pin_dir)?;
    let mut enrolled = Enrolled::new(&options.enrollment, &cgroup);
    let (pods, waiting) = enrolled.of(model);
    let kernel = KernelCapture::attach(
        &object,
        &cgroup,
        pins,
        redirect_target(options.outbound),
        &options.enrollment,
        &captured(model),
        &pods,
    )
    .with_context(|| format!("attaching the capture programs to {}", cgroup.display()))?;
    info!(cgroup = %cgroup.display(), services = model.captured_addrs().len(), enrollment = ?options.enrollment, pods = pods.len(), waiting, "kernel capture attached");
    Ok((kernel, enrolled))
}

/// The address the kernel rewrites connects to. A wildcard listener is reached at loopback,
/// which only works for clients in strait's own network namespace.
fn redirect_target(outbound: SocketAddr) -> SocketAddr {
    if !outbound.ip().is_unspecified() {
        return outbound;
    }
    warn!(%outbound, "--outbound is a wildcard address: captured connections go to 127.0.0.1, which pods in other network namespaces cannot reach; pass the node address");
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), outbound.port())
}

fn captured(model: &Model) -> BTreeSet<SockAddr> {
    model
        .captured_addrs()
        .into_iter()
        .map(SockAddr::from)
        .collect()
}

/// How often strait looks again for the cgroups of enrolled pods kubelet has not started yet.
const ENROLLED_RESCAN: Duration = Duration::from_secs(1);

/// Keeps the kernel in step with strait: the heartbeat, and the Service and enrolled pod maps
/// as the config changes. Returning releases the capture, which detaches the programs.
async fn maintain_kernel(
    mut kernel: KernelCapture,
    mut enrolled: Enrolled,
    mut model: watch::Receiver<Arc<Model>>,
    shutdown: CancellationToken,
) {
    let mut heartbeat = tokio::time::interval(Duration::from_millis(HEARTBEAT_INTERVAL_MS));
    let mut rescan = tokio::time::interval(ENROLLED_RESCAN);
    let mut waiting = enrolled.of(&model.borrow()).1;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = heartbeat.tick() => {
                if let Err(err) = kernel.heartbeat() {
                    error!(err = format!("{err:#}"), "heartbeat failed");
                }
            }
            _ = rescan.tick(), if waiting > 0 => {
                waiting = sync_enrolled(&mut kernel, &mut enrolled, &model.borrow());
            }
            changed = model.changed() => {
                if changed.is_err() {
                    break;
                }
                let current = model.borrow_and_update().clone();
                match kernel.sync_services(&captured(&current)) {
                    Ok(stats) => info!(added = stats.added, removed = stats.removed, "kernel service map updated"),
                    Err(err) => error!(err = format!("{err:#}"), "updating the kernel service map failed"),
                }
                waiting = sync_enrolled(&mut kernel, &mut enrolled, &current);
            }
        }
    }
    kernel.release();
    info!("kernel capture detached");
}

/// Makes the kernel's enrolled cgroups the model's; returns how many enrolled pods have no
/// cgroup yet.
fn sync_enrolled(kernel: &mut KernelCapture, enrolled: &mut Enrolled, model: &Model) -> usize {
    let (pods, waiting) = enrolled.of(model);
    match kernel.sync_enrolled(&pods) {
        Ok(stats) if stats.added + stats.removed > 0 => {
            info!(
                added = stats.added,
                removed = stats.removed,
                waiting,
                "enrolled pods updated"
            )
        }
        Ok(_) => {}
        Err(err) => error!(
            err = format!("{err:#}"),
            "updating the enrolled pods failed"
        ),
    }
    waiting
}

async fn shutdown_signal() -> Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
