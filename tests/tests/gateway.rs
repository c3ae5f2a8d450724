//! End-to-end: an Istio Gateway served by strait (`--gateway-labels`). Certificates made at
//! test time sit in `kubernetes.io/tls` Secrets; gRPC clients (Rust over rustls, Python grpcio)
//! reach the Greeter through the gateway over TLS with ALPN h2, the certificate and the route
//! chosen by SNI and host; MUTUAL wants a client certificate; PASSTHROUGH relays TLS untouched
//! by SNI; a certificate changed in the config serves new connections without a restart.

use std::{
    fs,
    net::{SocketAddr, TcpStream as StdTcpStream},
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{ensure, Context, Result};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use strait_tests::{
    greeter::{
        self,
        loopback::{Loopback, SERVICE_LABEL},
        CallOptions, Implementation, RawCall, RawResponse,
    },
    lab::free_local_addr,
    manifests,
};
use tokio::net::TcpStream;
use tokio_rustls::{
    rustls::{
        crypto::ring,
        pki_types::{CertificateDer, PrivateKeyDer, ServerName},
        ClientConfig, RootCertStore,
    },
    TlsConnector,
};

const GREETER_HOST: &str = "greeter.example.com";
const HELLO_HOST: &str = "hello.example.com";
const MTLS_HOST: &str = "mtls.example.com";

/// A certificate and its key, PEM and DER.
struct Issued {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
    key: KeyPair,
}

fn self_signed(host: &str) -> Result<Issued> {
    let issued = rcgen::generate_simple_self_signed(vec![host.to_owned()])?;
    Ok(Issued {
        cert_pem: issued.cert.pem(),
        key_pem: issued.key_pair.serialize_pem(),
        der: issued.cert.der().clone(),
        key: issued.key_pair,
    })
}

/// A CA, and a client certificate it signed.
fn client_ca_and_cert() -> Result<(Issued, Issued)> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    let mut client_params = CertificateParams::new(vec!["client.example.com".to_owned()])?;
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate()?;
    let client = client_params.signed_by(&client_key, &ca, &ca_key)?;
    let issued = |cert: rcgen::Certificate, key: KeyPair| Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
        key,
    };
    Ok((issued(ca, ca_key), issued(client, client_key)))
}

/// A `kubernetes.io/tls` Secret with `stringData`.
fn secret(name: &str, entries: &[(&str, &str)]) -> String {
    let data: String = entries
        .iter()
        .map(|(key, pem)| {
            let indented: String = pem.lines().map(|line| format!("    {line}\n")).collect();
            format!("  {key}: |\n{indented}")
        })
        .collect();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\n\
         type: kubernetes.io/tls\nstringData:\n{data}"
    )
}

/// A VirtualService at the gateway for `host`, to the greeter, marking responses with
/// `x-route: NAME`.
fn ingress_route(name: &str, host: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}}}\n\
         spec:\n  hosts: [{host}]\n  gateways: [ingress]\n  http:\n  - headers: {{response: {{set: {{x-route: {name}}}}}}}\n    \
         route: [{{destination: {{host: greeter, port: {{number: 50051}}}}}}]\n"
    )
}

struct Ports {
    simple: SocketAddr,
    mutual: SocketAddr,
    passthrough: SocketAddr,
}

