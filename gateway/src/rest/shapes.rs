//! The old backend's shapes: how each old route's answer and refusals look
//! (docs/REST-COMPAT.md). Answers are the RPC's own message in the proto3
//! JSON mapping (prost-reflect, field names as in the protos, which are the
//! old names), reshaped where the old serializers differed: pagination
//! envelopes, `null` for a picture or a sale that is not there, titles where
//! the old views showed a product by its name, Django's time format.

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode};
use prost_reflect::{DynamicMessage, SerializeOptions};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Map, Value as Json, json};
use shop_proto::contract::Rpc;
use std::str::FromStr as _;
use tonic::body::Body;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use super::input::Fields;

/// Old field names that are not the protos' (request side): (old, proto).
const RENAMED: [(&str, &str); 2] = [("password2", "password_confirm"), ("refresh", "refresh_token")];

/// Where the old views said a refusal in words of their own: (RPC, the
/// field Shop names or "" for the call, Shop's words, the old field, the
/// old words). The replay test (tests/rest-replay) notices when Shop's
/// words change under this table.
const OLD_WORDS: [(&str, &str, &str, &str, &str); 4] = [
    ("Register", "password_confirm", "must equal password", "password", "Passwords do not match."),
    ("Checkout", "", "the cart is empty", "", "Cart is empty"),
    ("CreateProduct", "image", NOT_A_PICTURE, "image", NOT_AN_IMAGE),
    ("UpdateProduct", "image", NOT_A_PICTURE, "image", NOT_AN_IMAGE),
];
const NOT_A_PICTURE: &str = "must be a PNG, JPEG or WebP picture";
const NOT_AN_IMAGE: &str = "Upload a valid image. The file you uploaded was either not an image or a corrupted image.";

/// Largest page the old product listing is given: the old backend had no
/// cap at all; Shop bounds every call's work.
const MAX_PAGE_SIZE: i64 = 100;
/// Report rows and orders the old unpaged routes answer with.
const REPORT_ROWS: i64 = 500;
const ORDERS_SHOWN: i64 = 100;

/// What an old route's call needs to be read and answered in the old shapes.
pub struct Legacy {
    /// The RPC's method name (`ListProducts`).
    method: String,
    /// The cart and wishlist views were hand-written: their refusals are
    /// `{"error": ...}`, not DRF's.
    hand_written: bool,
    has_token: bool,
    /// The caller's user id, from the token's `sub` (read only once the
    /// call succeeded, so the gateway has verified it).
    user_id: Option<i64>,
    /// `http://host/api/products/`, for the listing's links.
    base: String,
    query: Vec<(String, String)>,
    /// A kept picture's address as catalog writes it (`SHOP_PUBLIC_URL`…)
    /// and as this request's host reaches it, the way Django built its
    /// picture links.
    pictures: (String, String),
}

