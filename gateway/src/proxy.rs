//! The forwarding path: look the method up in the policy table, check the
//! token, replace any `x-shop-*` metadata with our own, and pass the HTTP/2
//! request and response through unchanged (the gRPC frames are never
//! decoded); the answer goes back through a [`crate::pump`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body as AxumBody;
use http::{HeaderMap, Request, Response};
use shop_platform::auth::{
    CLIENT_ADDR_HEADER, Caller, INTERNAL_HEADER_PREFIX, ServiceCredentials, TOKEN_ERROR_HEADER, TokenError,
};
use shop_platform::config::DEFAULT_MAX_HEADER_LIST_BYTES;
use shop_platform::transport::body_budget::BodyFailure;
use shop_platform::transport::connection::{ConnectionInfo, PerAddress};
use tonic::Status;
use tonic::transport::Channel;
use tower::ServiceExt as _;

use crate::keys::KeyCache;
use crate::policy::{Access, PolicyTable};
use crate::pump;

/// Backend channels by gRPC service name (`shop.cart.v1.CartService`).
pub type Backends = HashMap<&'static str, (&'static str, Channel)>;

#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    policy: PolicyTable,
    backends: Backends,
    keys: KeyCache,
    credentials: ServiceCredentials,
    limits: CallLimits,
    calls_per_addr: PerAddress,
}

/// What one client may ask of the gateway.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    /// Calls in flight per client address (0: no limit).
    pub calls_per_addr: usize,
    /// How long a client may take nothing of its answer.
    pub stall: Duration,
    /// The server's cap on a call's life (a shorter client deadline wins).
    pub request_timeout: Duration,
}

/// The longest access token the gateway reads; any real one is far shorter.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The header block's size as HTTP/2 counts it (RFC 9113 §6.5.2).
fn header_list_size(headers: &HeaderMap) -> usize {
    headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 32).sum()
}

impl Proxy {
    pub fn new(
        policy: PolicyTable,
        backends: Backends,
        keys: KeyCache,
        credentials: ServiceCredentials,
        limits: CallLimits,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                policy,
                backends,
                keys,
                credentials,
                limits,
                calls_per_addr: PerAddress::default(),
            }),
        }
    }
}

impl tower::Service<Request<AxumBody>> for Proxy {
    type Response = Response<AxumBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<AxumBody>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { Ok(inner.forward(request).await.unwrap_or_else(|status| status.into_http())) })
    }
}