fn gateway_manifests(ports: &Ports) -> Result<String> {
    let gateway = format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: ingress}}\n\
         spec:\n  selector: {{istio: ingressgateway}}\n  servers:\n\
         \x20 - port: {{number: {simple}, name: https-greeter, protocol: HTTPS}}\n    hosts: [{GREETER_HOST}]\n    tls: {{mode: SIMPLE, credentialName: greeter-cert}}\n\
         \x20 - port: {{number: {simple}, name: grpc-hello, protocol: GRPC}}\n    hosts: [\"*/{HELLO_HOST}\"]\n    tls: {{mode: SIMPLE, credentialName: hello-cert}}\n\
         \x20 - port: {{number: {mutual}, name: https-mtls, protocol: HTTPS}}\n    hosts: [{MTLS_HOST}]\n    tls: {{mode: MUTUAL, credentialName: mtls-cert}}\n\
         \x20 - port: {{number: {passthrough}, name: tls-pass, protocol: TLS}}\n    hosts: [{GREETER_HOST}]\n    tls: {{mode: PASSTHROUGH}}\n",
        simple = ports.simple.port(),
        mutual = ports.mutual.port(),
        passthrough = ports.passthrough.port(),
    );
    // PASSTHROUGH relays to a Service whose endpoint is the gateway's own SIMPLE port: the
    // TLS that comes back is the greeter certificate's, end to end.
    let relayed_to = manifests::Service {
        name: "gateway-loop",
        app: "gateway-loop",
        vip: "10.96.0.40:443".parse()?,
        port_name: "tls",
        app_protocol: None,
        target_port: &ports.simple.port(),
    };
    let passthrough = format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: passthrough}}\n\
         spec:\n  hosts: [{GREETER_HOST}]\n  gateways: [ingress]\n  tls:\n  - match: [{{sniHosts: [{GREETER_HOST}], port: {}}}]\n    \
         route: [{{destination: {{host: gateway-loop, port: {{number: 443}}}}}}]\n",
        ports.passthrough.port()
    );
    Ok(manifests::documents([
        gateway,
        ingress_route("greeter", GREETER_HOST),
        ingress_route("hello", HELLO_HOST),
        ingress_route("mtls", MTLS_HOST),
        relayed_to.yaml(),
        manifests::pod("loop-0", "gateway-loop", "127.0.0.1", &[]),
        passthrough,
    ]))
}

struct Certificates {
    greeter: Issued,
    hello: Issued,
    mtls: Issued,
    client_ca: Issued,
    client: Issued,
}

impl Certificates {
    fn new() -> Result<Self> {
        let (client_ca, client) = client_ca_and_cert()?;
        Ok(Self {
            greeter: self_signed(GREETER_HOST)?,
            hello: self_signed(HELLO_HOST)?,
            mtls: self_signed(MTLS_HOST)?,
            client_ca,
            client,
        })
    }

    fn secrets(&self) -> String {
        let pair = |issued: &Issued| {
            [
                ("tls.crt", issued.cert_pem.clone()),
                ("tls.key", issued.key_pem.clone()),
            ]
        };
        let [crt, key] = pair(&self.mtls);
        manifests::documents([
            secret_of("greeter-cert", &pair(&self.greeter)),
            secret_of("hello-cert", &pair(&self.hello)),
            secret(
                "mtls-cert",
                &[
                    (crt.0, &crt.1),
                    (key.0, &key.1),
                    ("ca.crt", &self.client_ca.cert_pem),
                ],
            ),
        ])
    }
}

fn secret_of(name: &str, entries: &[(&str, String); 2]) -> String {
    let borrowed: Vec<(&str, &str)> = entries.iter().map(|(k, v)| (*k, v.as_str())).collect();
    secret(name, &borrowed)
}

/// The Secrets and the gateway's manifests: `Loopback`'s `policy.yaml`.
fn config(certificates: &Certificates, ports: &Ports) -> Result<String> {
    Ok(certificates.secrets() + &gateway_manifests(ports)?)
}

/// The greeter replicas and strait serving the gateway, every gateway port accepting.
fn start(name: &str, certificates: &Certificates, ports: &Ports) -> Result<Loopback> {
    let lo = Loopback::start_with_args(
        name,
        Implementation::Rust,
        |s| s,
        &config(certificates, ports)?,
        &[
            "--gateway-labels",
            "istio=ingressgateway,app=edge",
            "--gateway-bind",
            "127.0.0.1",
        ],
    )?;
    for port in [ports.simple, ports.mutual, ports.passthrough] {
        wait_until(
            || StdTcpStream::connect(port).is_ok(),
            &format!("gateway port {port}"),
        )?;
    }
    Ok(lo)
}

