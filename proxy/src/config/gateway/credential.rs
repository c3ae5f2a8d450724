//! A server's certificate, from its `credentialName` as Istio reads it: a `kubernetes.io/tls`
//! Secret in the Gateway's namespace with `tls.crt` (the chain, PEM) and `tls.key`; for MUTUAL
//! the clients' CA from `ca.crt` in that Secret, else from the Secret `<credentialName>-cacert`.
//! Values come from `stringData`, else base64 `data`. Parsed when the model is built, so a bad
//! Secret is reported at load and its server is not served.

use std::{fmt, sync::Arc};

use base64::Engine;
use rustls::{
    crypto::ring,
    server::{danger::ClientCertVerifier, WebPkiClientVerifier},
    sign::CertifiedKey,
    RootCertStore,
};
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};

use crate::config::resources::{Resources, Secret};

const CERT: &str = "tls.crt";
const KEY: &str = "tls.key";
const CA: &str = "ca.crt";
/// Istio's name for a Secret that holds only the clients' CA of another.
const CA_SECRET_SUFFIX: &str = "-cacert";

/// A certificate with its key, and for MUTUAL what client certificates must chain to.
#[derive(Clone)]
pub struct Credential {
    pub certified: Arc<CertifiedKey>,
    /// `Some` for MUTUAL.
    pub client_verifier: Option<Arc<dyn ClientCertVerifier>>,
    /// The client CA as read, to tell generations apart.
    client_ca: Vec<CertificateDer<'static>>,
}

impl PartialEq for Credential {
    fn eq(&self, other: &Self) -> bool {
        self.certified.cert == other.certified.cert && self.client_ca == other.client_ca
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("certificates", &self.certified.cert.len())
            .field("mutual", &self.client_verifier.is_some())
            .finish()
    }
}

/// Why a credential cannot be used; names the Secret and key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// A Secret it needs is not in the config.
    #[error("{0}")]
    NotLoaded(String),
    /// The Secret is there but cannot be used.
    #[error("{0}")]
    Invalid(String),
}

impl Credential {
    /// The credential `name` in `namespace`; `mutual` also reads the clients' CA.
    pub fn load(
        resources: &Resources,
        namespace: &str,
        name: &str,
        mutual: bool,
    ) -> Result<Self, CredentialError> {
        let secret = SecretData::find(resources, namespace, name).ok_or_else(|| {
            CredentialError::NotLoaded(format!("Secret {namespace}/{name} is not loaded"))
        })?;
        let chain = certificates(&secret, CERT)?;
        let key = PrivateKeyDer::from_pem_slice(&secret.value(KEY)?)
            .map_err(|err| secret.error(KEY, &format!("no PEM private key ({err})")))?;
        let signing = ring::sign::any_supported_type(&key)
            .map_err(|err| secret.error(KEY, &format!("unusable key ({err})")))?;
        let certified = CertifiedKey::new(chain, signing);
        certified
            .keys_match()
            .map_err(|err| secret.error(KEY, &format!("does not match {CERT} ({err})")))?;
        let (client_verifier, client_ca) = match mutual {
            true => {
                let ca = client_ca(resources, &secret)?;
                (Some(verifier(&secret, &ca)?), ca)
            }
            false => (None, Vec::new()),
        };
        Ok(Self {
            certified: Arc::new(certified),
            client_verifier,
            client_ca,
        })
    }
}

/// `ca.crt` of the Secret, else of `<name>-cacert`.
fn client_ca(
    resources: &Resources,
    secret: &SecretData<'_>,
) -> Result<Vec<CertificateDer<'static>>, CredentialError> {
    if secret.has(CA) {
        return certificates(secret, CA);
    }
    let ca_name = format!("{}{CA_SECRET_SUFFIX}", secret.name);
    match SecretData::find(resources, secret.namespace, &ca_name) {
        Some(ca_secret) => certificates(&ca_secret, CA),
        None => Err(CredentialError::NotLoaded(format!(
            "MUTUAL needs the clients' CA: Secret {}/{} has no {CA} and Secret {}/{ca_name} is not loaded",
            secret.namespace, secret.name, secret.namespace
        ))),
    }
}

fn verifier(
    secret: &SecretData<'_>,
    ca: &[CertificateDer<'static>],
) -> Result<Arc<dyn ClientCertVerifier>, CredentialError> {
    let mut roots = RootCertStore::empty();
    for certificate in ca {
        roots
            .add(certificate.clone())
            .map_err(|err| secret.error(CA, &format!("not a CA certificate ({err})")))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::new(ring::default_provider()))
        .build()
        .map_err(|err| secret.error(CA, &err.to_string()))
}

/// Every PEM certificate under `key`; at least one.
fn certificates(
    secret: &SecretData<'_>,
    key: &str,
) -> Result<Vec<CertificateDer<'static>>, CredentialError> {
    let pem = secret.value(key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|err| secret.error(key, &format!("bad PEM ({err})")))?;
    if chain.is_empty() {
        return Err(secret.error(key, "no PEM certificate"));
    }
    Ok(chain)
}

/// A Secret's values, as Kubernetes merges them: `stringData` over base64 `data`.
struct SecretData<'a> {
    namespace: &'a str,
    name: &'a str,
    secret: &'a Secret,
}

impl<'a> SecretData<'a> {
    fn find(resources: &'a Resources, namespace: &'a str, name: &'a str) -> Option<Self> {
        let secret = resources.of::<Secret>().find(|secret| {
            let meta = &secret.resource.metadata;
            meta.name == name && meta.namespace == namespace
        })?;
        Some(Self {
            namespace,
            name,
            secret: secret.resource,
        })
    }

    fn has(&self, key: &str) -> bool {
        self.secret.string_data.contains_key(key) || self.secret.data.contains_key(key)
    }

    fn value(&self, key: &str) -> Result<Vec<u8>, CredentialError> {
        if let Some(text) = self.secret.string_data.get(key) {
            return Ok(text.clone().into_bytes());
        }
        let encoded = self
            .secret
            .data
            .get(key)
            .ok_or_else(|| self.error(key, "missing"))?;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|err| self.error(key, &format!("data is not base64 ({err})")))
    }

    fn error(&self, key: &str, problem: &str) -> CredentialError {
        CredentialError::Invalid(format!(
            "Secret {}/{} {key}: {problem}",
            self.namespace, self.name
        ))
    }
}
