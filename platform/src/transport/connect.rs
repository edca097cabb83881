//! The Connect protocol (connectrpc.com), unary, on a server that speaks
//! native gRPC: `POST /<package>.<Service>/<Method>` with a JSON or binary
//! protobuf body, and `GET` with the message in the query for the RPCs that
//! change nothing. Each call is translated here into the native gRPC call it
//! stands for, sent through everything a gRPC call meets (connection guard,
//! body budget, request id, metrics, call limits, the gateway's policy,
//! tokens and proxy), and its answer translated back. JSON is the proto3
//! JSON mapping done by prost-reflect from the contract's descriptors: no
//! message has JSON written by hand.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use base64::Engine as _;
use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use http::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use prost::Message as _;
use prost_reflect::{DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions};
use shop_proto::contract::{Access, Contract, Rpc};
use tonic::body::Body;
use tonic::{Code, Status};

/// The largest message a call may carry (as every server's gRPC limit).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// How deep JSON may nest: Shop's messages need a handful of levels.
const MAX_JSON_DEPTH: usize = 32;
/// Answers smaller than this are not worth compressing.
const COMPRESS_FROM_BYTES: usize = 1024;
/// How long a shared cache may keep a public read's answer.
const PUBLIC_MAX_AGE_SECS: u32 = 5;

/// Which face of the gateway a call came in by (the `protocol` label of
/// the RPC metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    GrpcWeb,
    ConnectJson,
    ConnectProto,
    /// The gateway's old REST routes.
    Rest,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::GrpcWeb => "grpc-web",
            Protocol::ConnectJson => "connect-json",
            Protocol::ConnectProto => "connect-proto",
            Protocol::Rest => "rest",
        }
    }
}

/// A message's encoding on the Connect face.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Json,
    Proto,
}

impl Codec {
    fn content_type(self) -> &'static str {
        match self {
            Codec::Json => "application/json",
            Codec::Proto => "application/proto",
        }
    }

    fn from_media_type(raw: &str) -> Option<Self> {
        let media = raw.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match media.as_str() {
            "application/json" => Some(Codec::Json),
            "application/proto" => Some(Codec::Proto),
            _ => None,
        }
    }

    fn protocol(self) -> Protocol {
        match self {
            Codec::Json => Protocol::ConnectJson,
            Codec::Proto => Protocol::ConnectProto,
        }
    }
}

/// A Connect error: the code, the message, and google.rpc details.
#[derive(Debug)]
struct ConnectError {
    status: Status,
    /// Set where the HTTP status is not the code's usual one (a body over
    /// the size cap is 413, not 429).
    http: Option<StatusCode>,
}

impl From<Status> for ConnectError {
    fn from(status: Status) -> Self {
        Self { status, http: None }
    }
}

fn invalid(field: &str, message: impl Into<String>) -> ConnectError {
    let message = message.into();
    let reason = crate::error::Invalid::new(message.clone());
    let mut status = crate::error::invalid_argument(field, &reason);
    if field.is_empty() {
        status = Status::invalid_argument(message);
    }
    ConnectError::from(status)
}

/// Whether a request is Connect's: a POST whose body is JSON or binary
/// protobuf, or a GET that says `connect=v1` or names an encoding.
pub fn is_connect<B>(request: &Request<B>) -> bool {
    match *request.method() {
        Method::POST => request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|kind| kind.to_str().ok())
            .is_some_and(|kind| Codec::from_media_type(kind).is_some()),
        Method::GET => request.uri().query().is_some_and(|query| {
            query_parts(query).any(|(key, value)| (key == "connect" && value == b"v1") || key == "encoding")
        }),
        _ => false,
    }
}

/// Whether a request is a POST to an RPC path whose content type no face
/// takes: 415, with the types that are taken.
pub fn is_unsupported_media<B>(request: &Request<B>) -> bool {
    request.method() == Method::POST && is_rpc_path(request.uri().path())
}

/// `/<package>.<Service>/<Method>`.
pub fn is_rpc_path(path: &str) -> bool {
    path.matches('/').count() == 2 && path.split('/').nth(1).is_some_and(|service| service.contains('.'))
}

