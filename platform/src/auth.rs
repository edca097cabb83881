//! Who is calling. The gateway verifies the client's access token, then tells
//! the backend the user id and role in `x-shop-*` metadata it sets itself
//! (stripping any a client sent). A backend believes that metadata only when
//! the call also carries the service credential (`x-shop-service-token`),
//! compared in constant time; internal RPCs demand the credential outright.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tonic::metadata::{Ascii, MetadataMap, MetadataValue};
use tonic::{Request, Status};

use crate::transport::tls::{InternalTls, ServerTls};

/// Metadata the gateway sets for the backend and removes from client calls.
pub const USER_ID_HEADER: &str = "x-shop-user-id";
pub const USER_IS_ADMIN_HEADER: &str = "x-shop-user-is-admin";
pub const CLIENT_ADDR_HEADER: &str = "x-shop-client-addr";
pub const SERVICE_TOKEN_HEADER: &str = "x-shop-service-token";
/// Why the token a client presented on a public call was refused (the call
/// went on as anonymous): a public RPC that needs a caller says this.
pub const TOKEN_ERROR_HEADER: &str = "x-shop-token-error";
/// Every header with this prefix is ours: a client can never send one.
pub const INTERNAL_HEADER_PREFIX: &str = "x-shop-";

/// `iss` of every access token identity issues.
pub const TOKEN_ISSUER: &str = "shop-identity";
/// `aud` of every access token identity issues.
pub const TOKEN_AUDIENCE: &str = "shop";
/// `typ` claim of access tokens (refresh tokens are opaque, never JWTs).
pub const ACCESS_TOKEN_TYPE: &str = "access";

const MIN_SERVICE_TOKEN_CHARS: usize = 32;

/// How Shop's services prove themselves to each other: the shared secret
/// every internal call carries and, with internal TLS, the certificates
/// both ends of every internal connection present.
#[derive(Clone)]
pub struct ServiceCredentials {
    token: Arc<SecretString>,
    /// The same secret as the header every outgoing call carries, built once.
    header: MetadataValue<Ascii>,
    tls: Option<Arc<InternalTlsParts>>,
}

/// Internal TLS, read once: the files, and the client side built from them.
struct InternalTlsParts {
    files: InternalTls,
    client: tonic::transport::ClientTlsConfig,
}

impl std::fmt::Debug for ServiceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceCredentials([REDACTED])")
    }
}

impl ServiceCredentials {
    pub fn new(token: SecretString) -> anyhow::Result<Self> {
        let length = token.expose_secret().chars().count();
        anyhow::ensure!(
            length >= MIN_SERVICE_TOKEN_CHARS,
            "SHOP_SERVICE_TOKEN must be at least {MIN_SERVICE_TOKEN_CHARS} characters"
        );
        let header = MetadataValue::try_from(token.expose_secret())
            .map_err(|_| anyhow::anyhow!("SHOP_SERVICE_TOKEN must be printable ASCII"))?;
        Ok(Self { token: Arc::new(token), header, tls: None })
    }

    /// The same credential, with mutual TLS between services on top (its
    /// files read now, so a wrong path fails at start, not at the first call).
    pub fn with_internal_tls(mut self, files: Option<InternalTls>) -> anyhow::Result<Self> {
        self.tls = match files {
            Some(files) => Some(Arc::new(InternalTlsParts { client: files.client_config()?, files })),
            None => None,
        };
        Ok(self)
    }

    /// What an internal call connects with, when services speak TLS.
    pub fn client_tls(&self) -> Option<&tonic::transport::ClientTlsConfig> {
        self.tls.as_deref().map(|tls| &tls.client)
    }

    /// What a backend serves with: TLS requiring a certificate from the
    /// internal CA, when services speak TLS.
    pub fn server_tls(&self) -> anyhow::Result<Option<ServerTls>> {
        self.tls.as_deref().map(|tls| tls.files.server()).transpose()
    }

    /// A fresh random credential, for `shop up` where every service shares one process.
    pub fn random() -> Self {
        Self::new(SecretString::from(Self::random_token())).expect("64 hex digits are a valid service token")
    }

    /// 64 random hex digits: a valid service token (`shop init-secrets` writes one).
    pub fn random_token() -> String {
        format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
    }

    /// Adds the credential to an outgoing call.
    pub fn attach(&self, metadata: &mut MetadataMap) {
        metadata.insert(SERVICE_TOKEN_HEADER, self.header.clone());
    }

