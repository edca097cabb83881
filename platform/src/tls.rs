//! TLS with rustls (on ring): what a server presents and asks of clients,
//! and what Shop's own services present to each other.
//!
//! A server's certificate is read again when its files change (checked every
//! [`RELOAD_EVERY`]): new connections get the new pair, open ones carry on,
//! and a pair that does not load (half written, key of another certificate)
//! is logged and the last good one kept, so a server never ends up with
//! nothing to serve.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// How often certificate files are checked for a change.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// ALPN for gRPC only.
pub const ALPN_GRPC: &[&[u8]] = &[b"h2"];
/// ALPN for a server that also takes gRPC-Web over HTTP/1.1.
pub const ALPN_GRPC_AND_WEB: &[&[u8]] = &[b"h2", b"http/1.1"];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct KeyPairFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl KeyPairFiles {
    /// Both settings or neither: one alone is refused, naming both.
    pub fn from_settings(
        cert: Option<&Path>,
        key: Option<&Path>,
        cert_setting: &str,
        key_setting: &str,
    ) -> anyhow::Result<Option<Self>> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(Self { cert: cert.to_owned(), key: key.to_owned() })),
            (None, None) => Ok(None),
            _ => anyhow::bail!(
                "set both {cert_setting} and {key_setting} (TLS needs the certificate and its key), or neither"
            ),
        }
    }

    fn load(&self) -> anyhow::Result<CertifiedKey> {
        let chain = read_certificates(&self.cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .with_context(|| format!("{} holds no PEM private key", self.key.display()))?;
        CertifiedKey::from_der(chain, key, &provider()).with_context(|| {
            format!("{} is not the key of the certificate in {}", self.key.display(), self.cert.display())
        })
    }

    /// What changes when either file is replaced (its modification time and size).
    fn fingerprint(&self) -> Option<[(SystemTime, u64); 2]> {
        let stamp =
            |path: &Path| std::fs::metadata(path).ok().and_then(|meta| Some((meta.modified().ok()?, meta.len())));
        Some([stamp(&self.cert)?, stamp(&self.key)?])
    }
}

fn read_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read certificates from {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not PEM certificates", path.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{} holds no certificate", path.display());
    Ok(chain)
}

/// The roots a CA file names, for checking the other side's certificate.
fn read_roots(path: &Path) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in read_certificates(path)? {
        roots.add(certificate).with_context(|| format!("{} holds a certificate that is not a CA", path.display()))?;
    }
    Ok(roots)
}

/// The pair a server presents, swapped in place when its files change.
#[derive(Debug)]
struct CurrentPair(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentPair {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone())
    }
}

/// What a TLS server presents and asks: its pair, reloaded when the files
/// change, and, with a client CA, a client certificate signed by it.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    pair: Arc<CurrentPair>,
    files: KeyPairFiles,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("files", &self.files).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// TLS 1.2 and 1.3 with `files`' pair, ALPN `alpn`; with `client_ca`, a
    /// client must present a certificate that CA signed.
    pub fn new(files: KeyPairFiles, client_ca: Option<&Path>, alpn: &[&[u8]]) -> anyhow::Result<Self> {
        let pair = Arc::new(CurrentPair(RwLock::new(Arc::new(files.load()?))));
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .context("TLS 1.2 and 1.3")?;
        let builder = match client_ca {
            Some(ca) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(read_roots(ca)?), provider())
                    .build()
                    .with_context(|| format!("{} cannot check client certificates", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(pair.clone());
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        Ok(Self { acceptor: TlsAcceptor::from(Arc::new(config)), pair, files })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Watches the pair's files and swaps a new pair in when they change;
    /// runs until aborted (a server's companion task).
    pub fn spawn_reloader(&self, server: &'static str) -> JoinHandle<()> {
        let pair = self.pair.clone();
        let files = self.files.clone();
        tokio::spawn(async move {
            let mut seen = files.fingerprint();
            let mut ticks = tokio::time::interval(RELOAD_EVERY);
            loop {
                ticks.tick().await;
                let now = files.fingerprint();
                if now.is_none() || now == seen {
                    continue;
                }
                seen = now;
                match files.load() {
                    Ok(loaded) => {
                        *pair.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(loaded);
                        tracing::info!(server, cert = %files.cert.display(), "TLS certificate reloaded");
                    }
                    Err(error) => tracing::error!(
                        server,
                        error = %crate::error::chain_without_repeats(error.as_ref()),
                        "the changed TLS certificate does not load; still serving the previous one"
                    ),
                }
            }
        })
    }
}

/// How Shop's services prove themselves to each other over TLS: the CA
/// both sides trust, and this process's own pair (presented by its servers
/// and by its calls).
#[derive(Debug, Clone)]
pub struct InternalTls {
    pub ca: PathBuf,
    pub pair: KeyPairFiles,
}

impl InternalTls {
    /// From the three settings: all or none.
    pub fn from_settings(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> anyhow::Result<Option<Self>> {
        match (ca, cert, key) {
            (Some(ca), Some(cert), Some(key)) => {
                Ok(Some(Self { ca: ca.to_owned(), pair: KeyPairFiles { cert: cert.to_owned(), key: key.to_owned() } }))
            }
            (None, None, None) => Ok(None),
            _ => anyhow::bail!(
                "set all of SHOP_INTERNAL_TLS_CA_FILE, SHOP_INTERNAL_TLS_CERT_FILE and SHOP_INTERNAL_TLS_KEY_FILE, or none"
            ),
        }
    }

    /// What a backend serves with: its pair, and only clients the CA signed.
    pub fn server(&self) -> anyhow::Result<ServerTls> {
        ServerTls::new(self.pair.clone(), Some(&self.ca), ALPN_GRPC)
    }

    /// What an internal call connects with: the CA to check the server, and
    /// this process's pair to present.
    pub fn client_config(&self) -> anyhow::Result<tonic::transport::ClientTlsConfig> {
        let read = |path: &Path| std::fs::read(path).with_context(|| format!("cannot read {}", path.display()));
        read_roots(&self.ca)?;
        self.pair.load()?;
        Ok(tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(read(&self.ca)?))
            .identity(tonic::transport::Identity::from_pem(read(&self.pair.cert)?, read(&self.pair.key)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_needs_both_files_and_says_which_settings() {
        let cert = Path::new("/etc/shop/cert.pem");
        let error = KeyPairFiles::from_settings(Some(cert), None, "CERT_SETTING", "KEY_SETTING").unwrap_err();
        assert!(error.to_string().contains("CERT_SETTING") && error.to_string().contains("KEY_SETTING"), "{error}");
        assert!(KeyPairFiles::from_settings(None, None, "C", "K").unwrap().is_none());
        let error = InternalTls::from_settings(None, Some(cert), None).unwrap_err().to_string();
        for setting in ["SHOP_INTERNAL_TLS_CA_FILE", "SHOP_INTERNAL_TLS_CERT_FILE", "SHOP_INTERNAL_TLS_KEY_FILE"] {
            assert!(error.contains(setting), "{error}");
        }
        assert!(InternalTls::from_settings(None, None, None).unwrap().is_none());
    }

    #[test]
    fn a_missing_or_foreign_file_is_named() {
        let files = KeyPairFiles { cert: "/no/such/cert.pem".into(), key: "/no/such/key.pem".into() };
        let error = format!("{:#}", ServerTls::new(files, None, ALPN_GRPC).unwrap_err());
        assert!(error.contains("/no/such/cert.pem"), "{error}");
    }
}