/// The 415 answer for a POST no face takes.
pub fn unsupported_media_type() -> Response<Body> {
    let mut answer = plain(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "use application/json, application/proto, application/grpc or application/grpc-web\n",
    );
    answer.headers_mut().insert(
        HeaderName::from_static("accept-post"),
        HeaderValue::from_static("application/json, application/proto, application/grpc, application/grpc-web"),
    );
    answer
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut answer = Response::new(Body::new(http_body_util::Full::new(Bytes::from_static(text.as_bytes()))));
    *answer.status_mut() = status;
    answer.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    answer
}

/// The parts of `query` as (key, value), percent-decoded (`+` is a space).
/// A value stays bytes: a binary message may come percent-encoded.
fn query_parts(query: &str) -> impl Iterator<Item = (String, Vec<u8>)> + '_ {
    let decoded = |text: &str| percent_encoding::percent_decode_str(&text.replace('+', " ")).collect::<Vec<u8>>();
    query.split('&').filter(|part| !part.is_empty()).map(move |part| {
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        (String::from_utf8_lossy(&decoded(key)).into_owned(), decoded(value))
    })
}

fn text_of(value: Vec<u8>) -> String {
    String::from_utf8(value).unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}

/// A Connect call, translated.
pub struct Translated {
    /// The native gRPC request to send through the server's stack.
    pub request: Request<Body>,
    pub call: Call,
}

/// What translating the answer back needs to know of the call.
pub struct Call {
    rpc: &'static Rpc,
    codec: Codec,
    is_get: bool,
    has_token: bool,
    /// The client takes gzip answers.
    gzip_answer: bool,
}

/// Turns a Connect request into the native gRPC request it stands for, or
/// into the Connect error that answers it.
pub async fn translate(contract: &'static Contract, request: Request<Body>) -> Result<Translated, Response<Body>> {
    let codec_hint = codec_of(&request);
    let is_get = request.method() == Method::GET;
    translate_inner(contract, request).await.map_err(|error| {
        let mut answer = error_response(&error, codec_hint);
        if is_get {
            never_cached(&mut answer);
        }
        answer
    })
}

fn codec_of<B>(request: &Request<B>) -> Codec {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|kind| kind.to_str().ok())
        .and_then(Codec::from_media_type)
        .unwrap_or(Codec::Json)
}

async fn translate_inner(contract: &'static Contract, request: Request<Body>) -> Result<Translated, ConnectError> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let rpc = contract
        .rpc(path)
        .ok_or_else(|| Status::unimplemented(format!("unknown method {}", crate::kernel::text::echo(path))))?;
    let is_get = parts.method == Method::GET;
    let headers = &parts.headers;
    if let Some(version) = headers.get("connect-protocol-version")
        && version.as_bytes() != b"1"
    {
        let got = String::from_utf8_lossy(version.as_bytes()).into_owned();
        return Err(invalid(
            "",
            format!("Connect-Protocol-Version must be \"1\": got {}", crate::kernel::text::echo(&got)),
        ));
    }
    let timeout = match headers.get("connect-timeout-ms") {
        Some(raw) => Some(parse_timeout(raw)?),
        None => None,
    };
    let call = Call {
        rpc,
        codec: Codec::Json,
        is_get,
        has_token: headers.contains_key(http::header::AUTHORIZATION),
        gzip_answer: headers
            .get(ACCEPT_ENCODING)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.split(',').any(|coding| coding.trim().eq_ignore_ascii_case("gzip"))),
    };
    let (codec, message) = if is_get {
        if !rpc.is_read {
            let mut error = ConnectError::from(Status::unimplemented(format!(
                "{} changes something: call it with POST, not GET",
                rpc.name
            )));
            error.http = Some(StatusCode::METHOD_NOT_ALLOWED);
            return Err(error);
        }
        get_message(parts.uri.query().unwrap_or_default())?
    } else {
        let codec = headers
            .get(CONTENT_TYPE)
            .and_then(|kind| kind.to_str().ok())
            .and_then(Codec::from_media_type)
            .unwrap_or(Codec::Json);
        let encoding = content_encoding(headers)?;
        let raw = read_capped(body).await?;
        let raw = match encoding {
            Compression::Gzip if !raw.is_empty() => gunzip(&raw)?,
            _ => raw,
        };
        (codec, raw)
    };
    let message = match codec {
        Codec::Proto => message,
        Codec::Json => Bytes::from(json_to_proto(rpc.method.input(), &message)?),
    };
    let mut grpc = native_request(rpc, message, headers, parts.extensions, codec.protocol());
    // grpc-timeout takes at most 8 digits; past that the server's own cap
    // is shorter anyway.
    if let Some(timeout) = timeout
        && let Ok(value) = HeaderValue::from_str(&format!("{}m", timeout.as_millis().min(99_999_999)))
    {
        grpc.headers_mut().insert("grpc-timeout", value);
    }
    Ok(Translated { request: grpc, call: Call { codec, ..call } })
}

