//! TLS at a gateway port. The ClientHello is read first (rustls' [`Acceptor`]) to learn the
//! SNI, which picks the server: the most specific host wins; with no SNI the `*` server, if
//! any. PASSTHROUGH hands the bytes read to the relay; otherwise the handshake completes with
//! that server's certificate, from the generation current at accept (a certificate changed in
//! the config serves new connections), offering ALPN `h2` and `http/1.1`. MUTUAL requires a
//! client certificate chaining to the server's CA: without one the handshake fails.

use std::{io::Cursor, sync::Arc, time::Duration};

use rustls::{crypto::ring, server::Acceptor, sign::SingleCertAndKey, ServerConfig};
use tokio::{
    io::{AsyncReadExt, Chain, Join},
    net::{
        tcp::{OwnedReadHalf, OwnedWriteHalf},
        TcpStream,
    },
};
use tokio_rustls::{server::TlsStream, LazyConfigAcceptor};

use crate::{
    config::{
        gateway::{Credential, GatewayTarget, ServerMode},
        Model,
    },
    route::TcpRoute,
};

/// Clients send their ClientHello at once; Envoy's TLS inspector waits as long (15 s).
const HELLO_TIMEOUT: Duration = Duration::from_secs(15);
/// A ClientHello is a few hundred bytes; one larger than this is no client of ours.
const MAX_HELLO: usize = 64 * 1024;

/// The client's connection, with the ClientHello read put back in front.
pub(super) type Rewound = Join<Chain<Cursor<Vec<u8>>, OwnedReadHalf>, OwnedWriteHalf>;

pub(super) enum Accepted {
    /// TLS ended here; `h2` when the client chose it by ALPN. Boxed: a TLS connection's state
    /// is kilobytes.
    Terminated {
        stream: Box<TlsStream<Rewound>>,
        h2: bool,
    },
    /// To be relayed, the ClientHello (`hello`) first.
    Passthrough {
        client: TcpStream,
        hello: Vec<u8>,
        route: TcpRoute,
    },
}

#[derive(Debug, thiserror::Error)]
pub(super) enum Refused {
    #[error("no ClientHello within {HELLO_TIMEOUT:?}")]
    Timeout,
    #[error("reading the ClientHello: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a TLS ClientHello: {0}")]
    NotTls(rustls::Error),
    #[error("no server for SNI {0:?}")]
    NoServer(Option<String>),
    #[error("no tls route for SNI {0:?}")]
    NoTlsRoute(Option<String>),
    #[error("the tls route's destination: {0}")]
    Unresolved(String),
    #[error("TLS handshake: {0}")]
    Handshake(std::io::Error),
}

/// Reads the ClientHello and either terminates TLS or readies the relay, as the server chosen
/// by SNI says.
pub(super) async fn accept(
    mut client: TcpStream,
    model: &Model,
    target: &GatewayTarget,
) -> Result<Accepted, Refused> {
    let read = tokio::time::timeout(HELLO_TIMEOUT, read_client_hello(&mut client));
    let (hello, sni) = read.await.map_err(|_| Refused::Timeout)??;
    let gateways = model.gateways();
    // Only a `*` server covers the host "*": a client without SNI gets it, if there is one.
    let (_, server) = gateways
        .server_for(target, sni.as_deref().unwrap_or("*"))
        .ok_or_else(|| Refused::NoServer(sni.clone()))?;
    match &server.mode {
        ServerMode::Terminate(credential) => terminate(client, hello, credential).await,
        ServerMode::Passthrough => {
            let route = passthrough_route(model, target, sni.as_deref())?;
            Ok(Accepted::Passthrough {
                client,
                hello,
                route,
            })
        }
        ServerMode::Plain => Err(Refused::NoServer(sni)),
    }
}

async fn terminate(
    client: TcpStream,
    hello: Vec<u8>,
    credential: &Credential,
) -> Result<Accepted, Refused> {
    let (read, write) = client.into_split();
    let rewound = tokio::io::join(Cursor::new(hello).chain(read), write);
    let start = LazyConfigAcceptor::new(Acceptor::default(), rewound)
        .await
        .map_err(Refused::Handshake)?;
    let stream = start
        .into_stream(server_config(credential))
        .await
        .map_err(Refused::Handshake)?;
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    Ok(Accepted::Terminated {
        stream: Box::new(stream),
        h2,
    })
}

fn server_config(credential: &Credential) -> Arc<ServerConfig> {
    let builder = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let builder = match &credential.client_verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier.clone()),
        None => builder.with_no_client_auth(),
    };
    let resolver = SingleCertAndKey::from(credential.certified.clone());
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Where a PASSTHROUGH connection goes: its `tls[]` route's destination, one drawn by weight.
fn passthrough_route(
    model: &Model,
    target: &GatewayTarget,
    sni: Option<&str>,
) -> Result<TcpRoute, Refused> {
    let no_route = || Refused::NoTlsRoute(sni.map(str::to_owned));
    let route = model
        .gateways()
        .tls_route(target, sni.ok_or_else(no_route)?)
        .ok_or_else(no_route)?;
    let chosen = route.destinations.pick(fastrand::u32(..));
    let backend = chosen
        .target
        .backend()
        .map_err(|unresolved| Refused::Unresolved(unresolved.to_string()))?;
    Ok(TcpRoute {
        service_name: backend.service.name.clone(),
        namespace: backend.service.namespace.clone(),
        port: backend.port,
        endpoints: backend.endpoints.clone(),
    })
}

/// The bytes of the ClientHello, and the SNI it names.
async fn read_client_hello(client: &mut TcpStream) -> Result<(Vec<u8>, Option<String>), Refused> {
    let mut acceptor = Acceptor::default();
    let mut hello = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = client.read(&mut chunk).await?;
        if read == 0 || hello.len() + read > MAX_HELLO {
            return Err(Refused::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        hello.extend_from_slice(&chunk[..read]);
        let mut unread = &chunk[..read];
        while !unread.is_empty() {
            acceptor.read_tls(&mut unread)?;
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                let sni = accepted.client_hello().server_name().map(str::to_owned);
                return Ok((hello, sni));
            }
            Ok(None) => continue,
            Err((err, _alert)) => return Err(Refused::NotTls(err)),
        }
    }
}
