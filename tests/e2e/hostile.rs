//! Hostile clients at the gateway, spoken to over raw HTTP/2 where a polite
//! client library would not misbehave: one that stops reading must not stall
//! anyone else, connections are bounded, and oversized metadata or messages
//! get a gRPC status rather than an HTTP error.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use shop_proto::catalog::{ListProductsRequest, ListProductsResponse};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tonic::Code;
use tonic::metadata::MetadataValue;

use crate::harness::{TestShop, bearer, connect, product};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A gRPC message frame: uncompressed flag, length, bytes.
fn grpc_frame(message: &impl prost::Message) -> Bytes {
    let body = message.encode_to_vec();
    let mut frame = Vec::with_capacity(5 + body.len());
    frame.push(0);
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    Bytes::from(frame)
}

fn list_products_request(addr: SocketAddr) -> http::Request<()> {
    http::Request::post(format!("http://{addr}/shop.catalog.v1.CatalogService/ListProducts"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

/// Waits until the server closes `socket` (read returns 0 or fails);
/// `false` if it is still open after `within`.
pub async fn closed_within(socket: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0_u8; 4096];
    let until = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(until, socket.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_stalls_only_itself_and_its_calls_are_cancelled() {
    let shop = TestShop::start_with(|config| config.gateway.stall_timeout_ms = 1_000).await;
    let admin = shop.admin("root").await;
    let category = shop.create_category(&admin, "Books").await;
    // About 1 MB per page of 100.
    for n in 0..100 {
        let mut big = product(&format!("Tome {n}"), "9.99", 5, category.id);
        big.description = "lorem ipsum ".repeat(830);
        shop.create_product(&admin, big).await;
    }

    // One connection that asks for six such pages and never opens a window
    // for them, but keeps answering PINGs (h2's connection task does).
    let addr = shop.suite.gateway_addr;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::Builder::new().initial_window_size(0).handshake(tcp).await.unwrap();
    let stalled_connection = tokio::spawn(connection);
    let mut stalled = Vec::new();
    for _ in 0..6 {
        let mut client = client.clone().ready().await.unwrap();
        let (response, mut body) = client.send_request(list_products_request(addr), false).unwrap();
        body.send_data(grpc_frame(&ListProductsRequest { page_size: 100, ..Default::default() }), true).unwrap();
        stalled.push(response);
    }
    let mut stalled_bodies = Vec::new();
    for response in stalled {
        stalled_bodies.push(response.await.expect("answer head").into_body());
    }

    // Meanwhile everyone else is served as usual, on fresh connections.
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let mut catalog = shop_proto::catalog::catalog_service_client::CatalogServiceClient::new(connect(addr).await);
        let mut request = tonic::Request::new(ListProductsRequest { page_size: 100, ..Default::default() });
        request.set_timeout(Duration::from_secs(5));
        let started = Instant::now();
        let page = catalog.list_products(request).await.expect("others keep being served").into_inner();
        slowest = slowest.max(started.elapsed());
        assert_eq!(page.products.len(), 100);
    }
    assert!(slowest < Duration::from_secs(2), "slowest call took {slowest:?}");

    // The stalled calls are given up: their streams are reset or, as this
    // client never reads at all, its connection is closed.
    for mut body in stalled_bodies {
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match body.data().await {
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return,
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "a stalled stream was never ended");
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), stalled_connection).await.expect("connection closed");
}

#[tokio::test]
async fn the_request_timeout_bounds_sending_the_answer_too() {
    let shop = TestShop::start_with(|config| {
        config.server.request_timeout_secs = 1;
        config.gateway.stall_timeout_ms = 30_000;
    })
    .await;
    let admin = shop.admin("root").await;
    let category = shop.create_category(&admin, "Books").await;
    for n in 0..30 {
        let mut big = product(&format!("Tome {n}"), "9.99", 5, category.id);
        big.description = "lorem ipsum ".repeat(830);
        shop.create_product(&admin, big).await;
    }
    let addr = shop.suite.gateway_addr;
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake(TcpStream::connect(addr).await.unwrap())
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let mut ready = client.ready().await.unwrap();
    let (response, mut body) = ready.send_request(list_products_request(addr), false).unwrap();
    body.send_data(grpc_frame(&ListProductsRequest { page_size: 100, ..Default::default() }), true).unwrap();
    let mut answer = response.await.expect("answer head").into_body();
    let started = Instant::now();
    let ended =
        tokio::time::timeout(Duration::from_secs(15), async { while let Some(Ok(_)) = answer.data().await {} }).await;
    assert!(ended.is_ok(), "the unread answer outlived the request timeout");
    assert!(started.elapsed() < Duration::from_secs(10), "ended only after {:?}", started.elapsed());
    let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
}

#[tokio::test]
async fn the_gateway_allows_100_streams_per_connection() {
    let shop = TestShop::start().await;
    let addr = shop.suite.gateway_addr;
    let mut ready = crate::harness::raw_h2(addr).await;
    // One call, so the server's SETTINGS have surely arrived.
    let (response, mut body) = ready.send_request(list_products_request(addr), false).unwrap();
    body.send_data(grpc_frame(&ListProductsRequest::default()), true).unwrap();
    response.await.unwrap();
    assert_eq!(ready.current_max_send_streams(), 100);
}

#[tokio::test]
async fn connections_that_never_finish_the_preface_are_closed() {
    let shop = TestShop::start_with(|config| config.server.handshake_timeout_ms = 300).await;
    let addr = shop.suite.gateway_addr;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut trickling = TcpStream::connect(addr).await.unwrap();
    let trickle = async {
        for byte in PREFACE {
            if trickling.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        closed_within(&mut trickling, Duration::from_secs(3)).await
    };
    let (silent_closed, trickling_closed) = tokio::join!(closed_within(&mut silent, Duration::from_secs(3)), trickle);
    assert!(silent_closed, "a silent connection stayed open");
    assert!(trickling_closed, "a trickling connection stayed open");
    // The gateway still serves.
    shop.catalog().list_products(ListProductsRequest::default()).await.unwrap();
}

#[tokio::test]
async fn a_connection_without_calls_is_closed_after_the_idle_timeout() {
    let shop = TestShop::start_with(|config| config.server.idle_timeout_secs = 1).await;
    let addr = shop.suite.gateway_addr;
    let (client, connection) = h2::client::handshake(TcpStream::connect(addr).await.unwrap()).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut ready = client.ready().await.unwrap();
    let (response, mut body) = ready.send_request(list_products_request(addr), false).unwrap();
    body.send_data(grpc_frame(&ListProductsRequest::default()), true).unwrap();
    let mut answer = response.await.unwrap().into_body();
    while let Some(chunk) = answer.data().await {
        let _ = answer.flow_control().release_capacity(chunk.unwrap().len());
    }
    let started = Instant::now();
    let _ = tokio::time::timeout(Duration::from_secs(5), connection).await.expect("the idle connection was closed");
    assert!(started.elapsed() >= Duration::from_millis(500), "closed while a call had just ended");
}

#[tokio::test]
async fn a_connection_that_never_calls_is_closed_after_the_idle_timeout() {
    let shop = TestShop::start_with(|config| config.server.idle_timeout_secs = 1).await;
    let (_client, connection) =
        h2::client::handshake(TcpStream::connect(shop.suite.gateway_addr).await.unwrap()).await.unwrap();
    // The client answers pings (its connection task runs) but opens no stream.
    let _ = tokio::time::timeout(Duration::from_secs(5), connection).await.expect("the idle connection was closed");
}

#[tokio::test]
async fn one_address_holds_only_so_many_connections() {
    // The harness holds one connection already.
    let shop = TestShop::start_with(|config| config.gateway.max_connections_per_addr = 3).await;
    let addr = shop.suite.gateway_addr;
    let mut allowed = Vec::new();
    for _ in 0..2 {
        let (client, connection) = h2::client::handshake(TcpStream::connect(addr).await.unwrap()).await.unwrap();
        tokio::spawn(connection);
        allowed.push(client);
    }
    let mut refused = TcpStream::connect(addr).await.unwrap();
    refused.write_all(PREFACE).await.unwrap();
    assert!(closed_within(&mut refused, Duration::from_secs(2)).await, "a fourth connection was kept");
    // The ones within the limit work.
    let mut ready = allowed.pop().unwrap().ready().await.unwrap();
    let (response, mut body) = ready.send_request(list_products_request(addr), false).unwrap();
    body.send_data(grpc_frame(&ListProductsRequest::default()), true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
}

#[tokio::test]
async fn oversized_tokens_and_metadata_get_a_grpc_status() {
    let shop = TestShop::start().await;
    for size in [20 * 1024, 100 * 1024] {
        let token = "a".repeat(size);
        let status = shop.catalog().list_products(bearer(ListProductsRequest::default(), &token)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{size}: {status:?}");
        assert!(status.message().contains("too large"), "{status:?}");
    }
    let mut request = tonic::Request::new(ListProductsRequest::default());
    request.metadata_mut().insert("x-note", MetadataValue::try_from("n".repeat(40 * 1024)).unwrap());
    let status = shop.catalog().list_products(request).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // The gateway still serves.
    let page: ListProductsResponse =
        shop.catalog().list_products(ListProductsRequest::default()).await.unwrap().into_inner();
    assert_eq!(page.total_count, 0);
}

#[tokio::test]
async fn a_message_over_4_mb_is_resource_exhausted() {
    let shop = TestShop::start().await;
    let request = ListProductsRequest { search: "x".repeat(5 * 1024 * 1024), ..Default::default() };
    let status = shop.catalog().list_products(request).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
}
