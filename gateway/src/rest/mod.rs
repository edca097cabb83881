//! The old backend's REST routes (`/api/...`), answered by translating each
//! request into the public RPC its `google.api.http` option binds it to.
//! The translated call goes through everything a native call meets (call
//! limits, body budget, metrics with `protocol="rest"`, the policy, tokens),
//! and its answer comes back in the old backend's shapes ([`shapes`]).
//! docs/REST-COMPAT.md lists the routes and every difference on purpose.

mod input;
mod routes;
mod shapes;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION};
use http::{HeaderValue, Request, Response, StatusCode};
use prost::Message as _;
use prost_reflect::{DynamicMessage, ReflectMessage as _};
use shop_platform::transport::connect::{
    NativeAnswer, Protocol, Unread, native_answer, native_request, read_capped_body,
};
use shop_platform::transport::web::{Face, NativeCalls};
use shop_proto::contract::Contract;
use tonic::body::Body;
use tower::ServiceExt as _;

use self::routes::{Found, RouteTable};
use self::shapes::Refusal;

/// Where the old routes live on the gateway's port.
const PREFIX: &str = "/api/";

/// The old REST routes as a face of the gateway.
#[derive(Debug)]
pub struct RestFace {
    contract: &'static Contract,
    routes: RouteTable,
    /// `SHOP_PUBLIC_URL`: where catalog says its kept pictures are.
    public_url: std::sync::Arc<str>,
}

impl RestFace {
    pub fn new(contract: &'static Contract, public_url: &str) -> anyhow::Result<Self> {
        Ok(Self { contract, routes: RouteTable::new(contract)?, public_url: public_url.into() })
    }
}

impl Face for RestFace {
    fn claims(&self, request: &Request<Body>) -> bool {
        let path = request.uri().path();
        path.starts_with(PREFIX) || path == "/api"
    }

    fn answer(
        &self,
        native: NativeCalls,
        request: Request<Body>,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
        let found = self.routes.find(request.method(), request.uri().path());
        let contract = self.contract;
        let public_url = std::sync::Arc::clone(&self.public_url);
        Box::pin(async move {
            match found {
                Found::Route(route, variables) => call(contract, native, route, variables, request, &public_url)
                    .await
                    .unwrap_or_else(|refusal| refusal.into_response()),
                Found::WithSlash => moved_to_slash(&request),
                Found::WrongMethod(allowed) => Refusal::method_not_allowed(request.method(), &allowed).into_response(),
                Found::Nothing => not_found_page(),
            }
        })
    }
}

/// One old route's call: its request read, the RPC called, its answer shaped.
async fn call(
    contract: &'static Contract,
    native: NativeCalls,
    route: std::sync::Arc<routes::Route>,
    variables: Vec<(String, String)>,
    request: Request<Body>,
    public_url: &str,
) -> Result<Response<Body>, Refusal> {
    let rpc = contract.rpc(&route.rpc).ok_or_else(Refusal::server_error)?;
    let (parts, body) = request.into_parts();
    let body = if route.takes_body { read_capped(body).await? } else { Bytes::new() };
    let mut fields = input::Fields::gather(&parts, body, route.takes_body, variables).await?;
    let legacy = shapes::Legacy::of(rpc, &parts, public_url);
    legacy.adjust(&mut fields)?;
    let mut message = input::message(rpc.method.input(), fields, &legacy, &parts.method)?;
    if parts.method == http::Method::PATCH && names_nothing(&message) {
        message = unchanged(contract, native.clone(), rpc, message, &parts, &legacy).await?;
    }
    let grpc =
        native_request(rpc, Bytes::from(message.encode_to_vec()), &parts.headers, parts.extensions, Protocol::Rest);
    let Ok(answer) = native.oneshot(grpc).await;
    let NativeAnswer { headers, message, .. } = native_answer(answer).await;
    let answer = match message {
        Ok(bytes) => DynamicMessage::decode(rpc.method.output(), bytes).map_err(|error| {
            tracing::error!(rpc = %rpc.name, %error, "an answer does not fit its message");
            Refusal::server_error()
        })?,
        Err(status) => return Err(legacy.refusal(&status)),
    };
    let mut response = legacy.answer(&answer)?;
    if let Some(id) = headers.get("x-request-id") {
        response.headers_mut().insert("x-request-id", id.clone());
    }
    Ok(response)
}

