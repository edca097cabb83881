//! `shop init-secrets`: the secrets a cluster needs, made on first start so
//! nobody has to make them by hand: the service credential every server
//! shares, and identity's access-token signing key. A file already in place
//! is kept (a restart changes nothing); a file of the same name in `--from`
//! (the operator's own) is copied in instead of making one.

use std::path::Path;

use anyhow::Context as _;

/// The file names, as docker-compose and `shop serve` read them.
pub const SERVICE_TOKEN_FILE: &str = "service_token";
pub const SIGNING_KEY_FILE: &str = "identity_signing_key.pem";
/// Where the throwaway TLS certificates go (`docker-compose.tls.yml` uses them).
pub const TLS_DIR: &str = "tls";

/// What happened to one secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Kept,
    Copied,
    Made,
}

impl Outcome {
    pub fn describe(self) -> &'static str {
        match self {
            Outcome::Kept => "kept",
            Outcome::Copied => "copied from --from",
            Outcome::Made => "made",
        }
    }
}

/// Makes sure `dir` holds TLS certificates: kept if there, else the
/// operator's own (`given`, holding `ca.pem` and `NAME.pem` / `NAME.key` as
/// `shop certs` names them) copied in, else a throwaway set made.
pub fn init_tls(dir: &Path, given: Option<&Path>) -> anyhow::Result<Outcome> {
    if dir.join(crate::certs::CA_FILE).exists() {
        return Ok(Outcome::Kept);
    }
    let Some(given) = given.filter(|given| given.join(crate::certs::CA_FILE).is_file()) else {
        crate::certs::make(dir, &[])?;
        return Ok(Outcome::Made);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for entry in std::fs::read_dir(given)? {
        let path = entry?.path();
        let Some(name) = path.file_name().filter(|_| path.is_file()) else { continue };
        let contents = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        if name.to_string_lossy().ends_with(".key") {
            crate::private_file::write(&dir.join(name), &contents)?;
        } else {
            std::fs::write(dir.join(name), contents)?;
        }
    }
    Ok(Outcome::Copied)
}

/// Makes sure `dir` holds both secrets, readable by their owner only.
pub fn init(dir: &Path, from: Option<&Path>) -> anyhow::Result<Vec<(&'static str, Outcome)>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let service_token = || Ok(shop_platform::auth::ServiceCredentials::random_token());
    let signing_key = shop_identity::new_signing_key_pem;
    let mut done = Vec::new();
    for (name, make) in
        [(SERVICE_TOKEN_FILE, &service_token as &dyn Fn() -> anyhow::Result<String>), (SIGNING_KEY_FILE, &signing_key)]
    {
        let path = dir.join(name);
        let outcome = if std::fs::metadata(&path).is_ok_and(|file| file.len() > 0) {
            Outcome::Kept
        } else if let Some(given) = from.map(|from| from.join(name)).filter(|given| given.is_file()) {
            let contents = std::fs::read(&given).with_context(|| format!("cannot read {}", given.display()))?;
            crate::private_file::write(&path, &contents)?;
            Outcome::Copied
        } else {
            crate::private_file::write(&path, make()?.as_bytes())?;
            Outcome::Made
        };
        done.push((name, outcome));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn secrets_are_made_once_kept_after_and_given_ones_win() {
        let root = std::env::temp_dir().join(format!("shop-secrets-{}", uuid_like()));
        let (dir, given) = (root.join("volume"), root.join("given"));
        std::fs::create_dir_all(&given).unwrap();
        std::fs::write(given.join(SERVICE_TOKEN_FILE), "an-operator-token-0123456789abcdef-0123").unwrap();

        let first = init(&dir, Some(&given)).unwrap();
        assert_eq!(first, [(SERVICE_TOKEN_FILE, Outcome::Copied), (SIGNING_KEY_FILE, Outcome::Made)]);
        let token = std::fs::read_to_string(dir.join(SERVICE_TOKEN_FILE)).unwrap();
        assert_eq!(token, "an-operator-token-0123456789abcdef-0123");
        let key = std::fs::read_to_string(dir.join(SIGNING_KEY_FILE)).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
        let mode = std::fs::metadata(dir.join(SIGNING_KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o400);

        let again = init(&dir, None).unwrap();
        assert_eq!(again, [(SERVICE_TOKEN_FILE, Outcome::Kept), (SIGNING_KEY_FILE, Outcome::Kept)]);
        assert_eq!(std::fs::read_to_string(dir.join(SIGNING_KEY_FILE)).unwrap(), key, "a restart changes nothing");
        std::fs::remove_dir_all(&root).unwrap();
    }

    fn uuid_like() -> String {
        format!("{}-{:?}", std::process::id(), std::time::SystemTime::now())
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect()
    }
}