/// The native gRPC call of `rpc` carrying `message` (binary protobuf), with
/// the caller's metadata from `headers` and the connection's `extensions`
/// (its client's address, its state: every limit keyed on them holds for
/// this call as for a native one), counted under `protocol`.
pub fn native_request(
    rpc: &Rpc,
    message: Bytes,
    headers: &HeaderMap,
    extensions: http::Extensions,
    protocol: Protocol,
) -> Request<Body> {
    let mut framed = BytesMut::with_capacity(message.len() + 5);
    framed.put_u8(0);
    framed.put_u32(message.len() as u32);
    framed.put(message);
    let mut grpc = Request::new(Body::new(http_body_util::Full::new(framed.freeze())));
    *grpc.method_mut() = Method::POST;
    // An RPC's name is a valid path: the contract read it from its service.
    if let Ok(path) = format!("/{}", rpc.name).parse() {
        *grpc.uri_mut() = path;
    }
    *grpc.version_mut() = http::Version::HTTP_2;
    let forwarded = grpc.headers_mut();
    for (name, value) in headers {
        if carries_on(name) {
            forwarded.append(name.clone(), value.clone());
        }
    }
    forwarded.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    forwarded.insert(http::header::TE, HeaderValue::from_static("trailers"));
    *grpc.extensions_mut() = extensions;
    grpc.extensions_mut().insert(protocol);
    grpc
}

/// A native unary answer, read whole: its headers and trailers, and its one
/// message (binary protobuf) or the status it ended with.
pub struct NativeAnswer {
    pub headers: HeaderMap,
    pub trailers: HeaderMap,
    pub message: Result<Bytes, Status>,
}

/// Reads a native unary answer whole.
pub async fn native_answer(response: Response<Body>) -> NativeAnswer {
    let (parts, body) = response.into_parts();
    let headers = parts.headers;
    let collected = match body.collect().await {
        Ok(collected) => collected,
        Err(error) => {
            let status = Status::unavailable(format!("the answer broke off: {error}"));
            return NativeAnswer { headers, trailers: HeaderMap::new(), message: Err(status) };
        }
    };
    let trailers = collected.trailers().cloned().unwrap_or_default();
    // The status is in the trailers, or in the headers of a trailers-only answer.
    let status = Status::from_header_map(&trailers)
        .or_else(|| Status::from_header_map(&headers))
        .unwrap_or_else(|| Status::ok(""));
    let message = if status.code() != Code::Ok {
        Err(status)
    } else {
        one_message(collected.to_bytes()).ok_or_else(|| {
            tracing::error!("an answer is not one whole uncompressed message");
            Status::internal("internal error")
        })
    };
    NativeAnswer { headers, trailers, message }
}

/// Request headers that go on to the gRPC call: the caller's metadata, not
/// the Connect protocol's own nor HTTP's framing.
fn carries_on(name: &HeaderName) -> bool {
    let name = name.as_str();
    !(name.starts_with("connect-")
        || name.starts_with("grpc-")
        || matches!(
            name,
            "content-type"
                | "content-length"
                | "content-encoding"
                | "accept-encoding"
                | "host"
                | "te"
                | "connection"
                | "transfer-encoding"
                | "keep-alive"
                | "upgrade"
                | "accept"
                | "origin"
                | "cookie"
                | "expect"
        ))
}

