//! The faces a server shows beside native gRPC: gRPC-Web for browsers,
//! Connect (JSON or binary protobuf over plain HTTP, [`super::connect`]) for
//! everyone else, and the CORS answers browsers need. The content type picks
//! the face, as connect-go and vanguard do. tonic-web translates a gRPC-Web
//! call (binary or base64 text, HTTP/1.1 or HTTP/2) into a native one before
//! anything else sees it, and its answer back, trailers into the body; the
//! Connect face does the same for its calls: so every limit, the metrics and
//! the proxy behind them treat every kind of call alike.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, Request, Response};
use tonic::body::Body;
use tower::util::Either;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may keep a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// Answer headers a page's script may read.
const EXPOSED: [&str; 4] = ["grpc-status", "grpc-message", "grpc-status-details-bin", "x-request-id"];
/// Request headers a page's script may send (gRPC-Web's and Connect's).
const ALLOWED: [&str; 9] = [
    "authorization",
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "x-request-id",
    "traceparent",
    "connect-protocol-version",
    "connect-timeout-ms",
];

/// Who may call from a browser: the origins allowed by CORS (empty: no CORS
/// answers, so only pages on the server's own origin, or other clients);
/// and a face of the server's own, beside gRPC-Web and Connect.
#[derive(Debug, Clone, Default)]
pub struct WebAccess {
    pub cors_origins: Vec<HeaderValue>,
    pub face: Option<std::sync::Arc<dyn Face>>,
}

/// The native gRPC calls of a server, as a face sends its translated calls
/// through everything a native call meets.
pub type NativeCalls = tower::util::BoxCloneService<Request<Body>, Response<Body>, Infallible>;

/// A face a server adds beside gRPC-Web and Connect (the gateway's old REST
/// routes): it claims its requests by their path and answers each by
/// translating it into native calls.
pub trait Face: std::fmt::Debug + Send + Sync + 'static {
    /// Whether this face answers `request`.
    fn claims(&self, request: &Request<Body>) -> bool;
    /// The answer to `request`, made with calls to `native`.
    fn answer(
        &self,
        native: NativeCalls,
        request: Request<Body>,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>>;
}

impl WebAccess {
    /// From a comma-separated list of origins (`https://shop.example`), named
    /// by `setting` when one is not a valid origin.
    pub fn from_setting(raw: &str, setting: &str) -> anyhow::Result<Self> {
        let mut cors_origins = Vec::new();
        for origin in raw.split(',').map(str::trim).filter(|origin| !origin.is_empty()) {
            let uri: http::Uri =
                origin.parse().map_err(|_| anyhow::anyhow!("{setting}: {origin:?} is not an origin"))?;
            anyhow::ensure!(
                matches!(uri.scheme_str(), Some("http" | "https"))
                    && uri.host().is_some()
                    && uri.path_and_query().is_none_or(|path| path.as_str() == "/")
                    && !origin.ends_with('/'),
                "{setting}: {origin:?} is not an origin (scheme://host[:port], no path, e.g. https://shop.example)"
            );
            cors_origins.push(HeaderValue::from_str(origin)?);
        }
        Ok(Self { cors_origins, face: None })
    }

    fn cors(&self) -> Option<CorsLayer> {
        if self.cors_origins.is_empty() {
            return None;
        }
        Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(self.cors_origins.clone()))
                .allow_methods([Method::POST, Method::GET, Method::PUT, Method::PATCH, Method::DELETE])
                .allow_headers(ALLOWED.map(HeaderName::from_static))
                .expose_headers(EXPOSED.map(HeaderName::from_static))
                .max_age(PREFLIGHT_MAX_AGE),
        )
    }
}

/// The layer a server puts outermost: gRPC-Web, Connect (and CORS) when
/// `web` is set, nothing otherwise.
#[derive(Debug, Clone)]
pub struct WebLayer {
    web: Option<WebAccess>,
}

impl WebLayer {
    pub fn new(web: Option<WebAccess>) -> Self {
        Self { web }
    }
}

type Web<S> = Either<tower_http::cors::Cors<Faces<S>>, Faces<S>>;

impl<S: Clone> tower::Layer<S> for WebLayer {
    type Service = WebEdge<S>;

    fn layer(&self, inner: S) -> WebEdge<S> {
        let web = self.web.as_ref().map(|web| {
            let faces = Faces {
                grpc_web: tower::Layer::layer(&tonic_web::GrpcWebLayer::new(), inner.clone()),
                native: inner.clone(),
                own: web.face.clone(),
            };
            match web.cors() {
                Some(cors) => Either::Left(tower::Layer::layer(&cors, faces)),
                None => Either::Right(faces),
            }
        });
        WebEdge { native: inner, web }
    }
}

