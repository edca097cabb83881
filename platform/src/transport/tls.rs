//! TLS with rustls (on ring): what a server presents and asks of clients,
//! and what Shop's own services present to each other.
//!
//! A server's certificate is read again when its files change (checked every
//! [`RELOAD_EVERY`]): new connections get the new pair, open ones carry on,
//! and a pair that does not load (half written, key of another certificate),
//! that is expired or not valid yet, or that drops a name the served one
//! covers, is logged at ERROR and the last good one kept, so a server never
//! ends up serving what its clients would refuse. The served certificate's
//! expiry is a metric (`shop_tls_certificate_expiry_timestamp_seconds`) to
//! alert on.
//!
//! Between services, a client certificate must come from the internal CA
//! *and* be issued for one of Shop's services (a DNS name of the peer names,
//! or a name under one: `catalog`, `catalog.shop.svc`): a certificate the
//! same CA made for an end user is not a service.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
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

    /// The pair, and what its certificate says of itself; refused when the
    /// certificate is not valid now.
    fn load(&self) -> anyhow::Result<(CertifiedKey, Leaf)> {
        let chain = read_certificates(&self.cert)?;
        let leaf =
            Leaf::of(&chain[0]).with_context(|| format!("{} is not a readable certificate", self.cert.display()))?;
        leaf.check_valid_at(unix_now()).with_context(|| format!("{}", self.cert.display()))?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .with_context(|| format!("{} holds no PEM private key", self.key.display()))?;
        let pair = CertifiedKey::from_der(chain, key, &provider()).with_context(|| {
            format!("{} is not the key of the certificate in {}", self.key.display(), self.cert.display())
        })?;
        Ok((pair, leaf))
    }

    /// What changes when either file is replaced (its modification time and size).
    fn fingerprint(&self) -> Option<[(SystemTime, u64); 2]> {
        let stamp =
            |path: &Path| std::fs::metadata(path).ok().and_then(|meta| Some((meta.modified().ok()?, meta.len())));
        Some([stamp(&self.cert)?, stamp(&self.key)?])
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |since| since.as_secs() as i64)
}

/// What Shop checks of a certificate: when it is valid, and the names it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Leaf {
    /// Seconds since 1970.
    not_before: i64,
    not_after: i64,
    /// Its DNS names and IP addresses (as text).
    names: BTreeSet<String>,
}

impl Leaf {
    fn of(der: &CertificateDer<'_>) -> anyhow::Result<Self> {
        use x509_parser::extensions::GeneralName;
        let (_, certificate) = x509_parser::parse_x509_certificate(der.as_ref())?;
        let validity = certificate.validity();
        let mut names = BTreeSet::new();
        if let Some(alternatives) = certificate.subject_alternative_name()? {
            for name in &alternatives.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => {
                        names.insert(dns.to_ascii_lowercase());
                    }
                    GeneralName::IPAddress(bytes) => {
                        let ip = match bytes.len() {
                            4 => <[u8; 4]>::try_from(*bytes).ok().map(std::net::IpAddr::from),
                            16 => <[u8; 16]>::try_from(*bytes).ok().map(std::net::IpAddr::from),
                            _ => None,
                        };
                        names.extend(ip.map(|ip| ip.to_string()));
                    }
                    _ => {}
                }
            }
        }
        Ok(Self { not_before: validity.not_before.timestamp(), not_after: validity.not_after.timestamp(), names })
    }

    fn check_valid_at(&self, now: i64) -> anyhow::Result<()> {
        let date = |seconds: i64| {
            chrono::DateTime::from_timestamp(seconds, 0).map_or_else(|| seconds.to_string(), |at| at.to_rfc3339())
        };
        anyhow::ensure!(now <= self.not_after, "the certificate expired at {}", date(self.not_after));
        anyhow::ensure!(now >= self.not_before, "the certificate is not valid before {}", date(self.not_before));
        Ok(())
    }

    /// Names `self` covers that `next` does not: a renewal must keep them,
    /// or clients that dial by them would refuse the server.
    fn names_dropped_by(&self, next: &Leaf) -> Vec<String> {
        self.names.difference(&next.names).cloned().collect()
    }

    fn is_for_a_service(&self, peer_names: &[String]) -> bool {
        self.names.iter().any(|name| {
            peer_names
                .iter()
                .any(|peer| name == peer || name.strip_prefix(peer.as_str()).is_some_and(|rest| rest.starts_with('.')))
        })
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
    /// What the pair served at start says of itself.
    leaf: Leaf,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("files", &self.files).finish_non_exhaustive()
    }
}

