//! The Connect face (connectrpc.com), spoken over plain HTTP/1.1 as curl and
//! JSON clients speak it: POST with JSON or binary protobuf, GET for the RPCs
//! that change nothing, errors in Connect's JSON with the same google.rpc
//! details gRPC clients get, and every limit and rule of the gateway.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;

use base64::Engine as _;
use prost::Message as _;
use serde_json::{Value, json};
use shop_proto::catalog::{GetProductRequest, Product};

use crate::edge::http1;
use crate::harness::{TestShop, product};

type Answer = (u16, Vec<(String, String)>, Vec<u8>);

async fn post_json(addr: SocketAddr, method: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    http1(addr, "POST", &format!("/{method}"), &all, body.as_bytes()).await
}

fn json_of(answer: &Answer) -> Value {
    serde_json::from_slice(&answer.2).unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&answer.2)))
}

fn header<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
    answer.1.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

fn query_value(json: &str) -> String {
    form_urlencoded::byte_serialize(json.as_bytes()).collect()
}

#[tokio::test]
async fn json_calls_answer_like_grpc_ones_in_the_proto3_json_mapping() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let category = shop.create_category(&admin, "Lamps").await;
    let lamp = shop.create_product(&admin, product("Desk lamp", "19.9", 5, category.id)).await;
    let addr = shop.suite.gateway_addr;

    let answer = post_json(
        addr,
        "shop.catalog.v1.CatalogService/GetProduct",
        &format!(r#"{{"id":{}}}"#, lamp.id),
        &[("connect-protocol-version", "1")],
    )
    .await;
    assert_eq!(answer.0, 200, "{}", String::from_utf8_lossy(&answer.2));
    assert_eq!(header(&answer, "content-type"), Some("application/json"));
    assert!(header(&answer, "x-request-id").is_some());
    let got = json_of(&answer);
    assert_eq!(got["id"], json!(lamp.id.to_string()), "int64 as a string");
    assert_eq!(got["price"], "19.90");
    assert_eq!(got["category"]["slug"], "lamps");
    assert!(got["createdAt"].as_str().unwrap().ends_with('Z'), "lowerCamelCase and RFC 3339: {got}");

    // The same call in binary protobuf answers the same product.
    let proto = GetProductRequest { id: lamp.id }.encode_to_vec();
    let answer = http1(
        addr,
        "POST",
        "/shop.catalog.v1.CatalogService/GetProduct",
        &[("content-type", "application/proto")],
        &proto,
    )
    .await;
    assert_eq!(answer.0, 200);
    assert_eq!(header(&answer, "content-type"), Some("application/proto"));
    assert_eq!(Product::decode(answer.2.as_slice()).unwrap().title, "Desk lamp");

    // Both field spellings in; a login through JSON; a user call with its token.
    let registered = post_json(addr, "shop.identity.v1.IdentityService/Register",
        r#"{"username":"ann","email":"ann@example.com","password":"tulip-Orbit-42","password_confirm":"tulip-Orbit-42"}"#, &[]).await;
    assert_eq!(registered.0, 200, "{}", String::from_utf8_lossy(&registered.2));
    let login = json_of(
        &post_json(
            addr,
            "shop.identity.v1.IdentityService/Login",
            r#"{"username":"ann","password":"tulip-Orbit-42"}"#,
            &[],
        )
        .await,
    );
    let token = format!("Bearer {}", login["accessToken"].as_str().unwrap());
    let me = json_of(
        &post_json(addr, "shop.identity.v1.IdentityService/GetCurrentUser", "{}", &[("authorization", &token)]).await,
    );
    assert_eq!(me["username"], "ann");
    let added = post_json(
        addr,
        "shop.cart.v1.CartService/AddCartItem",
        &format!(r#"{{"productId":"{}","quantity":2}}"#, lamp.id),
        &[("authorization", &token)],
    )
    .await;
    assert_eq!(json_of(&added)["totalPrice"], "39.80");
}

#[tokio::test]
async fn errors_are_connect_json_with_the_grpc_details_and_http_statuses() {
    let shop = TestShop::start().await;
    let addr = shop.suite.gateway_addr;
    let bad = post_json(
        addr,
        "shop.identity.v1.IdentityService/Register",
        r#"{"username":"bob","email":"bob@example.com","password":"password","passwordConfirm":"password"}"#,
        &[],
    )
    .await;
    assert_eq!(bad.0, 400);
    assert_eq!(header(&bad, "content-type"), Some("application/json"));
    let error = json_of(&bad);
    assert_eq!(error["code"], "invalid_argument");
    assert!(error["message"].as_str().unwrap().starts_with("password:"), "{error}");
    let detail = &error["details"][0];
    assert_eq!(detail["type"], "google.rpc.BadRequest");
    assert_eq!(detail["debug"]["fieldViolations"][0]["field"], "password");
    let value = base64::engine::general_purpose::STANDARD_NO_PAD.decode(detail["value"].as_str().unwrap()).unwrap();
    let decoded = tonic_types::pb::BadRequest::decode(value.as_slice()).unwrap();
    assert_eq!(decoded.field_violations[0].field, "password", "the binary detail gRPC clients get");

    let unauthenticated = post_json(addr, "shop.cart.v1.CartService/GetCart", "{}", &[]).await;
    assert_eq!((unauthenticated.0, json_of(&unauthenticated)["code"].clone()), (401, json!("unauthenticated")));
    let customer = shop.customer("carl").await;
    let bearer = format!("Bearer {customer}");
    let denied = post_json(
        addr,
        "shop.reporting.v1.ReportingService/GetProductSalesReport",
        "{}",
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!((denied.0, json_of(&denied)["code"].clone()), (403, json!("permission_denied")));
    let missing = post_json(addr, "shop.catalog.v1.CatalogService/GetProduct", r#"{"id":"404"}"#, &[]).await;
    assert_eq!((missing.0, json_of(&missing)["code"].clone()), (404, json!("not_found")));
    let internal = post_json(addr, "shop.catalog.v1.InventoryService/ReserveStock", "{}", &[]).await;
    assert_eq!(json_of(&internal)["code"], "unimplemented", "internal services are not on any face");
}

#[tokio::test]
async fn bad_input_is_refused_naming_where_it_broke_and_nothing_is_internal() {
    let shop = TestShop::start().await;
    let addr = shop.suite.gateway_addr;
    let list = "shop.catalog.v1.CatalogService/ListProducts";
    for (body, says) in [
        (r#"{"search": "#, "line 1"),
        (r#"{"colour":"red"}"#, "colour"),
        (r#"{"pageSize":"lots"}"#, "invalid"),
        (r#"{"search":"a"} trailing"#, "trailing"),
    ] {
        let answer = post_json(addr, list, body, &[]).await;
        let error = json_of(&answer);
        assert_eq!((answer.0, error["code"].as_str()), (400, Some("invalid_argument")), "{body}: {error}");
        assert!(error["message"].as_str().unwrap().contains(says), "{body}: {error}");
    }
    let deep = format!(r#"{{"search":{}"x"{}}}"#, "[".repeat(64), "]".repeat(64));
    assert_eq!(post_json(addr, list, &deep, &[]).await.0, 400);
    // No content type a face takes: 415, saying which are.
    let text = http1(addr, "POST", &format!("/{list}"), &[("content-type", "text/plain")], b"{}").await;
    assert_eq!(text.0, 415);
    assert!(header(&text, "accept-post").unwrap().contains("application/json"));
    let none = http1(addr, "POST", &format!("/{list}"), &[], b"{}").await;
    assert_eq!(none.0, 415);
    // Over the size cap: 413, resource_exhausted, without reading it all.
    let huge = format!(r#"{{"search":"{}"}}"#, "x".repeat(5 * 1024 * 1024));
    let answer = post_json(addr, list, &huge, &[]).await;
    assert_eq!((answer.0, json_of(&answer)["code"].clone()), (413, json!("resource_exhausted")));
    // A protocol version other than 1, a timeout that is no number of milliseconds.
    assert_eq!(post_json(addr, list, "{}", &[("connect-protocol-version", "2")]).await.0, 400);
    assert_eq!(post_json(addr, list, "{}", &[("connect-timeout-ms", "soon")]).await.0, 400);
    // An unknown compression.
    assert_eq!(post_json(addr, list, "{}", &[("content-encoding", "br")]).await.0, 501);
}

#[tokio::test]
async fn reads_answer_get_with_cache_headers_that_never_share_a_users_answer() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let category = shop.create_category(&admin, "Lamps").await;
    let lamp = shop.create_product(&admin, product("Desk lamp", "19.90", 5, category.id)).await;
    let addr = shop.suite.gateway_addr;

    let message = query_value(&format!(r#"{{"id":{}}}"#, lamp.id));
    let path = format!("/shop.catalog.v1.CatalogService/GetProduct?connect=v1&encoding=json&message={message}");
    let public = http1(addr, "GET", &path, &[], b"").await;
    assert_eq!(public.0, 200, "{}", String::from_utf8_lossy(&public.2));
    assert_eq!(json_of(&public)["title"], "Desk lamp");
    assert!(header(&public, "cache-control").unwrap().starts_with("public, max-age="));
    assert!(header(&public, "vary").unwrap().contains("Authorization"));

    // Binary, base64 in the query.
    let encoded =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(GetProductRequest { id: lamp.id }.encode_to_vec());
    let binary = http1(
        addr,
        "GET",
        &format!("/shop.catalog.v1.CatalogService/GetProduct?connect=v1&encoding=proto&base64=1&message={encoded}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(Product::decode(binary.2.as_slice()).unwrap().id, lamp.id);
    // Binary, percent-encoded byte for byte (not valid UTF-8: 0xC8 and up).
    let request = GetProductRequest { id: lamp.id + 200 }.encode_to_vec();
    let percent: String = form_urlencoded::byte_serialize(&request).collect();
    let not_there = http1(
        addr,
        "GET",
        &format!("/shop.catalog.v1.CatalogService/GetProduct?connect=v1&encoding=proto&message={percent}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(not_there.0, 404, "the id arrived exactly: {}", String::from_utf8_lossy(&not_there.2));
    assert!(json_of(&not_there)["message"].as_str().unwrap().contains(&(lamp.id + 200).to_string()));

    // An error is never kept by a cache: the product may exist a moment later.
    let missing = query_value(r#"{"id":"987654"}"#);
    let not_found = http1(
        addr,
        "GET",
        &format!("/shop.catalog.v1.CatalogService/GetProduct?connect=v1&encoding=json&message={missing}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(not_found.0, 404);
    assert_eq!(header(&not_found, "cache-control"), Some("no-store"));

    // A user's read is private; a read with a token is too.
    let customer = shop.customer("carl").await;
    let bearer = format!("Bearer {customer}");
    let cart = http1(
        addr,
        "GET",
        "/shop.cart.v1.CartService/GetCart?connect=v1&encoding=json&message=%7B%7D",
        &[("authorization", &bearer)],
        b"",
    )
    .await;
    assert_eq!(cart.0, 200);
    assert_eq!(header(&cart, "cache-control"), Some("private, no-store"));
    let with_token = http1(addr, "GET", &path, &[("authorization", &bearer)], b"").await;
    assert_eq!(header(&with_token, "cache-control"), Some("private, no-store"));

    // Writes are POST only.
    let write = http1(
        addr,
        "GET",
        "/shop.cart.v1.CartService/Checkout?connect=v1&encoding=json&message=%7B%7D",
        &[("authorization", &bearer)],
        b"",
    )
    .await;
    assert_eq!(write.0, 405);
    assert_eq!(header(&write, "allow"), Some("POST"));
}

#[tokio::test]
async fn gzip_both_ways_and_the_connect_timeout_is_the_calls_deadline() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let category = shop.create_category(&admin, "Books").await;
    for n in 0..20 {
        let mut tome = product(&format!("Tome {n}"), "9.99", 5, category.id);
        tome.description = "lorem ipsum ".repeat(40);
        shop.create_product(&admin, tome).await;
    }
    let addr = shop.suite.gateway_addr;
    let mut zipped = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    zipped.write_all(br#"{"pageSize":20}"#).unwrap();
    let zipped = zipped.finish().unwrap();
    let answer = http1(
        addr,
        "POST",
        "/shop.catalog.v1.CatalogService/ListProducts",
        &[("content-type", "application/json"), ("content-encoding", "gzip"), ("accept-encoding", "gzip")],
        &zipped,
    )
    .await;
    assert_eq!(answer.0, 200);
    assert_eq!(header(&answer, "content-encoding"), Some("gzip"));
    let mut plain = String::new();
    flate2::read::GzDecoder::new(answer.2.as_slice()).read_to_string(&mut plain).unwrap();
    let page: Value = serde_json::from_str(&plain).unwrap();
    assert_eq!(page["products"].as_array().unwrap().len(), 20);
    assert_eq!(page["totalCount"], "20");

    // A deadline that has passed before any answer could come.
    let late = post_json(
        addr,
        "shop.catalog.v1.CatalogService/ListProducts",
        r#"{"search":"tome lorem"}"#,
        &[("connect-timeout-ms", "1")],
    )
    .await;
    assert!(matches!(late.0, 200 | 504), "{late:?}");
    if late.0 == 504 {
        assert_eq!(json_of(&late)["code"], "deadline_exceeded");
    }
}

#[tokio::test]
async fn the_openapi_document_is_served_and_is_the_committed_one() {
    let shop = TestShop::start().await;
    let answer = http1(shop.suite.gateway_addr, "GET", "/openapi.json", &[], b"").await;
    assert_eq!(answer.0, 200);
    assert_eq!(String::from_utf8(answer.2).unwrap(), shop_proto::OPENAPI_JSON);
    let committed = include_str!("../../docs/openapi.json");
    assert!(
        committed == shop_proto::OPENAPI_JSON,
        "docs/openapi.json differs from what the protos give: run `cargo run -- openapi > docs/openapi.json`"
    );
    let document: Value = serde_json::from_str(shop_proto::OPENAPI_JSON).unwrap();
    let get_product = &document["paths"]["/shop.catalog.v1.CatalogService/GetProduct"];
    assert!(get_product["post"].is_object() && get_product["get"].is_object(), "reads have GET");
    assert!(document["paths"]["/shop.cart.v1.CartService/Checkout"]["get"].is_null(), "writes do not");
    assert_eq!(document["paths"]["/shop.cart.v1.CartService/Checkout"]["post"]["security"], json!([{"bearer": []}]));
    assert!(document["paths"]["/shop.catalog.v1.InventoryService/ReserveStock"].is_null(), "nothing internal");
}

/// Sends `raw` bytes as they are and reads until the server closes.
async fn raw_http1(addr: SocketAddr, raw: &[u8]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(raw).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), socket.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn ambiguous_http1_framing_smuggles_nothing() {
    let shop = TestShop::start().await;
    let addr = shop.suite.gateway_addr;
    let path = "/shop.catalog.v1.CatalogService/ListProducts";
    // Content-Length and Transfer-Encoding both: read as chunked, answered
    // once, and the connection closed, so a request hidden behind the
    // length never runs.
    let smuggled = format!("GET {path}?connect=v1&encoding=json&message=%7B%7D HTTP/1.1\r\nhost: x\r\n\r\n");
    let chunk = "{}";
    let raw = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 4\r\n\
         transfer-encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n{smuggled}",
        chunk.len()
    );
    let answer = raw_http1(addr, raw.as_bytes()).await;
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "one answer, nothing smuggled: {answer}");
    // Two different lengths: refused outright.
    let raw = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\ncontent-length: 40\r\n\r\n{{}}"
    );
    let answer = raw_http1(addr, raw.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

#[tokio::test]
async fn a_connect_call_counts_against_its_address_like_a_grpc_call() {
    let shop = TestShop::start_with(|config| config.gateway.max_calls_per_addr = 1).await;
    let addr = shop.suite.gateway_addr;
    // One native call in flight from this address: its message never ends.
    let mut client = crate::harness::raw_h2(addr).await;
    let request = http::Request::post(format!("http://{addr}/shop.catalog.v1.CatalogService/GetProduct"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (_response, mut body) = client.send_request(request, false).unwrap();
    body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 10, 8]), false).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let answer = post_json(addr, "shop.catalog.v1.CatalogService/ListProducts", "{}", &[]).await;
    assert_eq!((answer.0, json_of(&answer)["code"].clone()), (429, json!("resource_exhausted")), "{answer:?}");
    drop(body);
}

#[tokio::test]
async fn per_address_limits_hold_for_connect_calls_too() {
    let shop = TestShop::start_with(|config| config.identity.login_per_addr_per_min = 2).await;
    let addr = shop.suite.gateway_addr;
    let login = r#"{"username":"nobody","password":"tulip-Orbit-42"}"#;
    for _ in 0..2 {
        let answer = post_json(addr, "shop.identity.v1.IdentityService/Login", login, &[]).await;
        assert_eq!(json_of(&answer)["code"], "unauthenticated");
    }
    let limited = post_json(addr, "shop.identity.v1.IdentityService/Login", login, &[]).await;
    assert_eq!((limited.0, json_of(&limited)["code"].clone()), (429, json!("resource_exhausted")));
    assert_eq!(json_of(&limited)["details"][0]["type"], "google.rpc.RetryInfo", "when to try again");
}

#[tokio::test]
async fn an_unfinished_connect_body_is_held_to_the_body_budget() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let shop = TestShop::start_with(|config| {
        config.gateway.unfinished_bodies_per_connection_mib = 1;
        config.gateway.body_idle_timeout_ms = 1_000;
    })
    .await;
    let addr = shop.suite.gateway_addr;
    // A JSON body announced at 3 MiB, of which 1.5 MiB come: past the
    // connection's 1 MiB it waits for room, and gets none.
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /shop.catalog.v1.CatalogService/ListProducts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{{\"search\":\"",
        3 * 1024 * 1024
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let _ = socket.write_all(&vec![b'x'; 1536 * 1024]).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), socket.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("resource_exhausted"), "{answer}");
}