/// A server's calls, native gRPC only or the web faces too.
#[derive(Debug, Clone)]
pub struct WebEdge<S> {
    native: S,
    web: Option<Web<S>>,
}

impl<S, B, R> tower::Service<Request<B>> for WebEdge<S>
where
    S: tower::Service<Request<Body>, Response = Response<R>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Error: Into<tower::BoxError> + std::fmt::Display,
    R: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    R::Error: Into<tower::BoxError> + std::fmt::Display,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        std::task::ready!(self.native.poll_ready(cx))?;
        match &mut self.web {
            Some(web) => tower::Service::<Request<Body>>::poll_ready(web, cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if let Some(refusal) = refuse_ambiguous_framing(&request) {
            return Box::pin(std::future::ready(Ok(refusal)));
        }
        match &mut self.web {
            Some(web) if is_for_the_web_layer(&request) => {
                let answer = web.call(request.map(|body| Body::new(UnsizedBody(body))));
                Box::pin(async move { Ok(answer.await.unwrap_or_else(|never| match never {})) })
            }
            _ => {
                let answer = self.native.call(request.map(Body::new));
                Box::pin(async move { Ok(answer.await?.map(Body::new)) })
            }
        }
    }
}

/// The faces a browser or a plain HTTP client uses: gRPC-Web (tonic-web),
/// Connect, and the server's own, which turn their calls into native ones
/// for `native`.
#[derive(Debug, Clone)]
pub struct Faces<S> {
    grpc_web: tonic_web::GrpcWebService<S>,
    native: S,
    own: Option<std::sync::Arc<dyn Face>>,
}

impl<S, R> tower::Service<Request<Body>> for Faces<S>
where
    S: tower::Service<Request<Body>, Response = Response<R>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    R: 'static,
    R: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    R::Error: Into<tower::BoxError> + std::fmt::Display,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        std::task::ready!(self.native.poll_ready(cx))?;
        tower::Service::<Request<Body>>::poll_ready(&mut self.grpc_web, cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        if request.version() == http::Version::HTTP_2 && request.method() == Method::POST && is_native_grpc(&request) {
            // Native gRPC that came this way only for its Origin header (a
            // proxy in front forwarded a browser's).
            let answer = self.native.call(request);
            return Box::pin(async move { Ok(answer.await?.map(Body::new)) });
        }
        if let Some(own) = &self.own
            && own.claims(&request)
        {
            use tower::ServiceExt as _;
            let native = NativeCalls::new(self.native.clone().map_response(|answer| answer.map(Body::new)));
            let answer = own.answer(native, request);
            return Box::pin(async move { Ok(answer.await) });
        }
        if super::connect::is_connect(&request) {
            let native = self.native.clone();
            return Box::pin(async move { Ok(connect_call(native, request).await) });
        }
        if is_grpc_web(&request) || request.method() == Method::OPTIONS {
            request.extensions_mut().insert(super::connect::Protocol::GrpcWeb);
            let answer = self.grpc_web.call(request);
            return Box::pin(async move { Ok(answer.await?.map(Body::new)) });
        }
        if super::connect::is_unsupported_media(&request) {
            return Box::pin(std::future::ready(Ok(super::connect::unsupported_media_type())));
        }
        if request.method() == Method::GET && super::connect::is_rpc_path(request.uri().path()) {
            // A GET of an RPC that says neither `connect=v1` nor an encoding.
            return Box::pin(std::future::ready(Ok(super::connect::unsupported_media_type())));
        }
        if request.method() == Method::GET || request.method() == Method::HEAD {
            // A plain GET (the gateway's /openapi.json, its pictures): the server's own routes.
            let answer = self.native.call(request);
            return Box::pin(async move { Ok(answer.await?.map(Body::new)) });
        }
        // Whatever else (plain HTTP/1.1 that is no call): tonic-web's 400.
        let answer = self.grpc_web.call(request);
        Box::pin(async move { Ok(answer.await?.map(Body::new)) })
    }
}