/// Which client certificates a server takes.
#[derive(Debug, Clone, Copy)]
pub enum ClientCertificates<'a> {
    /// None asked for.
    NotAsked,
    /// One signed by this CA.
    FromCa(&'a Path),
    /// One signed by this CA and issued for one of these names (Shop's
    /// services: see [`InternalTls::peer_names`]).
    FromCaFor(&'a Path, &'a [String]),
}

impl ServerTls {
    /// TLS 1.2 and 1.3 with `files`' pair, ALPN `alpn`, and `clients`' rule
    /// for client certificates.
    pub fn new(files: KeyPairFiles, clients: ClientCertificates<'_>, alpn: &[&[u8]]) -> anyhow::Result<Self> {
        let (pair, leaf) = files.load()?;
        let pair = Arc::new(CurrentPair(RwLock::new(Arc::new(pair))));
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .context("TLS 1.2 and 1.3")?;
        let verifier = |ca: &Path| {
            WebPkiClientVerifier::builder_with_provider(Arc::new(read_roots(ca)?), provider())
                .build()
                .with_context(|| format!("{} cannot check client certificates", ca.display()))
        };
        let builder = match clients {
            ClientCertificates::FromCa(ca) => builder.with_client_cert_verifier(verifier(ca)?),
            ClientCertificates::FromCaFor(ca, names) => builder.with_client_cert_verifier(Arc::new(ServicePeersOnly {
                inner: verifier(ca)?,
                peer_names: names.to_vec(),
            })),
            ClientCertificates::NotAsked => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(pair.clone());
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        Ok(Self { acceptor: TlsAcceptor::from(Arc::new(config)), pair, files, leaf })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Watches the pair's files and swaps a new pair in when they change;
    /// runs until aborted (a server's companion task).
    pub fn spawn_reloader(&self, server: &'static str) -> JoinHandle<()> {
        let pair = self.pair.clone();
        let files = self.files.clone();
        let mut served = self.leaf.clone();
        metrics::describe_gauge!(
            "shop_tls_certificate_expiry_timestamp_seconds",
            "When the certificate a server presents expires (seconds since 1970): alert well before it."
        );
        let expiry = metrics::gauge!("shop_tls_certificate_expiry_timestamp_seconds", "server" => server);
        expiry.set(served.not_after as f64);
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
                let loaded = files.load().and_then(|(loaded, leaf)| {
                    let dropped = served.names_dropped_by(&leaf);
                    anyhow::ensure!(
                        dropped.is_empty(),
                        "{} no longer names {} (clients dial the server by it)",
                        files.cert.display(),
                        dropped.join(", ")
                    );
                    Ok((loaded, leaf))
                });
                match loaded {
                    Ok((loaded, leaf)) => {
                        *pair.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(loaded);
                        expiry.set(leaf.not_after as f64);
                        served = leaf;
                        tracing::info!(server, cert = %files.cert.display(), "TLS certificate reloaded");
                    }
                    Err(error) => tracing::error!(
                        server,
                        error = %crate::error::chain_without_repeats(error.as_ref()),
                        "the changed TLS certificate is not taken; still serving the previous one"
                    ),
                }
            }
        })
    }
}

/// A client verifier that also wants the certificate issued for a service.
#[derive(Debug)]
struct ServicePeersOnly {
    inner: Arc<dyn ClientCertVerifier>,
    peer_names: Vec<String>,
}