impl Inner {
    async fn forward(&self, mut request: Request<AxumBody>) -> Result<Response<AxumBody>, Status> {
        let path = request.uri().path().to_owned();
        let unknown = || Status::unimplemented(format!("unknown method {}", shop_platform::kernel::text::echo(&path)));
        let rpc = self.policy.rpc(&path).ok_or_else(unknown)?;
        let access = rpc.access;
        let (backend_name, channel) = self.backends.get(rpc.service.as_str()).cloned().ok_or_else(unknown)?;

        // Not a token any client was given, whatever the method's access level.
        if request.headers().get(http::header::AUTHORIZATION).is_some_and(|value| value.len() > MAX_TOKEN_BYTES) {
            return Err(Status::unauthenticated(format!(
                "the access token is too large (at most {MAX_TOKEN_BYTES} bytes)"
            )));
        }
        let mut refused_token = None;
        let caller = match (access, self.authenticate(request.headers()).await) {
            (_, Ok(caller)) => caller,
            // A stale token must not block a public call: a client that always
            // attaches its access token still has to reach RefreshToken. The
            // backend hears why, for a call that needs a caller after all.
            (Access::Public, Err(status)) => {
                refused_token = http::HeaderValue::from_str(status.message()).ok();
                Caller::Anonymous
            }
            (_, Err(status)) => return Err(status),
        };
        authorize(access, caller)?;
        if let Caller::User { id, .. } = caller {
            tracing::Span::current().record("user_id", id);
        }

        // Set when the client's message is given up (no room, or it stopped
        // arriving): then that, not the backend's lost stream, is the answer.
        let body_failure = request.extensions().get::<BodyFailure>().cloned().unwrap_or_default();
        let connection_info = request.extensions().get::<ConnectionInfo>();
        let client_addr = connection_info.and_then(|info| info.tcp.remote_addr()).map(|addr| addr.ip());
        let connection = connection_info.map(|info| info.state.clone());
        let in_flight = match client_addr {
            Some(addr) => Some(
                self.calls_per_addr
                    .take(addr, self.limits.calls_per_addr)
                    .ok_or_else(|| Status::resource_exhausted("too many calls in flight from this address"))?,
            ),
            None => None,
        };
        let deadline = shop_platform::transport::client::incoming_timeout(request.headers());
        let started = tokio::time::Instant::now();
        // A gRPC-Web call may have come over HTTP/1.1; it goes on as HTTP/2,
        // where the authority is the backend's, not the client's Host.
        *request.version_mut() = http::Version::HTTP_2;
        let headers = request.headers_mut();
        headers.remove(http::header::HOST);
        strip_internal_metadata(headers);
        headers.remove(http::header::AUTHORIZATION);
        caller.write_to(headers);
        if let Some(reason) = refused_token {
            headers.insert(TOKEN_ERROR_HEADER, reason);
        }
        // The backend's span becomes a child of this one (when tracing).
        shop_platform::observability::telemetry::inject_into_headers(headers);
        // Rate limits behind count a client as the connection limits do (an
        // IPv6 client by its /64).
        let client_key = client_addr.map(|ip| shop_platform::transport::connection::ClientKey::of(ip).addr());
        if let Some(ip) = client_key.and_then(|ip| http::HeaderValue::from_str(&ip.to_string()).ok()) {
            headers.insert(CLIENT_ADDR_HEADER, ip);
        }
        let mut metadata = tonic::metadata::MetadataMap::new();
        self.credentials.attach(&mut metadata);
        headers.extend(metadata.into_headers());
        // What the backend accepts; past it HTTP/2 would refuse the call
        // with a status clients cannot read.
        let size = header_list_size(headers);
        if size > DEFAULT_MAX_HEADER_LIST_BYTES as usize {
            return Err(Status::resource_exhausted(format!(
                "request metadata is too large ({size} bytes; at most {DEFAULT_MAX_HEADER_LIST_BYTES})"
            )));
        }

        let sent = if rpc.is_read {
            send_read(&channel, backend_name, request).await
        } else {
            send(&channel, backend_name, request.map(tonic::body::Body::new)).await
        };
        let response = sent.map_err(|status| body_failure.get().unwrap_or(status))?;
        let life = deadline.map_or(self.limits.request_timeout, |client| client.min(self.limits.request_timeout));
        let caller = pump::Caller {
            backend: backend_name,
            method: path,
            client: client_addr,
            connection,
            in_flight,
            deadline: started + life,
        };
        Ok(response.map(|answer| AxumBody::new(pump::pump(answer, self.limits.stall, caller))))
    }

    /// The caller a token proves. No token: anonymous. A token that is sent
    /// must be valid, whatever the method's access level.
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, Status> {
        let Some(value) = headers.get(http::header::AUTHORIZATION) else {
            return Ok(Caller::Anonymous);
        };

        let token = value
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| Status::unauthenticated("authorization must be 'Bearer <access_token>'"))?;
        let mut verified = self.keys.verifier.verify(token);
        if matches!(verified, Err(TokenError::UnknownKey)) {
            // Identity may have a new key; a refresh that just happened counts too.
            self.keys.refresh().await;
            verified = self.keys.verifier.verify(token);
        }
        let claims = verified.map_err(|error| {
            if error == TokenError::UnknownKey && !self.keys.verifier.has_keys() {
                Status::unavailable("identity is unavailable: tokens cannot be verified yet")
            } else {
                Status::unauthenticated(error.to_string())
            }
        })?;
        let id = claims.sub.parse::<i64>().map_err(|_| Status::unauthenticated(TokenError::Malformed.to_string()))?;
        Ok(Caller::User { id, is_admin: claims.adm })
    }
}

/// Sends `request` to the backend; the channel holds the call to the
/// grpc-timeout it carries.
async fn send(
    channel: &Channel,
    backend: &'static str,
    request: Request<tonic::body::Body>,
) -> Result<Response<tonic::body::Body>, Status> {
    channel.clone().oneshot(request).await.map_err(|error| no_answer(backend, &error))
}

