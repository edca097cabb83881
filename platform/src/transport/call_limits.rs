//! Limits over one call's whole life, the same on every server.
//!
//! - **Deadline**: the shorter of the client's `grpc-timeout` and the
//!   server's `SHOP_REQUEST_TIMEOUT_SECS` bounds the call until its answer is
//!   sent, not only until the answer starts (which is all tonic's own timeout
//!   covers). Past it the answer ends with DEADLINE_EXCEEDED, in the headers
//!   or, once data went out, in the trailers. Streams meant to stay open (the
//!   event feeds, health `Watch`, reflection) are bounded only by the client.
//! - **Oversized messages**: tonic answers a request above the message-size
//!   limit with OUT_OF_RANGE; gRPC's convention, and the contract's, is
//!   RESOURCE_EXHAUSTED.
//! - **Bounded status**: an answer's status travels in HTTP/2 headers. A
//!   `grpc-message` or error detail too big for the peer's header limit
//!   would make the peer tear down the whole connection, and with it every
//!   other call on it (the gateway shares one per backend). Messages are cut
//!   to [`MAX_STATUS_MESSAGE_BYTES`]; details beyond
//!   [`MAX_STATUS_DETAILS_BYTES`] are dropped (and logged).

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use tokio::time::{Instant, Sleep};
use tonic::{Code, Status};

/// tonic's message for a request above the size limit.
const OVERSIZE_MESSAGE: &str = "Error, decoded message length too large";

/// Longest `grpc-message` header sent, percent-encoded as it goes out.
pub const MAX_STATUS_MESSAGE_BYTES: usize = 1024;
/// Longest `grpc-status-details-bin` header sent, base64 as it goes out.
pub const MAX_STATUS_DETAILS_BYTES: usize = 8 * 1024;

/// Our answer must beat tonic's own timer on the same `grpc-timeout`, which
/// would answer CANCELLED.
const AHEAD_OF_TONIC: Duration = Duration::from_millis(5);

/// Whether `path` is a call that stays open by design (see
/// [`long_lived_paths`]): the server's cap on a call's life spares it.
pub(crate) fn is_long_lived(path: &str) -> bool {
    static PATHS: LazyLock<HashSet<String>> = LazyLock::new(long_lived_paths);
    PATHS.contains(path)
}

/// Paths of calls that stay open by design: every streaming RPC of the
/// contract, health's `Watch` and reflection.
fn long_lived_paths() -> HashSet<String> {
    use prost::Message as _;
    let mut paths: HashSet<String> = [
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    if let Ok(set) = prost_types::FileDescriptorSet::decode(shop_proto::FILE_DESCRIPTOR_SET) {
        for file in &set.file {
            for service in &file.service {
                for method in service.method.iter().filter(|method| method.server_streaming()) {
                    paths.insert(format!("/{}.{}/{}", file.package(), service.name(), method.name()));
                }
            }
        }
    }
    paths
}

#[derive(Debug, Clone)]
pub struct CallLimitsLayer {
    max: Duration,
}

impl CallLimitsLayer {
    /// `max`: the server's cap on a call's life.
    pub fn new(max: Duration) -> Self {
        Self { max }
    }
}

impl<S> tower::Layer<S> for CallLimitsLayer {
    type Service = CallLimits<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallLimits { inner, layer: self.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct CallLimits<S> {
    inner: S,
    layer: CallLimitsLayer,
}

impl<S, B, R> tower::Service<http::Request<B>> for CallLimits<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
{
    type Response = http::Response<LimitedBody<R>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let client = crate::transport::client::incoming_timeout(request.headers());
        let server = (!is_long_lived(request.uri().path())).then_some(self.layer.max);
        let budget = match (client, server) {
            (Some(client), Some(server)) => Some(client.min(server)),
            (one, other) => one.or(other),
        };
        let deadline = budget.map(|budget| Instant::now() + budget.saturating_sub(AHEAD_OF_TONIC));
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, answer).await {
                    Ok(response) => response?,
                    Err(_) => return Ok(status_response(&deadline_exceeded())),
                },
                None => answer.await?,
            };
            let mut response = oversize_to_resource_exhausted(response);
            bound_status(response.headers_mut());
            Ok(response.map(|body| LimitedBody {
                body: Some(body),
                deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
            }))
        })
    }
}

fn deadline_exceeded() -> Status {
    Status::deadline_exceeded("deadline exceeded while the call was answered")
}

/// A trailers-only answer carrying `status`.
fn status_response<R>(status: &Status) -> http::Response<LimitedBody<R>> {
    let mut response = http::Response::new(LimitedBody { body: None, deadline: None });
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
    let _ = status.add_header(response.headers_mut());
    response
}