    /// Whether an incoming call carries the credential (constant-time).
    pub fn is_presented(&self, metadata: &MetadataMap) -> bool {
        let Some(presented) = metadata.get(SERVICE_TOKEN_HEADER) else {
            return false;
        };
        let expected = self.token.expose_secret().as_bytes();
        bool::from(presented.as_bytes().ct_eq(expected))
    }

    /// Refuses a call without the credential: what every backend RPC does
    /// first, public ones too, so nobody skips the gateway's limits by
    /// calling a backend's port directly.
    pub fn require(&self, metadata: &MetadataMap) -> Result<(), Status> {
        if self.is_presented(metadata) {
            Ok(())
        } else {
            Err(Status::unauthenticated(
                "internal service: valid service credentials required (clients call Shop through the gateway)",
            ))
        }
    }

    /// An interceptor guarding a whole backend service.
    pub fn interceptor(&self) -> impl tonic::service::Interceptor + Clone + use<> {
        let credentials = self.clone();
        move |request: Request<()>| {
            credentials.require(request.metadata())?;
            Ok(request)
        }
    }

    /// Who is calling, as the gateway vouched for it. Identity metadata without
    /// the credential is a forgery and is refused rather than ignored.
    pub fn caller(&self, metadata: &MetadataMap) -> Result<Caller, Status> {
        let claims_identity = metadata.get(USER_ID_HEADER).is_some() || metadata.get(USER_IS_ADMIN_HEADER).is_some();
        if !claims_identity {
            return Ok(Caller::Anonymous);
        }
        if !self.is_presented(metadata) {
            return Err(Status::unauthenticated(
                "caller identity is accepted only from the gateway (service credentials missing)",
            ));
        }
        let id = metadata
            .get(USER_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<i64>().ok())
            .ok_or_else(|| Status::unauthenticated("malformed caller identity"))?;
        let is_admin = metadata.get(USER_IS_ADMIN_HEADER).is_some_and(|value| value.as_bytes() == b"true");
        Ok(Caller::User { id, is_admin })
    }

    /// Why the gateway refused the token the client presented, when it did
    /// and the call went on as anonymous (the gateway's word only).
    pub fn refused_token(&self, metadata: &MetadataMap) -> Option<String> {
        self.is_presented(metadata)
            .then(|| metadata.get(TOKEN_ERROR_HEADER))
            .flatten()
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }

    /// The end client's address: the gateway's word for it when vouched for,
    /// else the peer of this connection.
    pub fn client_ip<T>(&self, request: &Request<T>) -> Option<IpAddr> {
        let vouched = self
            .is_presented(request.metadata())
            .then(|| request.metadata().get(CLIENT_ADDR_HEADER))
            .flatten()
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok());
        vouched.or_else(|| request.remote_addr().map(|addr| addr.ip()))
    }
}

/// The verified caller of one RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    User { id: i64, is_admin: bool },
}

impl Caller {
    /// The user id, or `UNAUTHENTICATED` for a call without a valid token.
    pub fn require_user(self) -> Result<i64, Status> {
        match self {
            Caller::User { id, .. } => Ok(id),
            Caller::Anonymous => Err(Status::unauthenticated("a valid access token is required")),
        }
    }

    pub fn is_admin(self) -> bool {
        matches!(self, Caller::User { is_admin: true, .. })
    }