/// The status of a call the backend never answered.
fn no_answer(backend: &'static str, error: &(dyn std::error::Error + 'static)) -> Status {
    if caused_by_timeout(error) {
        return Status::deadline_exceeded("deadline exceeded before the backend answered");
    }
    tracing::warn!(backend, error = %error, "backend unreachable");
    Status::unavailable(format!("{backend} is unavailable"))
}

/// Times a read is sent again after its replica dropped it unanswered.
const READ_RETRIES: usize = 2;
/// The largest read request kept whole to be sent again: a gRPC message of
/// at most 4 MiB and its 5-byte frame header.
const MAX_READ_REQUEST_BYTES: usize = 4 * 1024 * 1024 + 5;

/// Sends a read (an RPC marked `NO_SIDE_EFFECTS`); one dropped unanswered by
/// its replica (stopped, connection broken) is sent again, and the balancer
/// picks again (another replica, where there is one). Its request is small
/// and whole before it goes, so it is kept for that.
async fn send_read(
    channel: &Channel,
    backend: &'static str,
    request: Request<AxumBody>,
) -> Result<Response<tonic::body::Body>, Status> {
    use http_body_util::BodyExt as _;
    let (parts, body) = request.into_parts();
    let message = http_body_util::Limited::new(body, MAX_READ_REQUEST_BYTES)
        .collect()
        .await
        .map_err(|_| Status::resource_exhausted("the request message is larger than 4 MiB, or was cut off"))?
        .to_bytes();
    let mut attempt = 0;
    loop {
        let mut again = Request::new(tonic::body::Body::new(http_body_util::Full::new(message.clone())));
        *again.method_mut() = parts.method.clone();
        *again.uri_mut() = parts.uri.clone();
        *again.version_mut() = parts.version;
        *again.headers_mut() = parts.headers.clone();
        match channel.clone().oneshot(again).await {
            Ok(response) => return Ok(response),
            Err(error) if attempt < READ_RETRIES && !caused_by_timeout(&error) => {
                attempt += 1;
                tracing::debug!(backend, error = %error, attempt, "a replica dropped a read; sending it again");
            }
            Err(error) => return Err(no_answer(backend, &error)),
        }
    }
}

fn authorize(access: Access, caller: Caller) -> Result<(), Status> {
    match (access, caller) {
        (Access::Public, _) => Ok(()),
        (Access::User | Access::Admin, Caller::Anonymous) => {
            Err(Status::unauthenticated("this call needs 'authorization: Bearer <access_token>'"))
        }
        (Access::Admin, caller) if !caller.is_admin() => Err(Status::permission_denied("admins only")),
        _ => Ok(()),
    }
}

/// Whether the channel gave up because the forwarded `grpc-timeout` ran out.
fn caused_by_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<tonic::TimeoutExpired>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Clients never get to speak for the gateway.
fn strip_internal_metadata(headers: &mut HeaderMap) {
    let ours: Vec<_> =
        headers.keys().filter(|name| name.as_str().starts_with(INTERNAL_HEADER_PREFIX)).cloned().collect();
    for name in ours {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_metadata_from_a_client_is_removed() {
        let mut headers = HeaderMap::new();
        headers.insert("x-shop-user-id", "1".parse().unwrap());
        headers.insert("x-shop-service-token", "guess".parse().unwrap());
        headers.insert("x-request-id", "abc".parse().unwrap());
        strip_internal_metadata(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-request-id"));
    }

    #[test]
    fn access_levels_decide_by_caller() {
        let customer = Caller::User { id: 1, is_admin: false };
        let admin = Caller::User { id: 2, is_admin: true };
        assert!(authorize(Access::Public, Caller::Anonymous).is_ok());
        assert_eq!(authorize(Access::User, Caller::Anonymous).unwrap_err().code(), tonic::Code::Unauthenticated);
        assert!(authorize(Access::User, customer).is_ok());
        assert_eq!(authorize(Access::Admin, Caller::Anonymous).unwrap_err().code(), tonic::Code::Unauthenticated);
        assert_eq!(authorize(Access::Admin, customer).unwrap_err().code(), tonic::Code::PermissionDenied);
        assert!(authorize(Access::Admin, admin).is_ok());
    }
}
