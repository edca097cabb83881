//! Issuing tokens. Access tokens are EdDSA JWTs; refresh tokens are 32 random
//! bytes (base64url) of which only the SHA-256 is stored.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use shop_platform::auth::{ACCESS_TOKEN_TYPE, AccessClaims, TOKEN_AUDIENCE, TOKEN_ISSUER};

use crate::error::Error;

/// The key access tokens are signed with.
#[derive(Clone)]
pub struct SigningMaterial {
    pub kid: String,
    /// PKCS#8 DER.
    pub private_key_der: Vec<u8>,
    /// base64url public key, the JWK `x`.
    pub public_key_x: String,
    encoding_key: EncodingKey,
}

impl std::fmt::Debug for SigningMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningMaterial").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningMaterial {
    pub fn generate() -> Result<Self, Error> {
        let mut seed = [0_u8; 32];
        argon2::password_hash::rand_core::RngCore::fill_bytes(&mut argon2::password_hash::rand_core::OsRng, &mut seed);
        Self::from_signing_key(&SigningKey::from_bytes(&seed))
    }

    /// The private key as PKCS#8 PEM, the form SHOP_IDENTITY_SIGNING_KEY_FILE takes.
    pub fn private_key_pem(&self) -> Result<String, Error> {
        let key = SigningKey::from_pkcs8_der(&self.private_key_der)
            .map_err(|_| Error::Internal("signing key is not Ed25519 PKCS#8".into()))?;
        let pem = key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|_| Error::Internal("cannot encode signing key".into()))?;
        Ok(pem.to_string())
    }

    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, Error> {
        let key = SigningKey::from_pkcs8_der(der)
            .map_err(|_| Error::Internal("stored signing key is not Ed25519 PKCS#8".into()))?;
        Self::from_signing_key(&key)
    }

    /// From `SHOP_IDENTITY_SIGNING_KEY`: PKCS#8 PEM, or base64 of PKCS#8 DER.
    pub fn from_config(configured: &SecretString) -> anyhow::Result<Self> {
        let text = configured.expose_secret().trim();
        let key = if text.starts_with("-----BEGIN") {
            SigningKey::from_pkcs8_pem(text)
                .map_err(|_| anyhow::anyhow!("SHOP_IDENTITY_SIGNING_KEY is not an Ed25519 PKCS#8 PEM key"))?
        } else {
            let der = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| anyhow::anyhow!("SHOP_IDENTITY_SIGNING_KEY is neither PEM nor base64 PKCS#8 DER"))?;
            SigningKey::from_pkcs8_der(&der)
                .map_err(|_| anyhow::anyhow!("SHOP_IDENTITY_SIGNING_KEY is not an Ed25519 PKCS#8 key"))?
        };
        Ok(Self::from_signing_key(&key)?)
    }

    fn from_signing_key(key: &SigningKey) -> Result<Self, Error> {
        let der =
            key.to_pkcs8_der().map_err(|_| Error::Internal("cannot encode signing key".into()))?.as_bytes().to_vec();
        let public = key.verifying_key().to_bytes();
        // The kid is derived from the public key, so the same key always has the same id.
        let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(public)[..12]);
        Ok(Self {
            kid,
            encoding_key: EncodingKey::from_ed_der(&der),
            private_key_der: der,
            public_key_x: URL_SAFE_NO_PAD.encode(public),
        })
    }

    pub fn sign_access_token(
        &self,
        user_id: i64,
        is_admin: bool,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> Result<(String, DateTime<Utc>), Error> {
        let expires_at =
            now + chrono::Duration::from_std(ttl).map_err(|_| Error::Internal("token ttl out of range".into()))?;
        let claims = AccessClaims {
            sub: user_id.to_string(),
            iss: TOKEN_ISSUER.to_owned(),
            aud: TOKEN_AUDIENCE.to_owned(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            typ: ACCESS_TOKEN_TYPE.to_owned(),
            adm: is_admin,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding_key)
            .map_err(|error| Error::Internal(format!("signing: {error}")))?;
        Ok((token, expires_at))
    }
}

/// A new refresh token and the hash under which it is stored.
pub fn new_refresh_token() -> (String, Vec<u8>) {
    let mut bytes = [0_u8; 32];
    argon2::password_hash::rand_core::RngCore::fill_bytes(&mut argon2::password_hash::rand_core::OsRng, &mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = refresh_token_hash(&token);
    (token, hash)
}

/// Tokens are looked up by this hash, never compared as text.
pub fn refresh_token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shop_platform::auth::TokenVerifier;

    #[test]
    fn a_signed_access_token_verifies_with_the_published_key() {
        let key = SigningMaterial::generate().unwrap();
        let (token, _) = key.sign_access_token(42, true, Utc::now(), std::time::Duration::from_secs(60)).unwrap();
        let verifier = TokenVerifier::new(0);
        verifier.set_keys([(key.kid.clone(), key.public_key_x.clone())]).unwrap();
        let claims = verifier.verify(&token).unwrap();
        assert_eq!(claims.sub, "42");
        assert!(claims.adm);
    }

    #[test]
    fn a_token_signed_by_another_key_with_the_same_kid_is_refused() {
        let key = SigningMaterial::generate().unwrap();
        let impostor = SigningMaterial::generate().unwrap();
        let verifier = TokenVerifier::new(0);
        verifier.set_keys([(impostor.kid.clone(), key.public_key_x.clone())]).unwrap();
        let (token, _) = impostor.sign_access_token(1, false, Utc::now(), std::time::Duration::from_secs(60)).unwrap();
        assert!(verifier.verify(&token).is_err());
    }

    #[test]
    fn a_new_key_as_pem_is_what_the_key_file_setting_reads() {
        let key = SigningMaterial::generate().unwrap();
        let pem = key.private_key_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        let again = SigningMaterial::from_config(&SecretString::from(pem)).unwrap();
        assert_eq!(again.kid, key.kid);
    }

    #[test]
    fn a_stored_key_round_trips_through_pkcs8() {
        let key = SigningMaterial::generate().unwrap();
        let again = SigningMaterial::from_pkcs8_der(&key.private_key_der).unwrap();
        assert_eq!(key.kid, again.kid);
        assert_eq!(key.public_key_x, again.public_key_x);
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (first, first_hash) = new_refresh_token();
        let (second, _) = new_refresh_token();
        assert_ne!(first, second);
        assert_eq!(refresh_token_hash(&first), first_hash);
    }
}