/// Polls `ready` until it holds, for at most 20 s.
fn wait_until(mut ready: impl FnMut() -> bool, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        ensure!(Instant::now() < deadline, "{what}: not ready after 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn client_config(
    root: &CertificateDer<'static>,
    client: Option<&Issued>,
) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone())?;
    let builder = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match client {
        Some(issued) => {
            let key =
                PrivateKeyDer::try_from(issued.key.serialize_der()).map_err(anyhow::Error::msg)?;
            builder.with_client_auth_cert(vec![issued.der.clone()], key)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// `SayHello` over TLS to `to` with SNI `sni`, the request's `:authority` `authority`; the
/// connection must have chosen h2 by ALPN.
fn call_over_tls(
    to: SocketAddr,
    sni: &str,
    authority: &str,
    config: Arc<ClientConfig>,
) -> Result<RawResponse> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let call = async {
        let tcp = TcpStream::connect(to).await?;
        let tls = TlsConnector::from(config)
            .connect(ServerName::try_from(sni.to_owned())?, tcp)
            .await
            .context("TLS handshake")?;
        ensure!(
            tls.get_ref().1.alpn_protocol() == Some(b"h2"),
            "ALPN did not pick h2"
        );
        let mut call = RawCall::say_hello("gateway");
        call.authority = Some(authority.to_owned());
        call.exchange_on(tls, sni).await
    };
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), call).await })
        .context("no answer within 10 s")?
}

fn with_port(host: &str, to: SocketAddr) -> String {
    format!("{host}:{}", to.port())
}

fn ports() -> Ports {
    Ports {
        simple: free_local_addr(),
        mutual: free_local_addr(),
        passthrough: free_local_addr(),
    }
}

/// Two hosts on one port, each with its own certificate and VirtualService: SNI picks the
/// certificate (the other host's root does not verify it) and the host the route; a host no
/// route serves gets UNAVAILABLE with NR; the requests count under the greeter Service.
#[test]
fn tls_by_sni_to_the_routes_of_each_host() -> Result<()> {
    let certificates = Certificates::new()?;
    let ports = ports();
    let lo = start("gateway-sni", &certificates, &ports)?;
    let to = ports.simple;
    for (host, issued) in [
        (GREETER_HOST, &certificates.greeter),
        (HELLO_HOST, &certificates.hello),
    ] {
        let response = call_over_tls(
            to,
            host,
            &with_port(host, to),
            client_config(&issued.der, None)?,
        )?;
        assert_eq!(response.grpc_status(), Some(0), "{host}: {response:?}");
        let route = host.split('.').next().unwrap();
        assert_eq!(
            response.header("x-route"),
            Some(route),
            "{host}: {response:?}"
        );
    }
    // Each host's certificate is its own: trusting the other's fails the handshake.
    let wrong_root = client_config(&certificates.greeter.der, None)?;
    let err = call_over_tls(to, HELLO_HOST, HELLO_HOST, wrong_root).unwrap_err();
    assert!(format!("{err:#}").contains("TLS handshake"), "{err:#}");
    // No route for the host: NR, as Envoy answers gRPC.
    let greeter_root = client_config(&certificates.greeter.der, None)?;
    let response = call_over_tls(to, GREETER_HOST, "nobody.example.com", greeter_root)?;
    assert_eq!(response.grpc_status(), Some(14), "{response:?}");
    let ok = [
        SERVICE_LABEL,
        "grpc_response_status=\"0\"",
        "response_flags=\"-\"",
    ];
    assert_eq!(lo.requests_total(&ok)?, 2);
    assert_eq!(lo.requests_total(&["response_flags=\"NR\""])?, 1);

    // The Greeter clients, tonic's and grpcio's, over TLS with the host's name as SNI.
    let ca = lo.config.join("greeter-ca.pem");
    fs::write(&ca, &certificates.greeter.cert_pem)?;
    let mut clients = vec![Implementation::Rust];
    if greeter::require_python_grpc("tls_by_sni_to_the_routes_of_each_host (grpcio)") {
        clients.push(Implementation::Python);
    }
    for client in clients {
        let mut options = CallOptions::new(to).count(5).tls(&ca, GREETER_HOST);
        options.authority = Some(GREETER_HOST.to_owned());
        let cmd = client.call_command(&options, |p| Command::new(p));
        let what = format!("{client:?} Greeter client over TLS");
        let report = greeter::run_call_command(cmd, &what, Duration::from_secs(60))?;
        assert_eq!(report.summary.ok, 5, "{what}: {:?}", report.summary);
    }
    Ok(())
}