/// `Connect-Timeout-Ms`: at most 10 digits, as the protocol says.
fn parse_timeout(raw: &HeaderValue) -> Result<Duration, ConnectError> {
    let text = raw.to_str().unwrap_or_default();
    let is_positive = text.bytes().any(|byte| byte != b'0');
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|byte| byte.is_ascii_digit()) || !is_positive {
        return Err(invalid(
            "",
            format!(
                "Connect-Timeout-Ms must be a positive number of milliseconds, at most 10 digits: got {}",
                crate::kernel::text::echo(text)
            ),
        ));
    }
    Ok(Duration::from_millis(text.parse().unwrap_or(u64::MAX)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    Identity,
    Gzip,
}

fn compression(raw: Option<&str>) -> Result<Compression, ConnectError> {
    match raw.map(str::trim) {
        None | Some("" | "identity") => Ok(Compression::Identity),
        Some(value) if value.eq_ignore_ascii_case("gzip") => Ok(Compression::Gzip),
        Some(other) => Err(ConnectError::from(Status::unimplemented(format!(
            "unknown compression {}: supported encodings are gzip and identity",
            crate::kernel::text::echo(other)
        )))),
    }
}

fn content_encoding(headers: &HeaderMap) -> Result<Compression, ConnectError> {
    compression(headers.get(CONTENT_ENCODING).map(|value| value.to_str().unwrap_or("?")))
}

fn too_large() -> ConnectError {
    ConnectError {
        status: Status::resource_exhausted(format!("the message is larger than {} MiB", MAX_MESSAGE_BYTES >> 20)),
        http: Some(StatusCode::PAYLOAD_TOO_LARGE),
    }
}

/// Why a request body was not read.
pub enum Unread {
    /// It passed [`MAX_MESSAGE_BYTES`].
    TooLarge,
    /// The body budget gave it up (no room, or it stopped arriving), or it
    /// broke off.
    Refused(Status),
}

/// A request body, refused as soon as it passes the cap (it is never read
/// whole).
pub async fn read_capped_body(body: Body) -> Result<Bytes, Unread> {
    match http_body_util::Limited::new(body, MAX_MESSAGE_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(Unread::TooLarge),
        Err(error) => Err(Unread::Refused(match error.downcast::<Status>() {
            Ok(status) => *status,
            Err(error) => Status::cancelled(format!("the request body broke off: {error}")),
        })),
    }
}

async fn read_capped(body: Body) -> Result<Bytes, ConnectError> {
    read_capped_body(body).await.map_err(|unread| match unread {
        Unread::TooLarge => too_large(),
        Unread::Refused(status) => ConnectError::from(status),
    })
}

fn gunzip(raw: &[u8]) -> Result<Bytes, ConnectError> {
    let mut out = Vec::new();
    let read = flate2::read::GzDecoder::new(raw).take(MAX_MESSAGE_BYTES as u64 + 1).read_to_end(&mut out);
    match read {
        Ok(_) if out.len() > MAX_MESSAGE_BYTES => Err(too_large()),
        Ok(_) => Ok(Bytes::from(out)),
        Err(error) => Err(invalid("", format!("the body is not valid gzip: {error}"))),
    }
}

/// A GET's message: `encoding`, `message`, `base64`, `compression`.
fn get_message(query: &str) -> Result<(Codec, Bytes), ConnectError> {
    let (mut encoding, mut message, mut base64, mut compressed, mut connect) = (None, None, false, None, None);
    for (key, value) in query_parts(query) {
        match key.as_str() {
            "encoding" => encoding = Some(text_of(value)),
            "message" => message = Some(value),
            "base64" => base64 = value == b"1",
            "compression" => compressed = Some(text_of(value)),
            "connect" => connect = Some(text_of(value)),
            _ => {}
        }
    }
    if let Some(connect) = connect
        && connect != "v1"
    {
        return Err(invalid("", format!("connect must be \"v1\": got {}", crate::kernel::text::echo(&connect))));
    }
    let codec = match encoding.as_deref() {
        Some("json") => Codec::Json,
        Some("proto") => Codec::Proto,
        _ => {
            return Err(ConnectError {
                status: Status::invalid_argument("encoding must be json or proto"),
                http: Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            });
        }
    };
    let message = message.unwrap_or_default();
    if message.len() > MAX_MESSAGE_BYTES * 2 {
        return Err(too_large());
    }
    let raw = if base64 {
        let end = message.iter().rposition(|&byte| byte != b'=').map_or(0, |last| last + 1);
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&message[..end])
            .map_err(|error| invalid("message", format!("is not URL-safe base64: {error}")))?
    } else {
        message
    };
    let raw = match compression(compressed.as_deref())? {
        Compression::Gzip if !raw.is_empty() => gunzip(&raw)?,
        _ => Bytes::from(raw),
    };
    if raw.len() > MAX_MESSAGE_BYTES {
        return Err(too_large());
    }
    Ok((codec, raw))
}