    /// Writes this caller into an outgoing call's metadata (gateway side).
    pub fn write_to(self, headers: &mut http::HeaderMap) {
        if let Caller::User { id, is_admin } = self {
            headers.insert(USER_ID_HEADER, http::HeaderValue::from(id));
            headers
                .insert(USER_IS_ADMIN_HEADER, http::HeaderValue::from_static(if is_admin { "true" } else { "false" }));
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id, as a decimal string (JWT `sub` is a string).
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// Token id, unique per token.
    pub jti: String,
    /// Always [`ACCESS_TOKEN_TYPE`]: a token of any other type is refused.
    pub typ: String,
    /// Whether the user was an admin when the token was issued.
    pub adm: bool,
}

/// Why an access token was refused; the message is safe to show the client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the access token is malformed")]
    Malformed,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
    #[error("the access token's signature, issuer or audience is wrong")]
    Rejected,
    #[error("the token is not an access token")]
    WrongType,
    #[error("the access token was signed by an unknown key")]
    UnknownKey,
}

/// The public keys access tokens may be signed with, by `kid`. Shared by the
/// gateway's request path and its background refresher.
#[derive(Clone)]
pub struct TokenVerifier {
    keys: Arc<RwLock<HashMap<String, DecodingKey>>>,
    /// What every access token must satisfy, built once rather than per call.
    validation: Arc<Validation>,
}

impl TokenVerifier {
    pub fn new(leeway_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[TOKEN_ISSUER]);
        validation.set_audience(&[TOKEN_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // A token that says it is not valid yet (`nbf`) is refused until then.
        validation.validate_nbf = true;
        validation.leeway = leeway_secs;
        Self { keys: Arc::default(), validation: Arc::new(validation) }
    }

    /// Replaces the key set. `keys` are (kid, base64url Ed25519 public key).
    pub fn set_keys(&self, keys: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<usize> {
        let mut parsed = HashMap::new();
        for (kid, x) in keys {
            parsed.insert(kid, DecodingKey::from_ed_components(&x)?);
        }
        let count = parsed.len();
        // A poisoned lock only means a writer panicked mid-swap of a whole map; the map is still whole.
        *self.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = parsed;
        Ok(count)
    }

    pub fn has_keys(&self) -> bool {
        !self.keys.read().unwrap_or_else(|poisoned| poisoned.into_inner()).is_empty()
    }

    /// Checks signature, `exp`, `iss`, `aud` and `typ`.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Rejected);
        }
        let kid = header.kid.ok_or(TokenError::Malformed)?;
        let keys = self.keys.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = keys.get(&kid).ok_or(TokenError::UnknownKey)?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation).map_err(|error| {
            use jsonwebtoken::errors::ErrorKind;
            match error.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
                    TokenError::Malformed
                }
                _ => TokenError::Rejected,
            }
        })?;
        if data.claims.typ != ACCESS_TOKEN_TYPE {
            return Err(TokenError::WrongType);
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> ServiceCredentials {
        ServiceCredentials::new(SecretString::from("s".repeat(40))).unwrap()
    }

    #[test]
    fn a_short_service_token_is_refused() {
        assert!(ServiceCredentials::new(SecretString::from("short")).is_err());
    }

    #[test]
    fn identity_metadata_without_the_credential_is_refused() {
        let mut metadata = MetadataMap::new();
        metadata.insert(USER_ID_HEADER, "7".parse().unwrap());
        metadata.insert(USER_IS_ADMIN_HEADER, "true".parse().unwrap());
        let status = credentials().caller(&metadata).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn identity_metadata_with_a_wrong_credential_is_refused() {
        let mut metadata = MetadataMap::new();
        metadata.insert(USER_ID_HEADER, "7".parse().unwrap());
        metadata.insert(SERVICE_TOKEN_HEADER, "x".repeat(40).parse().unwrap());
        assert!(credentials().caller(&metadata).is_err());
    }

    #[test]
    fn identity_metadata_with_the_credential_is_the_caller() {
        let credentials = credentials();
        let mut metadata = MetadataMap::new();
        credentials.attach(&mut metadata);
        metadata.insert(USER_ID_HEADER, "7".parse().unwrap());
        metadata.insert(USER_IS_ADMIN_HEADER, "true".parse().unwrap());
        assert_eq!(credentials.caller(&metadata).unwrap(), Caller::User { id: 7, is_admin: true });
    }

    #[test]
    fn no_identity_metadata_is_an_anonymous_caller() {
        assert_eq!(credentials().caller(&MetadataMap::new()).unwrap(), Caller::Anonymous);
    }

    #[test]
    fn the_client_address_is_the_gateways_word_only_with_the_credential() {
        let credentials = credentials();
        let mut vouched = Request::new(());
        credentials.attach(vouched.metadata_mut());
        vouched.metadata_mut().insert(CLIENT_ADDR_HEADER, "203.0.113.7".parse().unwrap());
        assert_eq!(credentials.client_ip(&vouched), Some("203.0.113.7".parse().unwrap()));

        let mut unvouched = Request::new(());
        unvouched.metadata_mut().insert(CLIENT_ADDR_HEADER, "203.0.113.7".parse().unwrap());
        assert_eq!(credentials.client_ip(&unvouched), None);
    }

    #[test]
    fn internal_rpcs_require_the_credential() {
        let credentials = credentials();
        assert!(credentials.require(&MetadataMap::new()).is_err());
        let mut metadata = MetadataMap::new();
        credentials.attach(&mut metadata);
        assert!(credentials.require(&metadata).is_ok());
    }

    #[test]
    fn a_token_from_an_unknown_key_or_garbage_is_refused() {
        let verifier = TokenVerifier::new(0);
        assert_eq!(verifier.verify("not a jwt").unwrap_err(), TokenError::Malformed);
        let unsigned = "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.e30.c2ln";
        assert_eq!(verifier.verify(unsigned).unwrap_err(), TokenError::UnknownKey);
    }
}