impl Legacy {
    pub fn of(rpc: &Rpc, parts: &Parts, public_url: &str) -> Self {
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|host| host.to_str().ok())
            .map(str::to_owned)
            .or_else(|| parts.uri.authority().map(|authority| authority.to_string()))
            .unwrap_or_else(|| "localhost".to_owned());
        // An HTTP/1.1 request names no scheme: links take the one clients
        // reach Shop by (SHOP_PUBLIC_URL's: https behind TLS).
        let scheme =
            parts.uri.scheme_str().unwrap_or_else(|| if public_url.starts_with("https://") { "https" } else { "http" });
        let token = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        Self {
            method: rpc.method.name().to_owned(),
            hand_written: matches!(rpc.service.as_str(), "shop.cart.v1.CartService" | "shop.cart.v1.WishlistService"),
            has_token: parts.headers.contains_key(http::header::AUTHORIZATION),
            user_id: token.and_then(subject),
            base: format!("{scheme}://{host}{}", parts.uri.path()),
            query: form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()).into_owned().collect(),
            pictures: (format!("{}/images/", public_url.trim_end_matches('/')), format!("{scheme}://{host}/images/")),
        }
    }

    /// The proto field an old name stands for.
    pub fn field_name<'a>(&self, old: &'a str) -> &'a str {
        RENAMED.iter().find(|(from, _)| *from == old).map_or(old, |(_, to)| *to)
    }

    /// The old name of a proto field, as a refusal names it.
    fn old_name<'a>(&self, field: &'a str) -> &'a str {
        RENAMED.iter().find(|(_, to)| *to == field).map_or(field, |(from, _)| *from)
    }

    /// The old field and words for Shop's `words` about `field`, where the
    /// old view had words of its own; else Shop's, unchanged.
    fn old_words<'a>(&self, field: &'a str, words: &'a str) -> (&'a str, &'a str) {
        OLD_WORDS
            .iter()
            .find(|(rpc, shop_field, shop_words, ..)| {
                *rpc == self.method && *shop_field == field && *shop_words == words
            })
            .map_or((field, words), |(.., old_field, old_words)| (old_field, old_words))
    }

    /// The old routes' own readings of their parameters, and the defaults
    /// their views had.
    pub fn adjust(&self, fields: &mut Fields) -> Result<(), Refusal> {
        match self.method.as_str() {
            "ListProducts" => {
                // django-filter's NumberFilter takes any decimal; prices are
                // whole cents from 0 to MAX_PRICE, so a bound is rounded
                // inwards to a cent, dropped when it bounds nothing, and an
                // empty range is an empty page, as the old query gave.
                for (name, lower) in [("min_price", true), ("max_price", false)] {
                    let Some(raw) = fields.get(name).and_then(Json::as_str).map(str::to_owned) else { continue };
                    match price_bound(&raw, lower) {
                        Err(()) => return Err(Refusal::fields(vec![(name.to_owned(), "Enter a number.".to_owned())])),
                        Ok(PriceBound::None) => fields.remove(name),
                        Ok(PriceBound::Cents(bound)) => fields.set(name, Json::String(bound)),
                        Ok(PriceBound::Empty) => return Err(Refusal::ok(EMPTY_PAGE.clone())),
                    }
                }
                // DRF's SearchFilter splits terms on commas as on spaces.
                if let Some(search) = fields.get("search").and_then(Json::as_str) {
                    let terms = search.replace([',', '\0'], " ");
                    fields.set("search", Json::String(terms));
                }
                // A comma list of which Django used the valid items; Shop
                // orders by one key (and breaks ties by id).
                match fields.get("ordering").and_then(Json::as_str).map(first_ordering) {
                    Some(Some(ordering)) => fields.set("ordering", Json::String(ordering)),
                    _ => fields.remove("ordering"),
                }
                match fields.get("page_size").and_then(Json::as_str).and_then(|size| size.trim().parse::<i64>().ok()) {
                    Some(size) if size > 0 => fields.set("page_size", json!(size.min(MAX_PAGE_SIZE))),
                    _ => fields.remove("page_size"),
                }
                match fields.get("page").and_then(Json::as_str).map(str::trim) {
                    None | Some("") => fields.remove("page"),
                    Some(page) => match page.strip_prefix('+').unwrap_or(page).parse::<i64>() {
                        Ok(page) if (1..=i64::from(i32::MAX)).contains(&page) => fields.set("page", json!(page)),
                        _ => return Err(Refusal::invalid_page()),
                    },
                }
            }
            "AddCartItem" => {
                if fields.get("product_id").is_none_or(is_falsy) {
                    return Err(Refusal::error(StatusCode::BAD_REQUEST, "Product ID is required"));
                }
                if fields.get("quantity").is_none() {
                    fields.set("quantity", json!(1));
                }
            }
            // The old view looked the product up by whatever came, none included.
            "AddToWishlist" if fields.get("product_id").is_none_or(is_falsy) => {
                return Err(Refusal::error(StatusCode::NOT_FOUND, "Product not found"));
            }
            "GetProductSalesReport" => {
                // The old report listed sold products only, all of them.
                fields.set("exclude_unsold", json!(true));
                fields.set("page_size", json!(REPORT_ROWS));
                fields.remove("page");
            }
            "ListOrders" => {
                fields.set("page_size", json!(ORDERS_SHOWN));
                fields.remove("page");
            }
            _ => {}
        }
        Ok(())
    }

    /// The RPC's answer in the old route's shape.
    pub fn answer(&self, answer: &DynamicMessage) -> Result<Response<Body>, Refusal> {
        let options = SerializeOptions::new()
            .use_proto_field_name(true)
            .stringify_64_bit_integers(false)
            .skip_default_fields(false);
        let json = answer.serialize_with_options(serde_json::value::Serializer, &options).map_err(|error| {
            tracing::error!(%error, "an answer does not serialize");
            Refusal::server_error()
        })?;
        let (status, body) = match self.method.as_str() {
            "ListProducts" => (StatusCode::OK, self.product_page(&json)?),
            "GetProduct" | "UpdateProduct" => (StatusCode::OK, self.product(&json)),
            "CreateProduct" => {
                // The old create answered before anything was sold: no sold_count.
                let mut created = self.product(&json);
                if let Some(map) = created.as_object_mut() {
                    map.remove("sold_count");
                }
                (StatusCode::CREATED, created)
            }
            "DeleteProduct" | "DeleteCategory" => return Ok(no_content()),
            "ListCategories" => {
                let mut categories = json["categories"].as_array().cloned().unwrap_or_default();
                categories.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
                (StatusCode::OK, Json::Array(categories.iter().map(category).collect()))
            }
            "GetCategory" | "UpdateCategory" => (StatusCode::OK, category(&json)),
            "CreateCategory" => (StatusCode::CREATED, category(&json)),
            "Register" => {
                let user = &json["user"];
                (
                    StatusCode::CREATED,
                    json!({"username": user["username"], "email": user["email"], "is_admin": user["is_admin"]}),
                )
            }
            "Login" | "RefreshToken" => {
                (StatusCode::OK, json!({"refresh": json["refresh_token"], "access": json["access_token"]}))
            }
            "GetCart" => (
                StatusCode::OK,
                json!({"id": self.user_id, "user": self.user_id, "items": titled_lines(&json["items"])}),
            ),
            "AddCartItem" => (StatusCode::OK, json!({"message": "Product added to cart"})),
            "Checkout" => {
                let order = &json["order"];
                (
                    StatusCode::OK,
                    json!({"message": "Checkout successful", "order_id": order["id"], "ordered_at": django_time(&order["created_at"])}),
                )
            }
            "ListOrders" => {
                let orders = json["orders"].as_array().cloned().unwrap_or_default();
                let orders = orders
                    .iter()
                    .map(|order| {
                        json!({
                            "id": order["id"],
                            "ordered_at": django_time(&order["created_at"]),
                            "total_price": order["total_price"].as_str().and_then(|total| total.parse::<f64>().ok()),
                            "items": titled_lines(&order["items"]),
                        })
                    })
                    .collect();
                (StatusCode::OK, Json::Array(orders))
            }
            "GetWishlist" => {
                let titles: Vec<Json> =
                    json["products"].as_array().into_iter().flatten().map(|product| product["title"].clone()).collect();
                (StatusCode::OK, json!({"products": titles}))
            }
            "AddToWishlist" => (StatusCode::OK, json!({"message": "Product added to wishlist"})),
            "RemoveFromWishlist" => (StatusCode::OK, json!({"message": "Product removed from wishlist"})),
            "GetProductSalesReport" => {
                let rows = json["rows"].as_array().into_iter().flatten();
                let rows = rows
                    .map(|row| json!({"product": row["title"], "category": row["category_name"], "sold": row["units_sold"]}))
                    .collect();
                (StatusCode::OK, Json::Array(rows))
            }
            _ => (StatusCode::OK, json),
        };
        Ok(json_response(status, &body))
    }

    /// `{count, next, previous, results}` with absolute links, as DRF's
    /// PageNumberPagination writes them; a page past the end is 404.
    fn product_page(&self, json: &Json) -> Result<Json, Refusal> {
        let count = json["total_count"].as_i64().unwrap_or(0);
        let page = json["page"].as_i64().unwrap_or(1).max(1);
        let size = json["page_size"].as_i64().unwrap_or(10).max(1);
        let products = json["products"].as_array().cloned().unwrap_or_default();
        if products.is_empty() && page > 1 {
            return Err(Refusal::invalid_page());
        }
        let next = (page * size < count).then(|| self.link(page + 1));
        let previous = (page > 1).then(|| self.link(page - 1));
        Ok(json!({
            "count": count,
            "next": next,
            "previous": previous,
            "results": products.iter().map(|found| self.product(found)).collect::<Vec<_>>(),
        }))
    }

    /// This listing's address at `page`: the query's keys sorted, `page`
    /// left out for the first page.
    fn link(&self, page: i64) -> String {
        let mut pairs: Vec<(String, String)> = self.query.iter().filter(|(key, _)| key != "page").cloned().collect();
        if page > 1 {
            pairs.push(("page".to_owned(), page.to_string()));
        }
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        if pairs.is_empty() {
            return self.base.clone();
        }
        let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        format!("{}?{query}", self.base)
    }

    /// A product as the old ProductSerializer wrote it, its kept picture
    /// on this request's host.
    fn product(&self, json: &Json) -> Json {
        let mut shown = product(json);
        let (written, reached) = &self.pictures;
        if let Some(url) = shown["image"].as_str().and_then(|url| url.strip_prefix(written.as_str())) {
            shown["image"] = Json::String(format!("{reached}{url}"));
        }
        shown
    }

    /// A refused call in the old route's shape.
    pub fn refusal(&self, status: &Status) -> Refusal {
        let message = status.message().to_owned();
        match status.code() {
            Code::InvalidArgument | Code::AlreadyExists | Code::FailedPrecondition if self.hand_written => {
                Refusal::error(StatusCode::BAD_REQUEST, self.old_words("", &message).1)
            }
            Code::InvalidArgument | Code::AlreadyExists => {
                let violations: Vec<(String, String)> = status
                    .get_details_bad_request()
                    .map(|bad| {
                        bad.field_violations
                            .into_iter()
                            .map(|violation| {
                                let (field, words) = self.old_words(&violation.field, &violation.description);
                                (self.old_name(field).to_owned(), words.to_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if violations.is_empty() { Refusal::non_field(message) } else { Refusal::fields(violations) }
            }
            Code::NotFound => match self.method.as_str() {
                "ListProducts" => Refusal::ok(EMPTY_PAGE.clone()),
                "GetProductSalesReport" => Refusal::ok(json!([])),
                "GetProduct" | "UpdateProduct" | "DeleteProduct" => {
                    Refusal::detail(StatusCode::NOT_FOUND, "No Product matches the given query.")
                }
                "GetCategory" | "UpdateCategory" | "DeleteCategory" => {
                    Refusal::detail(StatusCode::NOT_FOUND, "No Category matches the given query.")
                }
                "AddCartItem" => Refusal::error(StatusCode::NOT_FOUND, "Invalid product ID"),
                _ if self.hand_written => Refusal::error(StatusCode::NOT_FOUND, "Product not found"),
                _ => Refusal::detail(StatusCode::NOT_FOUND, "Not found."),
            },
            Code::Unauthenticated => self.unauthenticated(),
            Code::PermissionDenied => {
                Refusal::detail(StatusCode::FORBIDDEN, "You do not have permission to perform this action.")
            }
            Code::OutOfRange if self.method == "ListProducts" => Refusal::invalid_page(),
            _ => Refusal::from_status_alone(status),
        }
    }

    /// simplejwt's 401s: which one depends on the route and on whether a
    /// token came at all.
    fn unauthenticated(&self) -> Refusal {
        let body = match self.method.as_str() {
            "Login" => json!({"detail": "No active account found with the given credentials"}),
            "RefreshToken" => json!({"detail": "Token is invalid", "code": "token_not_valid"}),
            _ if self.has_token => json!({
                "detail": "Given token not valid for any token type",
                "code": "token_not_valid",
                "messages": [{"token_class": "AccessToken", "token_type": "access", "message": "Token is invalid"}],
            }),
            _ => json!({"detail": "Authentication credentials were not provided."}),
        };
        Refusal { status: StatusCode::UNAUTHORIZED, body, asks_for_token: true, allow: None }
    }
}

static EMPTY_PAGE: std::sync::LazyLock<Json> =
    std::sync::LazyLock::new(|| json!({"count": 0, "next": null, "previous": null, "results": []}));

/// What an old price filter bounds.
#[derive(Debug, PartialEq, Eq)]
enum PriceBound {
    /// Every price passes it.
    None,
    /// No price passes it.
    Empty,
    /// Prices from (or up to) this many, as a money string.
    Cents(String),
}

/// An old `min_price` (`lower`) or `max_price` as django-filter read it
/// (`12`, `12.345`, `1e3`, `-5`, blank for none), or not a number.
fn price_bound(raw: &str, lower: bool) -> Result<PriceBound, ()> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(PriceBound::None);
    }
    let value = Decimal::from_str(text).or_else(|_| Decimal::from_scientific(text)).map_err(|_| ())?;
    let strategy = if lower { RoundingStrategy::ToPositiveInfinity } else { RoundingStrategy::ToNegativeInfinity };
    let cents = value.round_dp_with_strategy(2, strategy);
    // The highest price a product may have (API.md).
    let max_price = Decimal::new(9_999_999_999, 2);
    Ok(match (lower, cents) {
        (true, cents) if cents <= Decimal::ZERO => PriceBound::None,
        (true, cents) if cents > max_price => PriceBound::Empty,
        (false, cents) if cents < Decimal::ZERO => PriceBound::Empty,
        (false, cents) if cents >= max_price => PriceBound::None,
        (_, cents) => PriceBound::Cents(format!("{:.2}", cents)),
    })
}

/// What Python's `if not value` takes for nothing: null, "", 0, false.
fn is_falsy(value: &Json) -> bool {
    match value {
        Json::Null => true,
        Json::String(text) => text.is_empty(),
        Json::Number(number) => number.as_f64() == Some(0.0),
        Json::Bool(flag) => !flag,
        Json::Array(items) => items.is_empty(),
        Json::Object(map) => map.is_empty(),
    }
}

/// The first valid item of an old `ordering` list (`-price,bogus` → `-price`).
fn first_ordering(list: &str) -> Option<String> {
    list.split(',')
        .map(str::trim)
        .find(|item| matches!(item.trim_start_matches('-'), "price" | "created_at" | "sold_count"))
        .map(str::to_owned)
}

/// The user id a verified access token names (its `sub`).
fn subject(token: &str) -> Option<i64> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Json = serde_json::from_slice(&raw).ok()?;
    claims["sub"].as_str()?.parse().ok()
}

/// A product as the old ProductSerializer wrote it.
fn product(json: &Json) -> Json {
    let image = json["image_url"].as_str().filter(|url| !url.is_empty());
    let sold = json["sold_count"].as_i64().filter(|sold| *sold > 0);
    json!({
        "id": json["id"],
        "title": json["title"],
        "description": json["description"],
        "price": json["price"],
        "stock": json["stock"],
        "image": image,
        "category": category(&json["category"]),
        "created_at": django_time(&json["created_at"]),
        "sold_count": sold,
    })
}

fn category(json: &Json) -> Json {
    json!({"id": json["id"], "name": json["name"], "slug": json["slug"]})
}

/// Cart and order lines as the old views showed them: the product by title.
fn titled_lines(items: &Json) -> Json {
    let lines = items.as_array().into_iter().flatten();
    Json::Array(
        lines
            .map(|line| json!({"id": line["product_id"], "product": line["title"], "quantity": line["quantity"]}))
            .collect(),
    )
}

/// DRF's time: UTC with `Z`, microseconds, none when they are zero.
fn django_time(value: &Json) -> Json {
    let Some(parsed) = value.as_str().and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok()) else {
        return Json::Null;
    };
    let utc = parsed.with_timezone(&chrono::Utc);
    let format = if utc.timestamp_subsec_micros() == 0 { "%Y-%m-%dT%H:%M:%SZ" } else { "%Y-%m-%dT%H:%M:%S%.6fZ" };
    Json::String(utc.format(format).to_string())
}