/// How deep `json` nests its objects and arrays (strings skipped).
fn nesting(json: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0_usize, 0, false, false);
    for &byte in json {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The proto3 JSON mapping of `json` into `descriptor`'s binary form: both
/// field spellings, unknown fields refused, trailing input refused.
fn json_to_proto(descriptor: MessageDescriptor, json: &[u8]) -> Result<Vec<u8>, ConnectError> {
    let json = if json.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { json };
    if nesting(json) > MAX_JSON_DEPTH {
        return Err(invalid("", format!("the JSON nests deeper than {MAX_JSON_DEPTH} levels")));
    }
    let mut reader = serde_json::Deserializer::from_slice(json);
    let message = DynamicMessage::deserialize_with_options(descriptor, &mut reader, &DeserializeOptions::new())
        .and_then(|message| reader.end().map(|()| message))
        .map_err(|error| {
            let text = error.to_string();
            // "unrecognized field name 'foo' at line 1 column 6" names the field.
            let field = text
                .strip_prefix("unrecognized field name '")
                .and_then(|rest| rest.split_once('\''))
                .map(|(field, _)| crate::kernel::text::echo(field))
                .unwrap_or_default();
            // The client's own text, repeated, is cut as every error cuts it.
            invalid(&field, format!("the JSON body does not fit the message: {}", crate::kernel::text::echo(&text)))
        })?;
    Ok(message.encode_to_vec())
}

/// The answer of a native gRPC call, as the Connect client of `call` takes it.
pub async fn answer(call: Call, response: Response<Body>) -> Response<Body> {
    let NativeAnswer { headers, trailers, message } = native_answer(response).await;
    let body = match message {
        Err(status) => {
            let mut answer = refused(&call, &ConnectError::from(status));
            copy_metadata(&headers, &trailers, answer.headers_mut());
            return answer;
        }
        Ok(message) => match call.codec {
            Codec::Proto => message,
            Codec::Json => match DynamicMessage::decode(call.rpc.method.output(), message.clone())
                .map_err(|error| error.to_string())
                .and_then(|decoded| to_json(&decoded, message.len()).map_err(|error| error.to_string()))
            {
                Ok(json) => Bytes::from(json),
                Err(error) => {
                    tracing::error!(rpc = %call.rpc.name, %error, "an answer does not fit its message");
                    return refused(&call, &ConnectError::from(Status::internal("internal error")));
                }
            },
        },
    };
    let mut answer = Response::new(Body::empty());
    copy_metadata(&headers, &trailers, answer.headers_mut());
    let out = answer.headers_mut();
    out.insert(CONTENT_TYPE, HeaderValue::from_static(call.codec.content_type()));
    out.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    if call.is_get {
        let cache = if call.rpc.access == Access::Public && !call.has_token {
            format!("public, max-age={PUBLIC_MAX_AGE_SECS}")
        } else {
            "private, no-store".to_owned()
        };
        out.insert(CACHE_CONTROL, HeaderValue::from_str(&cache).unwrap_or(HeaderValue::from_static("no-store")));
        out.append(VARY, HeaderValue::from_static("Authorization, Accept-Encoding"));
    }
    let body = if call.gzip_answer && body.len() >= COMPRESS_FROM_BYTES {
        out.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        gzip(&body)
    } else {
        body
    };
    *answer.body_mut() = Body::new(http_body_util::Full::new(body));
    answer
}

/// The one uncompressed message a unary answer's body frames, or `None`.
fn one_message(mut framed: Bytes) -> Option<Bytes> {
    if framed.len() < 5 {
        return None;
    }
    let compressed = framed.get_u8();
    let length = framed.get_u32() as usize;
    (compressed == 0 && length == framed.len()).then_some(framed)
}

/// An error answer for `call`; a GET's is never kept by a shared cache (an
/// id not found now may exist in a moment).
fn refused(call: &Call, error: &ConnectError) -> Response<Body> {
    let mut answer = error_response(error, call.codec);
    if call.is_get {
        never_cached(&mut answer);
    }
    answer
}

fn never_cached(answer: &mut Response<Body>) {
    answer.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    answer.headers_mut().append(VARY, HeaderValue::from_static("Authorization, Accept-Encoding"));
}

fn gzip(raw: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(raw.len() / 4), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(raw);
    Bytes::from(encoder.finish().unwrap_or_default())
}

/// `size_hint`: the binary message's length (JSON runs about twice as long;
/// asking the dynamic message its length would cost a walk of it).
fn to_json(message: &DynamicMessage, size_hint: usize) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(size_hint * 2 + 16);
    message.serialize_with_options(&mut serde_json::Serializer::new(&mut out), &SerializeOptions::new())?;
    Ok(out)
}

