//! Plain HTTP through strait: three [`EchoServer`] replicas on loopback behind strait without
//! capture (`--no-ebpf`), so requests find their Service by `Host` (or `:authority`). The
//! fixture of the HTTP/1.1 tests.
//!
//! Two Services select the replicas, both on an `http` port: `web`, with no DestinationRule
//! (endpoints get HTTP/1.1), and `web-h2`, whose DestinationRule says `h2UpgradePolicy:
//! UPGRADE` (endpoints get HTTP/2).

mod server;

use std::{fs, net::SocketAddr, num::NonZeroUsize, path::PathBuf};

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, Uri, Version};
use http_body_util::{combinators::BoxBody, BodyExt};
use hyper::{
    body::Incoming,
    client::conn::{http1, http2},
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

pub use server::{EchoServer, CLOSE, HOST, INSTANCE, PATH, PROTOCOL, SAW};

use crate::{greeter::loopback::config_dir, lab::LocalStrait, manifests};

pub const REPLICAS: [&str; 3] = ["replica-a", "replica-b", "replica-c"];
/// The Service whose endpoints get HTTP/1.1, as a client names it.
pub const WEB: &str = "web.default";
/// The Service whose endpoints get HTTP/2 (`h2UpgradePolicy: UPGRADE`).
pub const WEB_H2: &str = "web-h2.default";
/// `web`'s cluster IP and port.
pub const WEB_VIP: &str = "10.96.0.40:80";
pub const WEB_LABEL: &str = "destination_service=\"web.default.svc.cluster.local\"";

pub struct WebLoopback {
    pub strait: LocalStrait,
    pub replicas: Vec<EchoServer>,
    config: PathBuf,
}

impl WebLoopback {
    /// The replicas on the calling runtime (`fail_every` says which fail, and how often),
    /// both Services, `manifests` (VirtualServices, DestinationRules), and strait.
    pub async fn start(
        name: &str,
        fail_every: impl Fn(&str) -> Option<NonZeroUsize>,
        manifests: &str,
    ) -> Result<Self> {
        let mut replicas = Vec::new();
        for name in REPLICAS {
            replicas.push(EchoServer::start(name, fail_every(name)).await?);
        }
        let config = config_dir(&format!("http-{name}"))?;
        let pods = replicas.iter().map(|r| (r.name.as_str(), r.addr));
        fs::write(config.join("web.yaml"), web_manifests(pods))?;
        fs::write(config.join("policy.yaml"), manifests)?;
        // strait's readiness is awaited with blocking polls: off the runtime's workers.
        let strait = tokio::task::block_in_place(|| LocalStrait::start(&config, &[] as &[&str]))?;
        Ok(Self {
            strait,
            replicas,
            config,
        })
    }

    /// Where clients connect: strait's outbound listener.
    pub fn outbound(&self) -> SocketAddr {
        self.strait.outbound
    }

    /// `istio_requests_total` summed over the samples whose labels contain all of `labels`.
    pub fn requests_total(&self, labels: &[&str]) -> Result<u64> {
        tokio::task::block_in_place(|| self.strait.requests_total(labels))
    }

    pub fn replica(&self, name: &str) -> &EchoServer {
        self.replicas
            .iter()
            .find(|r| r.name == name)
            .expect("a replica's name")
    }
}

impl Drop for WebLoopback {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.config);
    }
}

/// `web` (10.96.0.40:80) and `web-h2` (10.96.0.41:80) over pods (name, address), each at its
/// `http` container port.
pub fn web_manifests<'a>(pods: impl IntoIterator<Item = (&'a str, SocketAddr)>) -> String {
    let service = |name, vip: &str| manifests::Service {
        name,
        app: "web",
        vip: vip.parse().expect("a VIP"),
        port_name: "http",
        app_protocol: None,
        target_port: &"http",
    };
    let upgrade = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
        metadata: {name: web-h2, namespace: default}\n\
        spec: {host: web-h2, trafficPolicy: {connectionPool: {http: {h2UpgradePolicy: UPGRADE}}}}\n";
    // Round robin: these tests are about routing and per-request balancing, which a
    // latency-driven spread on a busy machine would blur (the default balancer's spread is
    // `grpc_balance.rs`'s subject).
    let round_robin = manifests::round_robin("web");
    let pods = pods
        .into_iter()
        .map(|(name, addr)| manifests::pod(name, "web", addr.ip(), &[("http", addr.port())]));
    let documents = [
        service("web", WEB_VIP).yaml(),
        service("web-h2", "10.96.0.41:80").yaml(),
        upgrade.to_owned(),
        round_robin,
    ];
    manifests::documents(documents.into_iter().chain(pods))
}

/// What the tests send: any body.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// One client connection (hyper's client), for requests one after another, as HTTP/1.1 or as
/// HTTP/2 with prior knowledge.
pub enum Connection {
    Http1(http1::SendRequest<Body>),
    Http2(http2::SendRequest<Body>),
}

impl Connection {
    pub async fn open(addr: SocketAddr, version: Version) -> Result<Self> {
        let io = TokioIo::new(TcpStream::connect(addr).await?);
        Ok(match version {
            Version::HTTP_2 => {
                let (sender, connection) = http2::handshake(TokioExecutor::new(), io).await?;
                tokio::spawn(connection);
                Self::Http2(sender)
            }
            _ => {
                let (sender, connection) = http1::handshake(io).await?;
                tokio::spawn(connection);
                Self::Http1(sender)
            }
        })
    }

    /// Sends `request` (an absolute URI: `http://HOST/PATH`) and reads its response to the
    /// end.
    pub async fn send(&mut self, request: Request<Body>) -> Result<Response<Bytes>> {
        let response = self.start(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Response::from_parts(parts, body))
    }

    /// Sends `request` (an absolute URI: `http://HOST/PATH`): the response, once its head
    /// arrived. Over HTTP/1.1 the request goes as clients send it: its path, and `Host`.
    pub async fn start(&mut self, mut request: Request<Body>) -> Result<Response<Incoming>> {
        Ok(match self {
            Self::Http2(sender) => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
            Self::Http1(sender) => {
                let authority = request.uri().authority().context("an absolute URI")?;
                let host = HeaderValue::from_str(authority.as_str())?;
                request.headers_mut().insert(header::HOST, host);
                let path = request.uri().path_and_query().cloned();
                *request.uri_mut() = Uri::from(path.context("a path")?);
                sender.ready().await?;
                sender.send_request(request).await?
            }
        })
    }
}

/// A response header as text (empty when missing).
pub fn header_text<'r, B>(response: &'r Response<B>, name: &str) -> &'r str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}
