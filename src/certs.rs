//! `shop certs`: a throwaway certificate authority and a certificate for the
//! gateway, each service and one client, for local clusters and tests.
//! Production certificates come from the operator's own CA or cert-manager.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Who gets a certificate: the gateway, each service (named as docker-compose
/// and Kubernetes dial them), and a client for a gateway that asks for one.
pub const HOLDERS: [&str; 6] = ["gateway", "identity", "catalog", "cart-order", "reporting", "client"];

/// The holder that is not a service: a client of a gateway that asks for
/// certificates. Backends refuse it (its name is no service's).
pub const END_USER: &str = "client";

/// The CA's certificate: what both sides trust.
pub const CA_FILE: &str = "ca.pem";

/// How many years the throwaway certificates last.
const VALID_YEARS: i32 = 2;

/// A holder's certificate and key files in `dir`.
pub fn pair_files(dir: &Path, holder: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{holder}.pem")), dir.join(format!("{holder}.key")))
}

/// Writes `ca.pem` and a pair per holder into `dir`, unless `ca.pem` is
/// already there (then nothing changes: a restart keeps its certificates).
/// Every certificate names its holder, `localhost`, 127.0.0.1 and ::1, plus
/// `extra_names` (the gateway's public name, say). The CA's key is never
/// written: nobody can sign more with it, which is the point of throwaway.
/// Returns whether it wrote anything.
pub fn make(dir: &Path, extra_names: &[String]) -> anyhow::Result<bool> {
    if dir.join(CA_FILE).exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name = name("Shop throwaway CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut ca);
    let ca_certificate = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    for holder in HOLDERS {
        let mut names = vec![holder.to_owned(), "localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        names.extend(extra_names.iter().cloned());
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name = name(holder);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // Services serve and call each other; the end user's client only calls.
        params.extended_key_usages = if holder == END_USER {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        } else {
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth]
        };
        validity(&mut params);
        let certificate = params.signed_by(&key, &issuer)?;
        let (cert_file, key_file) = pair_files(dir, holder);
        crate::private_file::write(&key_file, key.serialize_pem().as_bytes())?;
        write_public(&cert_file, certificate.pem().as_bytes())?;
    }
    // Last: its presence says the set is whole.
    write_public(&dir.join(CA_FILE), ca_certificate.pem().as_bytes())?;
    Ok(true)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

/// From the start of last year (clocks differ) to the start of the year
/// [`VALID_YEARS`] ahead.
fn validity(params: &mut CertificateParams) {
    const SECONDS_PER_YEAR: u64 = 31_556_952;
    let since_1970 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let year = 1970 + i32::try_from(since_1970.as_secs() / SECONDS_PER_YEAR).unwrap_or(0);
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + VALID_YEARS, 1, 1);
}

fn write_public(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_made_once_and_every_pair_loads_and_chains_to_the_ca() {
        let dir = std::env::temp_dir().join(format!("shop-certs-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(make(&dir, &["shop.example".to_owned()]).unwrap());
        let ca = std::fs::read(dir.join(CA_FILE)).unwrap();
        for holder in HOLDERS {
            let (cert, key) = pair_files(&dir, holder);
            let pair = shop_platform::transport::tls::KeyPairFiles { cert, key };
            let clients = shop_platform::transport::tls::ClientCertificates::FromCa(&dir.join(CA_FILE));
            shop_platform::transport::tls::ServerTls::new(pair, clients, shop_platform::transport::tls::ALPN_GRPC)
                .unwrap_or_else(|error| panic!("{holder}: {error:#}"));
        }
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(pair_files(&dir, "catalog").1).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o400, "keys are their owner's only");
        assert!(!make(&dir, &[]).unwrap(), "a second run keeps the set");
        assert_eq!(std::fs::read(dir.join(CA_FILE)).unwrap(), ca);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