fn json_response(status: StatusCode, body: &Json) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Body::new(http_body_util::Full::new(Bytes::from(bytes))));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// An old route's refusal: its status and body (DRF's `{"detail": ...}`,
/// `{"field": [...]}`, or the hand-written views' `{"error": ...}`).
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    body: Json,
    /// A 401 says how to authenticate.
    asks_for_token: bool,
    allow: Option<String>,
}

impl Refusal {
    pub fn detail(status: StatusCode, detail: impl Into<String>) -> Self {
        Self { status, body: json!({"detail": detail.into()}), asks_for_token: false, allow: None }
    }

    fn error(status: StatusCode, error: impl Into<String>) -> Self {
        Self { status, body: json!({"error": error.into()}), asks_for_token: false, allow: None }
    }

    /// Not a refusal: where the old route answered 200 what Shop refuses
    /// (an unknown category filter is an empty list there).
    fn ok(body: Json) -> Self {
        Self { status: StatusCode::OK, body, asks_for_token: false, allow: None }
    }

    pub fn non_field(message: impl Into<String>) -> Self {
        Self::fields(vec![("non_field_errors".to_owned(), message.into())])
    }

    /// 400 `{"field": ["message", ...]}`, each field's messages together.
    pub fn fields(refused: Vec<(String, String)>) -> Self {
        let mut body = Map::new();
        for (field, message) in refused {
            let messages = body.entry(field).or_insert_with(|| Json::Array(Vec::new()));
            if let Some(list) = messages.as_array_mut() {
                list.push(Json::String(message));
            }
        }
        Self { status: StatusCode::BAD_REQUEST, body: Json::Object(body), asks_for_token: false, allow: None }
    }