/// A Connect call: translated, sent through `native`, its answer translated back.
async fn connect_call<S, R>(native: S, request: Request<Body>) -> Response<Body>
where
    S: tower::Service<Request<Body>, Response = Response<R>, Error = Infallible>,
    R: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    R::Error: Into<tower::BoxError> + std::fmt::Display,
{
    use tower::ServiceExt as _;
    let Ok(contract) = shop_proto::contract::contract() else {
        return super::connect::unsupported_media_type();
    };
    let translated = match super::connect::translate(contract, request).await {
        Ok(translated) => translated,
        Err(refusal) => return refusal,
    };
    let Ok(answer) = native.oneshot(translated.request).await;
    super::connect::answer(translated.call, answer.map(Body::new)).await
}

fn is_grpc_web<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|kind| kind.to_str().ok())
        .is_some_and(|kind| kind.starts_with("application/grpc-web"))
}

/// Whether the web faces or CORS have any business with a call: anything
/// but native gRPC over HTTP/2 (a content type of application/grpc or
/// application/grpc+…) with no page's origin. Native gRPC goes straight
/// past, paying nothing for the web.
fn is_for_the_web_layer<B>(request: &Request<B>) -> bool {
    request.version() != http::Version::HTTP_2
        || request.method() != Method::POST
        || request.headers().contains_key(http::header::ORIGIN)
        || !is_native_grpc(request)
}

/// A content type of application/grpc or application/grpc+… (any case).
fn is_native_grpc<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|kind| kind.to_str().ok())
        .map(|kind| kind.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .is_some_and(|kind| kind == "application/grpc" || kind.starts_with("application/grpc+"))
}

/// HTTP/1.1 framing that two parsers could read two ways: any
/// `Transfer-Encoding` but a single `chunked` (`chunked, chunked`, `gzip,
/// chunked`, two header lines). hyper takes the last `chunked` and goes on;
/// a proxy in front of Shop may not, and the bytes one reads as the body
/// the other reads as a second request. Refused with a readable 400.
fn refuse_ambiguous_framing<B>(request: &Request<B>) -> Option<Response<Body>> {
    if request.version() == http::Version::HTTP_2 {
        return None;
    }
    let mut encodings = request.headers().get_all(http::header::TRANSFER_ENCODING).iter();
    let first = encodings.next()?;
    let single_chunked = first.to_str().is_ok_and(|value| value.trim().eq_ignore_ascii_case("chunked"));
    if single_chunked && encodings.next().is_none() {
        return None;
    }
    let mut refusal = Response::new(Body::new(http_body_util::Full::new(bytes::Bytes::from_static(
        b"Transfer-Encoding must be exactly 'chunked', once\n",
    ))));
    *refusal.status_mut() = http::StatusCode::BAD_REQUEST;
    refusal.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    refusal.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    Some(refusal)
}

/// A request body that announces no length. tonic-web passes the length of
/// what the client sent on as the length of what it decoded, which is
/// shorter for base64 text: announced to the backend over HTTP/2, the call
/// would break as soon as fewer bytes came than promised.
struct UnsizedBody<B>(B);

impl<B: http_body::Body + Unpin> http_body::Body for UnsizedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_encoding_other_than_one_chunked_is_refused() {
        let request = |values: &[&str]| {
            let mut builder = Request::post("/x").version(http::Version::HTTP_11);
            for value in values {
                builder = builder.header(http::header::TRANSFER_ENCODING, *value);
            }
            builder.body(()).unwrap()
        };
        assert!(refuse_ambiguous_framing(&request(&[])).is_none());
        assert!(refuse_ambiguous_framing(&request(&["chunked"])).is_none());
        assert!(refuse_ambiguous_framing(&request(&["Chunked "])).is_none());
        for bad in [&["chunked, chunked"][..], &["gzip, chunked"], &["chunked", "chunked"], &["identity"]] {
            let refusal = refuse_ambiguous_framing(&request(bad)).unwrap_or_else(|| panic!("{bad:?}"));
            assert_eq!(refusal.status(), http::StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        let web = WebAccess::from_setting(" https://shop.example , http://localhost:8080,", "X").unwrap();
        assert_eq!(web.cors_origins, ["https://shop.example", "http://localhost:8080"]);
        assert!(WebAccess::from_setting("", "X").unwrap().cors_origins.is_empty());
        for bad in ["shop.example", "https://shop.example/", "https://shop.example/app", "ftp://shop.example", "*"] {
            let error = WebAccess::from_setting(bad, "SHOP_GATEWAY_CORS_ORIGINS").unwrap_err().to_string();
            assert!(error.contains("SHOP_GATEWAY_CORS_ORIGINS"), "{bad}: {error}");
        }
    }
}