impl ClientCertVerifier for ServicePeersOnly {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        let leaf = Leaf::of(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
        if !leaf.is_for_a_service(&self.peer_names) {
            tracing::warn!(names = ?leaf.names, "refused an internal client whose certificate names no Shop service");
            return Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// How Shop's services prove themselves to each other over TLS: the CA
/// both sides trust, and this process's own pair (presented by its servers
/// and by its calls).
#[derive(Debug, Clone)]
pub struct InternalTls {
    pub ca: PathBuf,
    pub pair: KeyPairFiles,
    /// The names a service's certificate is issued for; a client
    /// certificate naming none of them (nor a name under one) is refused.
    pub peer_names: Vec<String>,
}

impl InternalTls {
    /// From the three settings: all or none; `peer_names` comma-separated.
    pub fn from_settings(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
        peer_names: &str,
    ) -> anyhow::Result<Option<Self>> {
        match (ca, cert, key) {
            (Some(ca), Some(cert), Some(key)) => {
                let peer_names: Vec<String> = peer_names
                    .split(',')
                    .map(|name| name.trim().to_ascii_lowercase())
                    .filter(|name| !name.is_empty())
                    .collect();
                anyhow::ensure!(!peer_names.is_empty(), "SHOP_INTERNAL_TLS_PEER_NAMES must name at least one service");
                Ok(Some(Self {
                    ca: ca.to_owned(),
                    pair: KeyPairFiles { cert: cert.to_owned(), key: key.to_owned() },
                    peer_names,
                }))
            }
            (None, None, None) => Ok(None),
            _ => anyhow::bail!(
                "set all of SHOP_INTERNAL_TLS_CA_FILE, SHOP_INTERNAL_TLS_CERT_FILE and SHOP_INTERNAL_TLS_KEY_FILE, or none"
            ),
        }
    }

    /// What a backend serves with: its pair, and only clients the CA signed.
    pub fn server(&self) -> anyhow::Result<ServerTls> {
        ServerTls::new(self.pair.clone(), ClientCertificates::FromCaFor(&self.ca, &self.peer_names), ALPN_GRPC)
    }

    /// What an internal call connects with: the CA to check the server, and
    /// this process's pair to present.
    pub fn client_config(&self) -> anyhow::Result<tonic::transport::ClientTlsConfig> {
        let read = |path: &Path| std::fs::read(path).with_context(|| format!("cannot read {}", path.display()));
        read_roots(&self.ca)?;
        let (_, leaf) = self.pair.load()?;
        anyhow::ensure!(
            leaf.is_for_a_service(&self.peer_names),
            "{} names none of SHOP_INTERNAL_TLS_PEER_NAMES ({}): the other services would refuse it",
            self.pair.cert.display(),
            self.peer_names.join(", ")
        );
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
        let error = InternalTls::from_settings(None, Some(cert), None, "catalog").unwrap_err().to_string();
        for setting in ["SHOP_INTERNAL_TLS_CA_FILE", "SHOP_INTERNAL_TLS_CERT_FILE", "SHOP_INTERNAL_TLS_KEY_FILE"] {
            assert!(error.contains(setting), "{error}");
        }
        assert!(InternalTls::from_settings(None, None, None, "catalog").unwrap().is_none());
    }

    fn leaf(names: &[&str]) -> Leaf {
        Leaf { not_before: 100, not_after: 200, names: names.iter().map(|name| name.to_string()).collect() }
    }

    #[test]
    fn a_certificate_outside_its_validity_is_refused() {
        assert!(leaf(&[]).check_valid_at(150).is_ok());
        let expired = leaf(&[]).check_valid_at(201).unwrap_err().to_string();
        assert!(expired.contains("expired"), "{expired}");
        let early = leaf(&[]).check_valid_at(99).unwrap_err().to_string();
        assert!(early.contains("not valid before"), "{early}");
    }

    #[test]
    fn a_renewal_must_keep_every_name_the_served_certificate_covers() {
        let served = leaf(&["shop.example", "127.0.0.1"]);
        assert!(served.names_dropped_by(&leaf(&["shop.example", "127.0.0.1", "api.shop.example"])).is_empty());
        assert_eq!(served.names_dropped_by(&leaf(&["shop.example"])), ["127.0.0.1"]);
    }

    #[test]
    fn a_service_peer_is_known_by_a_service_name_or_a_name_under_one() {
        let peers = ["catalog".to_owned(), "cart-order".to_owned()];
        assert!(leaf(&["catalog", "localhost"]).is_for_a_service(&peers));
        assert!(leaf(&["cart-order.shop.svc.cluster.local"]).is_for_a_service(&peers));
        assert!(!leaf(&["client", "localhost", "127.0.0.1"]).is_for_a_service(&peers));
        assert!(!leaf(&["catalogue"]).is_for_a_service(&peers), "a longer first label is another name");
        assert!(!leaf(&["evil.catalog.example"]).is_for_a_service(&peers), "only the first label counts");
    }

    #[test]
    fn a_missing_or_foreign_file_is_named() {
        let files = KeyPairFiles { cert: "/no/such/cert.pem".into(), key: "/no/such/key.pem".into() };
        let error = format!("{:#}", ServerTls::new(files, ClientCertificates::NotAsked, ALPN_GRPC).unwrap_err());
        assert!(error.contains("/no/such/cert.pem"), "{error}");
    }
}