    pub fn invalid_page() -> Self {
        Self::detail(StatusCode::NOT_FOUND, "Invalid page.")
    }

    pub fn unsupported_media(content_type: &str) -> Self {
        let shown = shop_platform::kernel::text::echo(content_type);
        Self::detail(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("Unsupported media type \"{shown}\" in request."))
    }

    pub fn too_large() -> Self {
        let limit = shop_platform::transport::connect::MAX_MESSAGE_BYTES >> 20;
        Self::detail(StatusCode::PAYLOAD_TOO_LARGE, format!("The request body is larger than {limit} MiB."))
    }

    pub fn method_not_allowed(method: &Method, allowed: &[Method]) -> Self {
        let mut refusal = Self::detail(StatusCode::METHOD_NOT_ALLOWED, format!("Method \"{method}\" not allowed."));
        refusal.allow = Some(allowed.iter().map(Method::as_str).collect::<Vec<_>>().join(", "));
        refusal
    }

    pub fn server_error() -> Self {
        Self::detail(StatusCode::INTERNAL_SERVER_ERROR, "A server error occurred.")
    }

    /// A status no route gives a meaning of its own.
    pub fn from_status_alone(status: &Status) -> Self {
        let message = status.message().to_owned();
        let http = match status.code() {
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange | Code::AlreadyExists => {
                StatusCode::BAD_REQUEST
            }
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Aborted => StatusCode::CONFLICT,
            Code::NotFound | Code::Unimplemented => return Self::detail(StatusCode::NOT_FOUND, "Not found."),
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => return Self::server_error(),
        };
        Self::detail(http, message)
    }