/// The answer's metadata, less gRPC's own: its headers as headers, and its
/// trailers prefixed `trailer-`, as Connect carries trailers.
fn copy_metadata(headers: &HeaderMap, trailers: &HeaderMap, connect: &mut HeaderMap) {
    let is_grpcs_own =
        |name: &str| name.starts_with("grpc-") || matches!(name, "content-type" | "content-length" | "te" | "trailer");
    for (name, value) in headers {
        if !is_grpcs_own(name.as_str()) {
            connect.append(name.clone(), value.clone());
        }
    }
    for (name, value) in trailers {
        if !is_grpcs_own(name.as_str())
            && let Ok(name) = HeaderName::from_bytes(format!("trailer-{}", name.as_str()).as_bytes())
        {
            connect.append(name, value.clone());
        }
    }
}

/// The code's name and HTTP status in Connect.
fn connect_code(code: Code) -> (&'static str, StatusCode) {
    match code {
        Code::Ok => ("ok", StatusCode::OK),
        Code::Cancelled => ("canceled", StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST)),
        Code::Unknown => ("unknown", StatusCode::INTERNAL_SERVER_ERROR),
        Code::InvalidArgument => ("invalid_argument", StatusCode::BAD_REQUEST),
        Code::DeadlineExceeded => ("deadline_exceeded", StatusCode::GATEWAY_TIMEOUT),
        Code::NotFound => ("not_found", StatusCode::NOT_FOUND),
        Code::AlreadyExists => ("already_exists", StatusCode::CONFLICT),
        Code::PermissionDenied => ("permission_denied", StatusCode::FORBIDDEN),
        Code::ResourceExhausted => ("resource_exhausted", StatusCode::TOO_MANY_REQUESTS),
        Code::FailedPrecondition => ("failed_precondition", StatusCode::BAD_REQUEST),
        Code::Aborted => ("aborted", StatusCode::CONFLICT),
        Code::OutOfRange => ("out_of_range", StatusCode::BAD_REQUEST),
        Code::Unimplemented => ("unimplemented", StatusCode::NOT_IMPLEMENTED),
        Code::Internal => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
        Code::Unavailable => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
        Code::DataLoss => ("data_loss", StatusCode::INTERNAL_SERVER_ERROR),
        Code::Unauthenticated => ("unauthenticated", StatusCode::UNAUTHORIZED),
    }
}

/// A Connect error answer: JSON `{code, message, details}` with the same
/// google.rpc details a gRPC client gets (type, base64 value, debug JSON).
fn error_response(error: &ConnectError, _codec: Codec) -> Response<Body> {
    let (code, usual) = connect_code(error.status.code());
    let mut body = serde_json::json!({ "code": code, "message": error.status.message() });
    let details = error_details(&error.status);
    if !details.is_empty() {
        body["details"] = serde_json::Value::Array(details);
    }
    let mut answer = Response::new(Body::new(http_body_util::Full::new(Bytes::from(body.to_string()))));
    *answer.status_mut() = error.http.unwrap_or(usual);
    answer.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if error.http == Some(StatusCode::METHOD_NOT_ALLOWED) {
        answer.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static("POST"));
    }
    answer
}

