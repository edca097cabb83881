//! The Prometheus endpoint: per-RPC counts, errors by code and latency, pool
//! connections and checkout outcomes, as `shop up` serves them with
//! SHOP_METRICS_ADDR set. The recorder is process-wide, so only this test
//! installs it.

use shop_proto::cart::CheckoutRequest;
use shop_proto::catalog::{GetProductRequest, ListProductsRequest};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::{TestShop, bearer};

async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to the metrics endpoint");
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n").await.expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

fn has_line(text: &str, name: &str, parts: &[&str]) -> bool {
    text.lines().any(|line| line.starts_with(name) && parts.iter().all(|part| line.contains(part)))
}

#[tokio::test]
async fn the_metrics_endpoint_counts_rpcs_errors_latency_pools_and_checkouts() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    shop_platform::observability::metrics::serve(&addr.into()).await.expect("serve metrics");
    let shop = TestShop::start().await;
    shop.catalog().list_products(ListProductsRequest::default()).await.expect("list");
    shop.catalog().get_product(GetProductRequest { id: 0 }).await.expect_err("id 0 is refused");
    let alice = shop.customer("alice").await;
    shop.cart().checkout(bearer(CheckoutRequest::default(), &alice)).await.expect_err("empty cart");

    let text = scrape(addr).await;
    let list = "method=\"/shop.catalog.v1.CatalogService/ListProducts\"";
    assert!(has_line(&text, "shop_rpc_requests_total{", &["server=\"gateway\"", list, "code=\"Ok\""]), "{text}");
    assert!(has_line(&text, "shop_rpc_requests_total{", &["server=\"catalog\"", list, "code=\"Ok\""]), "{text}");
    let get = "method=\"/shop.catalog.v1.CatalogService/GetProduct\"";
    assert!(
        has_line(&text, "shop_rpc_errors_total{", &["server=\"catalog\"", get, "code=\"InvalidArgument\""]),
        "{text}"
    );
    assert!(
        has_line(&text, "shop_rpc_duration_seconds_bucket{", &["server=\"gateway\"", list, "le=\"0.005\""]),
        "{text}"
    );
    assert!(has_line(&text, "shop_checkouts_total{", &["outcome=\"refused\""]), "{text}");
    assert!(has_line(&text, "shop_db_pool_connections{", &["schema=\"catalog\"", "state=\"idle\""]), "{text}");
    assert!(text.contains("# HELP shop_rpc_requests_total "), "{text}");
    assert!(has_line(&text, "shop_gateway_stalled_calls_total{", &["backend=\"catalog\"", "} 0"]), "{text}");
    // Budgets show their refusals, counted from zero.
    assert!(has_line(&text, "shop_unfinished_bodies_refused_total{", &["reason=\"budget\"", "} 0"]), "{text}");

    // A server speaking TLS shows when its certificate expires.
    let certs = std::env::temp_dir().join(format!("shop-metrics-certs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&certs);
    shop::certs::make(&certs, &[]).unwrap();
    let (cert, key) = shop::certs::pair_files(&certs, "gateway");
    let _tls = TestShop::start_with(move |config| {
        config.gateway.tls_cert_file = Some(cert);
        config.gateway.tls_key_file = Some(key);
    })
    .await;
    let text = scrape(addr).await;
    let expiry = text
        .lines()
        .find(|line| line.starts_with("shop_tls_certificate_expiry_timestamp_seconds{") && line.contains("gateway"))
        .unwrap_or_else(|| panic!("no expiry gauge: {text}"));
    let expires: f64 = expiry.rsplit(' ').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(expires > now && expires < now + 3.0 * 366.0 * 86_400.0, "{expiry}");
    let _ = std::fs::remove_dir_all(&certs);

    // Only /metrics answers.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /secrets HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut other = String::new();
    stream.read_to_string(&mut other).await.unwrap();
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
}