    pub fn into_response(self) -> Response<Body> {
        let mut response = json_response(self.status, &self.body);
        if self.asks_for_token {
            response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"api\""));
        }
        if let Some(allow) = self.allow.and_then(|allow| HeaderValue::from_str(&allow).ok()) {
            response.headers_mut().insert(ALLOW, allow);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_filters_are_read_as_django_filter_read_them() {
        let cents = |text: &str| PriceBound::Cents(text.to_owned());
        assert_eq!(price_bound("10.555", true), Ok(cents("10.56")));
        assert_eq!(price_bound("10.555", false), Ok(cents("10.55")));
        assert_eq!(price_bound(" 1e3 ", false), Ok(cents("1000.00")));
        assert_eq!(price_bound("-5", true), Ok(PriceBound::None));
        assert_eq!(price_bound("-5", false), Ok(PriceBound::Empty));
        assert_eq!(price_bound("1e12", true), Ok(PriceBound::Empty));
        assert_eq!(price_bound("1e12", false), Ok(PriceBound::None));
        assert_eq!(price_bound("", true), Ok(PriceBound::None));
        assert_eq!(price_bound("abc", true), Err(()));
        assert_eq!(price_bound("NaN", true), Err(()));
    }

    #[test]
    fn orderings_keep_the_first_item_django_knew() {
        assert_eq!(first_ordering("-price,bogus").as_deref(), Some("-price"));
        assert_eq!(first_ordering("bogus, sold_count").as_deref(), Some("sold_count"));
        assert_eq!(first_ordering("title"), None);
    }

    #[test]
    fn times_are_written_as_drf_writes_them() {
        assert_eq!(django_time(&json!("2026-12-07T06:54:03.575883123Z")), json!("2026-12-07T06:54:03.575883Z"));
        assert_eq!(django_time(&json!("2026-12-07T06:54:03Z")), json!("2026-12-07T06:54:03Z"));
        assert_eq!(django_time(&json!(null)), Json::Null);
    }

    #[test]
    fn a_product_has_the_old_keys_and_nulls() {
        let shown = product(&json!({
            "id": 3, "title": "Lamp", "description": "", "price": "19.90", "stock": 5, "image_url": "",
            "category": {"id": 1, "name": "Lamps", "slug": "lamps"}, "created_at": "2026-12-07T06:54:03Z",
            "updated_at": "2026-12-07T06:54:03Z", "sold_count": 0,
        }));
        assert_eq!(shown["image"], Json::Null);
        assert_eq!(shown["sold_count"], Json::Null);
        assert_eq!(shown["category"]["slug"], "lamps");
        assert!(shown.get("updated_at").is_none());
    }
}