fn error_details(status: &Status) -> Vec<serde_json::Value> {
    if status.details().is_empty() {
        return Vec::new();
    }
    let Ok(encoded) = tonic_types::pb::Status::decode(status.details()) else { return Vec::new() };
    let pool = shop_proto::contract::contract().ok().map(Contract::pool);
    encoded
        .details
        .into_iter()
        .map(|any| {
            let kind = any.type_url.rsplit('/').next().unwrap_or(&any.type_url).to_owned();
            let debug = pool
                .and_then(|pool| pool.get_message_by_name(&kind))
                .and_then(|descriptor| DynamicMessage::decode(descriptor, any.value.as_slice()).ok())
                .and_then(|decoded| serde_json::to_value(&decoded).ok());
            let mut detail = serde_json::json!({
                "type": kind,
                "value": base64::engine::general_purpose::STANDARD_NO_PAD.encode(&any.value),
            });
            if let Some(debug) = debug {
                detail["debug"] = debug;
            }
            detail
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract() -> &'static Contract {
        shop_proto::contract::contract().unwrap()
    }

    fn descriptor(name: &str) -> MessageDescriptor {
        contract().pool().get_message_by_name(name).unwrap()
    }

    #[test]
    fn json_takes_both_spellings_and_refuses_unknown_fields_naming_them() {
        let request = descriptor("shop.catalog.v1.ListProductsRequest");
        let camel = json_to_proto(request.clone(), br#"{"minPrice":"10","pageSize":5}"#).unwrap();
        let snake = json_to_proto(request.clone(), br#"{"min_price":"10","page_size":5}"#).unwrap();
        assert_eq!(camel, snake);
        let refused = json_to_proto(request.clone(), br#"{"colour":"red"}"#).unwrap_err();
        assert_eq!(refused.status.code(), Code::InvalidArgument);
        assert!(refused.status.message().contains("colour"), "{:?}", refused.status);
        let broken = json_to_proto(request.clone(), br#"{"search": "#).unwrap_err();
        assert!(broken.status.message().contains("line 1"), "where it broke: {:?}", broken.status);
        assert!(json_to_proto(request, b"{} {}").is_err(), "trailing input");
    }

    #[test]
    fn json_nested_too_deep_is_refused_before_it_is_parsed() {
        let deep = format!("{{\"search\":{}1{}}}", "[".repeat(40), "]".repeat(40));
        let refused = json_to_proto(descriptor("shop.catalog.v1.ListProductsRequest"), deep.as_bytes()).unwrap_err();
        assert!(refused.status.message().contains("nests deeper"), "{:?}", refused.status);
        assert_eq!(nesting(br#"{"a":"[[[[","b":[{}]}"#), 3, "brackets in strings do not count");
    }

    #[test]
    fn answers_are_lower_camel_with_64_bit_integers_as_strings_and_enums_by_name() {
        let order = descriptor("shop.order.v1.Order");
        let mut message = DynamicMessage::new(order);
        message.set_field_by_name("user_id", prost_reflect::Value::I64(7));
        message.set_field_by_name("status", prost_reflect::Value::EnumNumber(2));
        let json: serde_json::Value = serde_json::from_slice(&to_json(&message, 0).unwrap()).unwrap();
        assert_eq!(json, serde_json::json!({ "userId": "7", "status": "ORDER_STATUS_PLACED" }));
    }

    #[test]
    fn a_bad_field_error_carries_its_bad_request_detail_as_type_value_and_debug() {
        let status =
            crate::error::invalid_argument("price", &crate::error::Invalid::new("at most two fraction digits"));
        let response = error_response(&ConnectError::from(status), Codec::Json);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let details = error_details(&crate::error::invalid_argument("price", &crate::error::Invalid::new("x")));
        assert_eq!(details[0]["type"], "google.rpc.BadRequest");
        assert_eq!(details[0]["debug"]["fieldViolations"][0]["field"], "price");
        assert!(!details[0]["value"].as_str().unwrap().ends_with('='), "unpadded base64");
    }

    #[test]
    fn a_get_reads_its_message_from_the_query_in_every_form() {
        let (codec, raw) = get_message("connect=v1&encoding=json&message=%7B%22id%22%3A7%7D").unwrap();
        assert_eq!((codec, raw.as_ref()), (Codec::Json, br#"{"id":7}"#.as_slice()));
        let (codec, raw) = get_message("encoding=proto&base64=1&message=CAc").unwrap();
        assert_eq!((codec, raw.as_ref()), (Codec::Proto, [8_u8, 7].as_slice()));
        assert_eq!(get_message("encoding=xml&message=x").unwrap_err().http, Some(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        assert!(get_message("encoding=json&compression=br&message=x").is_err());
    }

    #[test]
    fn timeouts_are_at_most_ten_digits_of_milliseconds() {
        assert_eq!(parse_timeout(&HeaderValue::from_static("250")).unwrap(), Duration::from_millis(250));
        for bad in ["", "-5", "12345678901", "1.5", "0", "000"] {
            assert!(parse_timeout(&HeaderValue::from_str(bad).unwrap()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn codes_map_to_connect_names_and_http_statuses() {
        assert_eq!(connect_code(Code::InvalidArgument), ("invalid_argument", StatusCode::BAD_REQUEST));
        assert_eq!(connect_code(Code::Unauthenticated), ("unauthenticated", StatusCode::UNAUTHORIZED));
        assert_eq!(connect_code(Code::NotFound), ("not_found", StatusCode::NOT_FOUND));
        assert_eq!(connect_code(Code::Cancelled).0, "canceled");
    }
}