/// An update whose mask is empty: for a PATCH, a body with no field the
/// resource has.
fn names_nothing(message: &DynamicMessage) -> bool {
    let Some(mask) = message.descriptor().get_field_by_name("update_mask") else { return false };
    match message.get_field(&mask).as_message().and_then(|mask| mask.get_field_by_name("paths")) {
        Some(paths) => paths.as_list().is_none_or(<[_]>::is_empty),
        None => true,
    }
}

/// A PATCH that names nothing the resource has: Django saved the object as
/// it was and answered it. Shop reads it (the resource's Get) and writes one
/// of its fields back as it is, so the Update's access level still decides
/// (a customer is still 403) and the answer is the object.
async fn unchanged(
    contract: &'static Contract,
    native: NativeCalls,
    update: &shop_proto::contract::Rpc,
    mut message: DynamicMessage,
    parts: &http::request::Parts,
    legacy: &shapes::Legacy,
) -> Result<DynamicMessage, Refusal> {
    let get_path = format!("/{}", update.name.replacen("/Update", "/Get", 1));
    let get = contract.rpc(&get_path).ok_or_else(Refusal::server_error)?;
    let mut read = DynamicMessage::new(get.method.input());
    let id = message.get_field_by_name("id").ok_or_else(Refusal::server_error)?.into_owned();
    read.set_field_by_name("id", id);
    let request = native_request(
        get,
        Bytes::from(read.encode_to_vec()),
        &parts.headers,
        parts.extensions.clone(),
        Protocol::Rest,
    );
    let Ok(answer) = native.oneshot(request).await;
    let current = match native_answer(answer).await.message {
        Ok(bytes) => DynamicMessage::decode(get.method.output(), bytes).map_err(|_| Refusal::server_error())?,
        Err(status) => return Err(legacy.refusal(&status)),
    };
    let field = message
        .descriptor()
        .fields()
        .find(|field| {
            !matches!(field.name(), "id" | "update_mask")
                && current.descriptor().get_field_by_name(field.name()).is_some_and(|read| read.kind() == field.kind())
        })
        .ok_or_else(Refusal::server_error)?;
    let value = current.get_field_by_name(field.name()).ok_or_else(Refusal::server_error)?.into_owned();
    message.set_field(&field, value);
    input::set_update_mask(&mut message, vec![field.name().to_owned()]);
    Ok(message)
}

/// The body, refused as soon as it passes the cap (never read whole).
async fn read_capped(body: Body) -> Result<Bytes, Refusal> {
    read_capped_body(body).await.map_err(|unread| match unread {
        Unread::TooLarge => Refusal::too_large(),
        Unread::Refused(status) => Refusal::from_status_alone(&status),
    })
}

/// Django's APPEND_SLASH: a route asked for without its trailing slash is
/// moved there, query kept, whatever the method (nothing runs).
fn moved_to_slash<B>(request: &Request<B>) -> Response<Body> {
    let mut location = format!("{}/", request.uri().path());
    if let Some(query) = request.uri().query() {
        location.push('?');
        location.push_str(query);
    }
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, location);
    }
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

/// Django's page for a path no route has.
const NOT_FOUND_PAGE: &str = "\n<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n</body>\n</html>\n";

fn not_found_page() -> Response<Body> {
    let mut response =
        Response::new(Body::new(http_body_util::Full::new(Bytes::from_static(NOT_FOUND_PAGE.as_bytes()))));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}