/// MUTUAL: a client without a certificate is refused; one with a certificate from the CA in
/// the Secret's `ca.crt` gets through.
#[test]
fn mutual_tls_wants_a_client_certificate() -> Result<()> {
    let certificates = Certificates::new()?;
    let ports = ports();
    let _lo = start("gateway-mtls", &certificates, &ports)?;
    let to = ports.mutual;
    let anonymous = client_config(&certificates.mtls.der, None)?;
    assert!(call_over_tls(to, MTLS_HOST, MTLS_HOST, anonymous).is_err());
    let with_cert = client_config(&certificates.mtls.der, Some(&certificates.client))?;
    let response = call_over_tls(to, MTLS_HOST, MTLS_HOST, with_cert)?;
    assert_eq!(response.grpc_status(), Some(0), "{response:?}");
    assert_eq!(response.header("x-route"), Some("mtls"));
    Ok(())
}

/// PASSTHROUGH: the ClientHello's SNI picks the `tls[]` route and the bytes are relayed; the
/// certificate the client verifies is the one the destination (here the SIMPLE port) serves.
#[test]
fn passthrough_relays_tls_by_sni() -> Result<()> {
    let certificates = Certificates::new()?;
    let ports = ports();
    let lo = start("gateway-passthrough", &certificates, &ports)?;
    let to = ports.passthrough;
    let config = client_config(&certificates.greeter.der, None)?;
    let response = call_over_tls(to, GREETER_HOST, GREETER_HOST, config)?;
    assert_eq!(response.grpc_status(), Some(0), "{response:?}");
    assert_eq!(response.header("x-route"), Some("greeter"));
    let relayed = ["destination_service=\"gateway-loop.default.svc.cluster.local\""];
    wait_until(
        || {
            lo.strait
                .counter("istio_tcp_connections_opened_total", &relayed)
                .unwrap_or(0)
                >= 1
        },
        "the relayed connection's metric",
    )?;
    // An SNI no route names is not relayed.
    let hello = client_config(&certificates.hello.der, None)?;
    assert!(call_over_tls(to, HELLO_HOST, HELLO_HOST, hello).is_err());
    Ok(())
}

/// A new certificate in the Secret is served to new connections, strait still running.
#[test]
fn a_changed_certificate_serves_new_connections() -> Result<()> {
    let mut certificates = Certificates::new()?;
    let ports = ports();
    let lo = start("gateway-reload", &certificates, &ports)?;
    let to = ports.simple;
    let old_root = client_config(&certificates.greeter.der, None)?;
    call_over_tls(to, GREETER_HOST, GREETER_HOST, old_root.clone())?;
    certificates.greeter = self_signed(GREETER_HOST)?;
    fs::write(
        lo.config.join("policy.yaml"),
        config(&certificates, &ports)?,
    )?;
    let new_root = client_config(&certificates.greeter.der, None)?;
    wait_until(
        || call_over_tls(to, GREETER_HOST, GREETER_HOST, new_root.clone()).is_ok(),
        "the new certificate",
    )?;
    assert!(call_over_tls(to, GREETER_HOST, GREETER_HOST, old_root).is_err());
    Ok(())
}