/// Rewrites tonic's OUT_OF_RANGE for an oversized request (a trailers-only
/// answer, so the code is in the headers) to RESOURCE_EXHAUSTED.
fn oversize_to_resource_exhausted<R>(mut response: http::Response<R>) -> http::Response<R> {
    // The cheap look first: most answers are not OUT_OF_RANGE.
    if response.headers().get("grpc-status").is_some_and(|code| code == "11")
        && let Some(status) = Status::from_header_map(response.headers())
        && status.code() == Code::OutOfRange
        && status.message().starts_with(OVERSIZE_MESSAGE)
    {
        let _ = Status::resource_exhausted(status.message().to_owned()).add_header(response.headers_mut());
    }
    response
}

/// Cuts the status in `headers` (an answer's headers or its trailers) to
/// what any peer's header limit takes.
fn bound_status(headers: &mut http::HeaderMap) {
    let message_too_long = headers.get("grpc-message").is_some_and(|value| value.len() > MAX_STATUS_MESSAGE_BYTES);
    let details_too_long =
        headers.get("grpc-status-details-bin").is_some_and(|value| value.len() > MAX_STATUS_DETAILS_BYTES);
    if details_too_long {
        tracing::warn!("an error's details were too large to send and were left out");
        headers.remove("grpc-status-details-bin");
    }
    if message_too_long && let Some(status) = Status::from_header_map(headers) {
        // Percent-encoding at most triples a byte.
        let mut cut = MAX_STATUS_MESSAGE_BYTES / 3 - 3;
        while !status.message().is_char_boundary(cut) {
            cut -= 1;
        }
        let short = format!("{}…", &status.message()[..cut]);
        headers.remove("grpc-message");
        let _ = Status::new(status.code(), short).add_header(headers);
    }
}

/// The answer's body, ended with DEADLINE_EXCEEDED trailers when the
/// deadline passes before it is all sent.
pub struct LimitedBody<B> {
    /// `None` once ended early (or for a trailers-only answer).
    body: Option<B>,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<B> http_body::Body for LimitedBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let Some(body) = this.body.as_mut() else { return Poll::Ready(None) };
        if let Some(deadline) = this.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            // Dropping the body drops what produces it: the handler's stream,
            // or the gateway's pump from its backend.
            this.body = None;
            let mut trailers = http::HeaderMap::new();
            let _ = deadline_exceeded().add_header(&mut trailers);
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        let frame = ready!(Pin::new(body).poll_frame(cx));
        Poll::Ready(frame.map(|frame| {
            frame.map(|mut frame| {
                if let Some(trailers) = frame.trailers_mut() {
                    bound_status(trailers);
                }
                frame
            })
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(http_body::Body::is_end_stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_feeds_health_watch_and_reflection_stay_open() {
        let paths = long_lived_paths();
        for path in [
            "/shop.catalog.v1.CatalogEventsService/Subscribe",
            "/shop.order.v1.OrderEventsService/Subscribe",
            "/grpc.health.v1.Health/Watch",
        ] {
            assert!(paths.contains(path), "{path}");
        }
        assert!(!paths.contains("/shop.catalog.v1.CatalogService/ListProducts"));
    }

    #[test]
    fn a_huge_status_is_cut_to_what_any_peer_takes() {
        let mut headers = http::HeaderMap::new();
        let _ = Status::not_found(format!("category {} not found", "a\u{e9}".repeat(40_000))).add_header(&mut headers);
        headers.insert("grpc-status-details-bin", http::HeaderValue::from_str(&"A".repeat(20_000)).unwrap());
        bound_status(&mut headers);
        assert!(headers.get("grpc-message").unwrap().len() <= MAX_STATUS_MESSAGE_BYTES);
        assert!(headers.get("grpc-status-details-bin").is_none());
        let status = Status::from_header_map(&headers).unwrap();
        assert_eq!(status.code(), Code::NotFound);
        assert!(status.message().starts_with("category a\u{e9}a"), "{}", status.message());

        let mut small = http::HeaderMap::new();
        let _ = Status::not_found("product 7 not found").add_header(&mut small);
        let before = small.clone();
        bound_status(&mut small);
        assert_eq!(small, before, "an ordinary status is left as it is");
    }

    #[test]
    fn an_oversized_request_is_resource_exhausted_and_other_codes_stay() {
        let answer = |status: Status| {
            let mut response = http::Response::new(());
            let _ = status.add_header(response.headers_mut());
            Status::from_header_map(oversize_to_resource_exhausted(response).headers()).unwrap()
        };
        let oversize = answer(Status::out_of_range(format!(
            "{OVERSIZE_MESSAGE}: found 5000000 bytes, the limit is: 4194304 bytes"
        )));
        assert_eq!(oversize.code(), Code::ResourceExhausted);
        assert!(oversize.message().contains("5000000"));
        assert_eq!(answer(Status::out_of_range("page 9 is past the end")).code(), Code::OutOfRange);
        assert_eq!(answer(Status::not_found("x")).code(), Code::NotFound);
    }
}
