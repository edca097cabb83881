//! The edge: TLS at the gateway (rotation, client certificates, clear
//! refusals), mutual TLS between the services, and gRPC-Web with CORS, over
//! raw HTTP/1.1 and from a real browser.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use prost::Message as _;
use shop_proto::catalog::catalog_service_client::CatalogServiceClient;
use shop_proto::catalog::{ListProductsRequest, ListProductsResponse};
use shop_proto::identity::LoginRequest;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::harness::{PASSWORD, TestShop};

/// A directory of throwaway certificates (`shop certs`), removed afterwards.
struct Certs(PathBuf);

impl Certs {
    fn make() -> Self {
        let dir = unique_temp_dir("shop-test-certs");
        assert!(shop::certs::make(&dir, &[]).expect("make certificates"));
        Self(dir)
    }

    fn ca(&self) -> PathBuf {
        self.0.join(shop::certs::CA_FILE)
    }

    fn pair(&self, holder: &str) -> (PathBuf, PathBuf) {
        shop::certs::pair_files(&self.0, holder)
    }

    fn read(path: &Path) -> Vec<u8> {
        std::fs::read(path).expect("read certificate file")
    }

    /// A client trusting this set's CA, presenting `holder`'s certificate if given.
    fn client(&self, holder: Option<&str>) -> ClientTlsConfig {
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(Self::read(&self.ca())));
        if let Some(holder) = holder {
            let (cert, key) = self.pair(holder);
            tls = tls.identity(Identity::from_pem(Self::read(&cert), Self::read(&key)));
        }
        tls.domain_name("localhost")
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unique_temp_dir(prefix: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    std::env::temp_dir().join(format!("{prefix}-{}-{n}-{nanos}", std::process::id()))
}

async fn tls_channel(addr: std::net::SocketAddr, tls: ClientTlsConfig) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("https://{addr}"))
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls config")
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

async fn list_products(channel: Channel) -> Result<ListProductsResponse, tonic::Status> {
    CatalogServiceClient::new(channel)
        .list_products(ListProductsRequest::default())
        .await
        .map(|answer| answer.into_inner())
}

async fn tls_gateway(certs: &Certs, client_ca: bool) -> TestShop {
    let (cert, key) = certs.pair("gateway");
    let ca = certs.ca();
    TestShop::start_with(move |config| {
        config.gateway.tls_cert_file = Some(cert);
        config.gateway.tls_key_file = Some(key);
        config.gateway.tls_client_ca_file = client_ca.then_some(ca);
    })
    .await
}

#[tokio::test]
async fn a_tls_gateway_serves_trusting_clients_and_tells_plaintext_ones_why_not() {
    let certs = Certs::make();
    let shop = tls_gateway(&certs, false).await;
    let addr = shop.suite.gateway_addr;

    let trusted = tls_channel(addr, certs.client(None)).await.expect("a client trusting the CA connects");
    list_products(trusted.clone()).await.expect("a call over TLS");

    // A client that does not trust the certificate is refused in the handshake.
    let strangers = Certs::make();
    let refused = tls_channel(addr, strangers.client(None)).await.expect_err("an untrusted certificate");
    let refused = shop_platform::error::chain_without_repeats(&refused);
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");

    // Plaintext gRPC gets a GOAWAY (INADEQUATE_SECURITY) that says what to do.
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer)).await.unwrap().unwrap();
    assert_eq!(&answer[..9], b"\x00\x00\x00\x04\x00\x00\x00\x00\x00", "an empty SETTINGS frame first");
    assert_eq!(answer[12], 0x07, "then a GOAWAY");
    assert_eq!(&answer[22..26], &[0, 0, 0, 0x0c], "INADEQUATE_SECURITY");
    assert!(String::from_utf8_lossy(&answer).contains("this port speaks TLS"));
    // A plaintext client library sees the call fail, not hang.
    let plaintext = Endpoint::from_shared(format!("http://{addr}")).unwrap().timeout(Duration::from_secs(5));
    let failed = match plaintext.connect().await {
        Ok(channel) => list_products(channel).await.expect_err("plaintext to a TLS port").code(),
        Err(_) => tonic::Code::Unavailable,
    };
    assert_ne!(failed, tonic::Code::Ok);
    // Plaintext HTTP/1.1 gets a readable refusal.
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(b"GET / HTTP/1.1\r\nhost: shop\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("use https://"), "{answer}");

    // The command-line clients speak TLS too.
    let tls = shop::ClientTlsArgs { ca: Some(certs.ca()), server_name: Some("gateway".into()), ..Default::default() };
    let health = shop::healthcheck(&addr.to_string(), "", Duration::from_secs(5), &tls).await.expect("healthcheck");
    assert_eq!(health, "SERVING");
    let bench = shop::bench::BenchArgs {
        scenario: shop::bench::Scenario::ListProducts,
        concurrency: 2,
        duration: Duration::from_millis(500),
        target: addr.to_string(),
        connections: 1,
        json: false,
        admin: "root".into(),
        lines: 1..=1,
        units: 1..=1,
        skip_books: true,
        retries: 0,
        protocol: shop::bench::Protocol::Grpc,
        judged: Default::default(),
        database: shop.config.database.clone(),
        tls,
    };
    let report = shop::bench::measure(&bench).await.expect("shop bench over TLS");
    assert!(report.requests > 0 && report.errors.is_empty(), "{:?}", report.errors);

    // None of that disturbed the clients that do it right.
    list_products(trusted).await.expect("still serving");
    let fresh = tls_channel(addr, certs.client(None)).await.expect("new connections still welcome");
    list_products(fresh).await.expect("a call on a new connection");
}

#[tokio::test]
async fn a_renewed_certificate_reaches_new_connections_while_open_ones_carry_on() {
    let first = Certs::make();
    let live = Certs::make();
    let (cert, key) = live.pair("gateway");
    std::fs::copy(first.pair("gateway").0, &cert).unwrap();
    std::fs::copy(first.pair("gateway").1, &key).unwrap();
    let shop = TestShop::start_with({
        let (cert, key) = (cert.clone(), key.clone());
        move |config| {
            config.gateway.tls_cert_file = Some(cert);
            config.gateway.tls_key_file = Some(key);
        }
    })
    .await;
    let addr = shop.suite.gateway_addr;
    let open = tls_channel(addr, first.client(None)).await.expect("connects with the first certificate");
    list_products(open.clone()).await.unwrap();

    // A client keeps calling on its open connection while the files change.
    let keeps_calling = tokio::spawn({
        let open = open.clone();
        async move {
            let mut calls = 0;
            let until = tokio::time::Instant::now() + Duration::from_secs(4);
            while tokio::time::Instant::now() < until {
                list_products(open.clone()).await.expect("an open connection carries on");
                calls += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            calls
        }
    });
    // The renewed pair: `live`'s own (signed by another CA), written in place.
    let renewed = Certs::make();
    std::fs::write(&key, std::fs::read(renewed.pair("gateway").1).unwrap()).unwrap();
    std::fs::write(&cert, std::fs::read(renewed.pair("gateway").0).unwrap()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(channel) = tls_channel(addr, renewed.client(None)).await {
            list_products(channel).await.expect("a call with the renewed certificate");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "new connections got the renewed certificate within 10 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(tls_channel(addr, first.client(None)).await.is_err(), "new connections no longer get the old one");
    assert!(keeps_calling.await.unwrap() > 10);

    // A broken pair (a key that is not the certificate's) is refused; the
    // last good one stays in service.
    std::fs::write(&key, std::fs::read(first.pair("gateway").1).unwrap()).unwrap();
    tokio::time::sleep(shop_platform::transport::tls::RELOAD_EVERY * 2).await;
    let channel = tls_channel(addr, renewed.client(None)).await.expect("the last good pair still serves");
    list_products(channel).await.unwrap();
}

#[tokio::test]
async fn a_gateway_with_a_client_ca_wants_a_certificate_from_it_and_still_checks_tokens() {
    let certs = Certs::make();
    let shop = tls_gateway(&certs, true).await;
    let addr = shop.suite.gateway_addr;

    let without = match tls_channel(addr, certs.client(None)).await {
        Err(error) => shop_platform::error::chain_without_repeats(&error),
        Ok(channel) => list_products(channel).await.expect_err("no client certificate").to_string(),
    };
    assert!(without.to_lowercase().contains("certificate"), "{without}");
    let strangers = Certs::make();
    let foreign = match tls_channel(addr, {
        let (cert, key) = strangers.pair("client");
        certs.client(None).identity(Identity::from_pem(Certs::read(&cert), Certs::read(&key)))
    })
    .await
    {
        Err(error) => shop_platform::error::chain_without_repeats(&error),
        Ok(channel) => list_products(channel).await.expect_err("a certificate from another CA").to_string(),
    };
    assert!(!foreign.is_empty());

    let channel = tls_channel(addr, certs.client(Some("client"))).await.expect("a client certificate from the CA");
    list_products(channel.clone()).await.expect("a public call");
    let cart = shop_proto::cart::cart_service_client::CartServiceClient::new(channel)
        .get_cart(shop_proto::cart::GetCartRequest::default())
        .await
        .expect_err("a certificate is not a login");
    assert_eq!(cart.code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn services_speak_mutual_tls_and_refuse_strangers() {
    let certs = Certs::make();
    let (cert, key) = certs.pair("catalog");
    let ca = certs.ca();
    let shop = TestShop::start_with(move |config| {
        config.credentials.internal_tls.internal_tls_ca_file = Some(ca);
        config.credentials.internal_tls.internal_tls_cert_file = Some(cert);
        config.credentials.internal_tls.internal_tls_key_file = Some(key);
    })
    .await;

    // The whole way, gateway → identity / catalog / cart-order → catalog, over mTLS.
    let admin = shop.admin("edge_admin").await;
    let category = shop.create_category(&admin, "Lamps").await;
    let product = shop
        .create_product(
            &admin,
            shop_proto::catalog::CreateProductRequest {
                title: "Desk lamp".into(),
                price: "19.90".into(),
                stock: 5,
                category_id: category.id,
                ..Default::default()
            },
        )
        .await;
    let customer = shop.customer("edge_customer").await;
    let added = shop
        .cart()
        .add_cart_item(crate::harness::bearer(
            shop_proto::cart::AddCartItemRequest { product_id: product.id, quantity: 1 },
            &customer,
        ))
        .await
        .expect("cart-order reaches catalog over mTLS");
    assert_eq!(added.into_inner().items.len(), 1);

    let catalog = shop.suite.catalog_addr;
    // No certificate, or one from another CA: refused in the handshake.
    let refused = |channel: Result<Channel, tonic::transport::Error>| async move {
        match channel {
            Err(_) => true,
            Ok(channel) => list_products(channel).await.is_err(),
        }
    };
    assert!(refused(tls_channel(catalog, certs.client(None)).await).await, "no client certificate");
    let strangers = Certs::make();
    let foreign = certs.client(None).identity({
        let (cert, key) = strangers.pair("gateway");
        Identity::from_pem(Certs::read(&cert), Certs::read(&key))
    });
    assert!(refused(tls_channel(catalog, foreign).await).await, "a certificate from another CA");
    let plaintext = Endpoint::from_shared(format!("http://{catalog}")).unwrap().timeout(Duration::from_secs(5));
    assert!(refused(plaintext.connect().await).await, "plaintext");
    // A certificate from the internal CA made for an end user (it names no
    // service) is not a service's: refused in the handshake too.
    assert!(refused(tls_channel(catalog, certs.client(Some(shop::certs::END_USER))).await).await, "an end user's");
    // With the internal CA's certificate (and the credential), a backend answers.
    let channel = tls_channel(catalog, certs.client(Some("reporting"))).await.expect("an internal certificate");
    let mut request = tonic::Request::new(ListProductsRequest::default());
    request.metadata_mut().insert("x-shop-service-token", crate::harness::SERVICE_TOKEN.parse().unwrap());
    CatalogServiceClient::new(channel).list_products(request).await.expect("an internal caller");
}

#[tokio::test]
async fn plaintext_http1_on_the_tls_port_gets_a_readable_400_whatever_its_method() {
    let certs = Certs::make();
    let shop = tls_gateway(&certs, false).await;
    let addr = shop.suite.gateway_addr;
    for request in [
        &b"POST /shop.catalog.v1.CatalogService/ListProducts HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n"[..],
        b"PUT / HTTP/1.1\r\nhost: x\r\n\r\n",
        b"PATCH / HTTP/1.1\r\nhost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nhost: x\r\n\r\n",
    ] {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        // The first byte alone, then the rest: a "P" could still be HTTP/2's "PRI".
        socket.write_all(&request[..1]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        socket.write_all(&request[1..]).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer)).await.unwrap().unwrap();
        let answer = String::from_utf8_lossy(&answer);
        let method = String::from_utf8_lossy(&request[..4]);
        assert!(answer.starts_with("HTTP/1.1 400"), "{method}: {answer}");
        assert!(answer.contains("this port speaks TLS"), "{method}: {answer}");
    }
}

#[tokio::test]
async fn transfer_encoding_other_than_one_chunked_is_refused() {
    let shop = TestShop::start().await;
    let addr = shop.suite.gateway_addr;
    for encoding in ["chunked, chunked", "gzip, chunked", "identity"] {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "POST /shop.catalog.v1.CatalogService/ListProducts HTTP/1.1\r\nhost: {addr}\r\n\
             content-type: application/grpc-web+proto\r\ntransfer-encoding: {encoding}\r\n\r\n5\r\n\0\0\0\0\0\r\n0\r\n\r\n"
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{encoding}: {answer}");
    }
    // One `chunked` is how gRPC-Web clients stream, and is served.
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /shop.catalog.v1.CatalogService/ListProducts HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
         content-type: application/grpc-web+proto\r\ntransfer-encoding: chunked\r\n\r\n5\r\n\0\0\0\0\0\r\n0\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("grpc-status:0") || answer.contains("grpc-status: 0"), "{answer}");
}

/// A throwaway CA that can sign more (unlike `shop certs`), for
/// certificates with the validity and names a test wants.
struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl TestCa {
    fn new() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        Self { issuer: rcgen::Issuer::new(params, key), pem }
    }

    /// A pair for `names`, valid from `days_from` to `days_to` days from now.
    fn pair(&self, names: &[&str], days_from: i64, days_to: i64) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|name| name.to_string()).collect::<Vec<_>>()).unwrap();
        let day = |offset: i64| {
            let at = chrono::Utc::now() + chrono::Duration::days(offset);
            use chrono::Datelike as _;
            rcgen::date_time_ymd(at.year(), at.month() as u8, at.day() as u8)
        };
        params.not_before = day(days_from);
        params.not_after = day(days_to);
        (params.signed_by(&key, &self.issuer).unwrap().pem(), key.serialize_pem())
    }

    fn client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.pem)).domain_name("localhost")
    }
}

#[tokio::test]
async fn a_renewal_that_is_expired_not_yet_valid_or_drops_a_name_is_refused() {
    let dir = unique_temp_dir("shop-test-rotation");
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("gateway.pem"), dir.join("gateway.key"));
    let served_ca = TestCa::new();
    let (pem, private) = served_ca.pair(&["localhost", "127.0.0.1"], -1, 30);
    std::fs::write(&cert, pem).unwrap();
    std::fs::write(&key, private).unwrap();
    let shop = TestShop::start_with({
        let (cert, key) = (cert.clone(), key.clone());
        move |config| {
            config.gateway.tls_cert_file = Some(cert);
            config.gateway.tls_key_file = Some(key);
        }
    })
    .await;
    let addr = shop.suite.gateway_addr;
    list_products(tls_channel(addr, served_ca.client()).await.unwrap()).await.unwrap();

    // Each bad renewal comes from another CA: a client trusting only the
    // first one still connects exactly when the served pair was kept.
    let other_ca = TestCa::new();
    for (what, names, from, to) in [
        ("expired", &["localhost", "127.0.0.1"][..], -30, -2),
        ("not valid yet", &["localhost", "127.0.0.1"], 2, 30),
        ("drops a name", &["localhost"], -1, 30),
    ] {
        let (pem, private) = other_ca.pair(names, from, to);
        std::fs::write(&key, private).unwrap();
        std::fs::write(&cert, pem).unwrap();
        tokio::time::sleep(shop_platform::transport::tls::RELOAD_EVERY * 2 + Duration::from_millis(500)).await;
        let kept = tls_channel(addr, served_ca.client()).await;
        assert!(kept.is_ok(), "{what}: the served certificate was replaced");
        list_products(kept.unwrap()).await.unwrap();
    }
    // A good renewal (valid now, every name kept) is taken.
    let (pem, private) = other_ca.pair(&["localhost", "127.0.0.1", "shop.example"], -1, 30);
    std::fs::write(&key, private).unwrap();
    std::fs::write(&cert, pem).unwrap();
    crate::harness::eventually("the good renewal is served", Duration::from_secs(10), async || {
        tls_channel(addr, other_ca.client()).await.map(|_| ())
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn half_finished_tls_handshakes_give_way_to_newcomers_when_the_table_is_full() {
    let certs = Certs::make();
    let (cert, key) = certs.pair("gateway");
    let shop = TestShop::start_with(move |config| {
        config.gateway.tls_cert_file = Some(cert);
        config.gateway.tls_key_file = Some(key);
        config.server.max_connections = 10;
        config.gateway.max_connections_per_addr = 0;
    })
    .await;
    let addr = shop.suite.gateway_addr;
    // The start of a ClientHello, and never the rest: ten of them fill the table.
    let mut half_hellos = Vec::new();
    for _ in 0..10 {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        socket.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01]).await.unwrap();
        half_hellos.push(socket);
    }
    // Of no use for long enough to give way (a moment is not enough).
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut newcomers = Vec::new();
    for n in 0..5 {
        let started = std::time::Instant::now();
        let channel =
            tls_channel(addr, certs.client(None)).await.unwrap_or_else(|error| panic!("newcomer {n}: {error}"));
        list_products(channel.clone()).await.unwrap_or_else(|status| panic!("newcomer {n}: {status:?}"));
        assert!(started.elapsed() < Duration::from_secs(2), "newcomer {n} took {:?}", started.elapsed());
        newcomers.push(channel);
    }
}

// ---- gRPC-Web over raw HTTP/1.1 ----

/// One gRPC-Web message frame around `message`.
fn web_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

/// What a gRPC-Web answer held: its status line, headers, messages and trailers.
#[derive(Debug)]
struct WebAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    messages: Vec<Vec<u8>>,
    trailers: Vec<(String, String)>,
}

impl WebAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// grpc-status, from the trailers frame or (a trailers-only answer) the headers.
    fn grpc_status(&self) -> Option<&str> {
        self.trailers
            .iter()
            .find(|(key, _)| key == "grpc-status")
            .map(|(_, value)| value.as_str())
            .or(self.header("grpc-status"))
    }
}

/// Sends one HTTP/1.1 request and reads the whole answer (the connection closes after it).
pub async fn http1(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    // A server may answer (a message too large) before taking the whole body.
    let _ = socket.write_all(body).await;
    let mut raw = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(read @ 1..) = socket.read(&mut buffer).await {
            raw.extend_from_slice(&buffer[..read]);
        }
    })
    .await
    .expect("an answer");
    let split = raw.windows(4).position(|window| window == b"\r\n\r\n").expect("a header block");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(name, value)| name == "transfer-encoding" && value.contains("chunked")) {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|window| window == b"\r\n").expect("a chunk size line");
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&raw[..line_end]).split(';').next().unwrap().trim(), 16)
                .unwrap();
        raw = &raw[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// A gRPC-Web text body: each frame is base64 of its own, padding and all,
/// so the body is decoded piece by piece, a piece ending after its padding.
fn decode_web_text(text: &[u8]) -> Vec<u8> {
    let text: Vec<u8> = text.iter().copied().filter(|byte| !byte.is_ascii_whitespace()).collect();
    let mut decoded = Vec::new();
    let mut start = 0;
    for end in 1..=text.len() {
        let piece_ends = end == text.len() || (text[end - 1] == b'=' && text[end] != b'=');
        if piece_ends {
            decoded.extend(base64::engine::general_purpose::STANDARD.decode(&text[start..end]).expect("base64 text"));
            start = end;
        }
    }
    decoded
}

/// A gRPC-Web call over HTTP/1.1, binary or text.
async fn grpc_web(
    addr: std::net::SocketAddr,
    method: &str,
    message: &[u8],
    text: bool,
    extra: &[(&str, &str)],
) -> WebAnswer {
    let frame = web_frame(message);
    let (content_type, body) = if text {
        ("application/grpc-web-text", base64::engine::general_purpose::STANDARD.encode(&frame).into_bytes())
    } else {
        ("application/grpc-web+proto", frame)
    };
    let mut headers = vec![("content-type", content_type), ("x-grpc-web", "1"), ("accept", content_type)];
    headers.extend_from_slice(extra);
    let (status, headers, mut body) = http1(addr, "POST", method, &headers, &body).await;
    if text {
        body = decode_web_text(&body);
    }
    let (mut messages, mut trailers) = (Vec::new(), Vec::new());
    let mut rest = body.as_slice();
    while rest.len() >= 5 {
        let length = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        let payload = rest[5..5 + length].to_vec();
        if rest[0] & 0x80 != 0 {
            trailers = String::from_utf8_lossy(&payload)
                .split("\r\n")
                .filter_map(|line| line.split_once(':'))
                .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_owned()))
                .collect();
        } else {
            messages.push(payload);
        }
        rest = &rest[5 + length..];
    }
    WebAnswer { status, headers, messages, trailers }
}

const LIST_PRODUCTS: &str = "/shop.catalog.v1.CatalogService/ListProducts";
const LOGIN: &str = "/shop.identity.v1.IdentityService/Login";
const GET_CART: &str = "/shop.cart.v1.CartService/GetCart";

#[tokio::test]
async fn grpc_web_calls_in_binary_and_text_keep_their_answers_and_codes() {
    let shop = TestShop::start().await;
    let admin = shop.admin("web_admin").await;
    let category = shop.create_category(&admin, "Web").await;
    shop.create_product(
        &admin,
        shop_proto::catalog::CreateProductRequest {
            title: "Browser mug".into(),
            price: "7.50".into(),
            stock: 3,
            category_id: category.id,
            ..Default::default()
        },
    )
    .await;
    let addr = shop.suite.gateway_addr;
    let request = ListProductsRequest::default().encode_to_vec();
    for text in [false, true] {
        let answer = grpc_web(addr, LIST_PRODUCTS, &request, text, &[]).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let expected_type = if text { "application/grpc-web-text" } else { "application/grpc-web" };
        assert!(answer.header("content-type").is_some_and(|kind| kind.starts_with(expected_type)), "{answer:?}");
        assert_eq!(answer.grpc_status(), Some("0"), "{answer:?}");
        let listed = ListProductsResponse::decode(answer.messages[0].as_slice()).unwrap();
        assert_eq!(listed.products.iter().map(|product| product.title.as_str()).collect::<Vec<_>>(), ["Browser mug"]);
        assert!(answer.header("x-request-id").is_some());
    }

    // Errors keep their codes, messages and details.
    let wrong = LoginRequest { username: "web_admin".into(), password: "not-the-password".into() }.encode_to_vec();
    let refused = grpc_web(addr, LOGIN, &wrong, false, &[]).await;
    assert_eq!(refused.grpc_status(), Some("16"), "{refused:?}");
    let empty = LoginRequest::default().encode_to_vec();
    let invalid = grpc_web(addr, LOGIN, &empty, true, &[]).await;
    assert_eq!(invalid.grpc_status(), Some("3"), "{invalid:?}");
    let details = invalid
        .trailers
        .iter()
        .chain(&invalid.headers)
        .find(|(name, _)| name == "grpc-status-details-bin")
        .map(|(_, value)| value.clone())
        .expect("error details travel too");
    let details = base64::engine::general_purpose::STANDARD_NO_PAD.decode(details.trim_end_matches('=')).unwrap();
    assert!(String::from_utf8_lossy(&details).contains("username"), "the field is named");
    let right = LoginRequest { username: "web_admin".into(), password: PASSWORD.into() }.encode_to_vec();
    assert_eq!(grpc_web(addr, LOGIN, &right, false, &[]).await.grpc_status(), Some("0"));
    let cart = grpc_web(addr, GET_CART, &[], false, &[]).await;
    assert_eq!(cart.grpc_status(), Some("16"), "no token: UNAUTHENTICATED, as for native gRPC");
    let internal = grpc_web(addr, "/shop.catalog.v1.InventoryService/ReserveStock", &[], false, &[]).await;
    assert_eq!(internal.grpc_status(), Some("12"), "the policy table holds for gRPC-Web too");

    // Plain HTTP/1.1 that is no call of any face is refused: a GET that is
    // not Connect's (no encoding) gets 415, as connect-go answers it.
    let (status, _, _) = http1(addr, "GET", LIST_PRODUCTS, &[], &[]).await;
    assert_eq!(status, 415);
}

#[tokio::test]
async fn grpc_web_works_over_http2_too() {
    let shop = TestShop::start().await;
    let addr = shop.suite.gateway_addr;
    let mut client = crate::harness::raw_h2(addr).await;
    // The bare content type, without +proto.
    let request = http::Request::post(format!("http://{addr}{LIST_PRODUCTS}"))
        .header("content-type", "application/grpc-web")
        .header("x-grpc-web", "1")
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(request, false).unwrap();
    body.send_data(bytes::Bytes::from(web_frame(&ListProductsRequest::default().encode_to_vec())), true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/grpc-web"));
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    // gRPC-Web has no HTTP trailers: the status is the last frame of the body.
    let mut rest = bytes.as_slice();
    let mut frames = Vec::new();
    while rest.len() >= 5 {
        let length = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        frames.push((rest[0], rest[5..5 + length].to_vec()));
        rest = &rest[5 + length..];
    }
    let (flag, trailers) = frames.last().expect("frames");
    assert_eq!((*flag, frames.len()), (0x80, 2), "one message, then the trailers");
    assert!(String::from_utf8_lossy(trailers).contains("grpc-status:0"), "{trailers:?}");
}

#[tokio::test]
async fn grpc_web_calls_meet_the_gateways_limits() {
    let shop = TestShop::start_with(|config| config.gateway.max_calls_per_addr = 1).await;
    let addr = shop.suite.gateway_addr;
    // A call held open (its message never finishes) with a 600 ms deadline.
    let mut held = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {LOGIN} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/grpc-web+proto\r\n\
         grpc-timeout: 600m\r\nconnection: close\r\ncontent-length: 100\r\n\r\n"
    );
    held.write_all(head.as_bytes()).await.unwrap();
    held.write_all(&[0, 0, 0, 0, 95]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The address's one call is in flight: the next is refused.
    let refused = grpc_web(addr, LIST_PRODUCTS, &ListProductsRequest::default().encode_to_vec(), false, &[]).await;
    assert_eq!(refused.grpc_status(), Some("8"), "RESOURCE_EXHAUSTED: {refused:?}");
    // The held call ends at its deadline, as a gRPC-Web answer.
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), held.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("grpc-status: 4"), "DEADLINE_EXCEEDED: {answer}");
    drop(held);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let listed = grpc_web(addr, LIST_PRODUCTS, &ListProductsRequest::default().encode_to_vec(), false, &[]).await;
        if listed.grpc_status() == Some("0") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the address's call came back: {listed:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A message over the size limit is refused with a status, not a crash.
    let huge = LoginRequest { username: "x".repeat(5 * 1024 * 1024), password: String::new() }.encode_to_vec();
    let too_big = grpc_web(addr, LOGIN, &huge, false, &[]).await;
    assert_eq!(too_big.grpc_status(), Some("8"), "RESOURCE_EXHAUSTED: {:?}", too_big.trailers);
}

async fn preflight(addr: std::net::SocketAddr, origin: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let headers = [
        ("origin", origin),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "authorization,content-type,x-grpc-web,x-user-agent"),
    ];
    http1(addr, "OPTIONS", LIST_PRODUCTS, &headers, &[]).await
}

#[tokio::test]
async fn cors_answers_allowed_origins_without_touching_a_backend_and_nobody_else() {
    let mut shop = TestShop::start_with(|config| config.gateway.cors_origins = "https://shop.example".into()).await;
    let addr = shop.suite.gateway_addr;
    // Preflights are the gateway's own answer: they work with catalog down.
    let _outage = shop.stop_service("catalog").await;
    let (status, headers, _) = preflight(addr, "https://shop.example").await;
    let header = |name: &str| headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.to_lowercase());
    assert!((200..300).contains(&status), "{status} {headers:?}");
    assert_eq!(header("access-control-allow-origin").as_deref(), Some("https://shop.example"));
    let allowed = header("access-control-allow-headers").unwrap();
    for name in ["authorization", "x-grpc-web", "x-user-agent", "content-type"] {
        assert!(allowed.contains(name), "{name} in {allowed}");
    }

    let (_, headers, _) = preflight(addr, "https://evil.example").await;
    assert!(headers.iter().all(|(key, _)| key != "access-control-allow-origin"), "{headers:?}");

    // A real call from the allowed origin exposes the gRPC headers.
    let answer = grpc_web(addr, GET_CART, &[], false, &[("origin", "https://shop.example")]).await;
    assert_eq!(answer.header("access-control-allow-origin"), Some("https://shop.example"));
    let exposed = answer.header("access-control-expose-headers").unwrap().to_lowercase();
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin", "x-request-id"] {
        assert!(exposed.contains(name), "{name} in {exposed}");
    }
}

// ---- a real browser ----

/// The page: three gRPC-Web calls from another origin, results posted back.
const PAGE: &str = r#"<!doctype html><meta charset="utf-8"><script>
const gateway = "GATEWAY";
function frame(bytes) {
  const out = new Uint8Array(5 + bytes.length);
  new DataView(out.buffer).setUint32(1, bytes.length);
  out.set(bytes, 5);
  return out;
}
function field(number, text) {
  const bytes = new TextEncoder().encode(text);
  return [(number << 3) | 2, bytes.length, ...bytes];
}
async function call(method, message, token) {
  const headers = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1", "x-user-agent": "shop-test"};
  if (token) headers["authorization"] = "Bearer " + token;
  try {
    const answer = await fetch(gateway + method, {method: "POST", headers, body: frame(new Uint8Array(message))});
    const body = new Uint8Array(await answer.arrayBuffer());
    let status = answer.headers.get("grpc-status"), messages = 0, length = 0;
    for (let at = 0; at + 5 <= body.length; at += 5 + length) {
      length = new DataView(body.buffer, at + 1, 4).getUint32(0);
      const payload = new TextDecoder().decode(body.slice(at + 5, at + 5 + length));
      if (body[at] & 0x80) { const found = /grpc-status:\s*(\d+)/.exec(payload); if (found) status = found[1]; }
      else messages += 1;
    }
    return {http: answer.status, status, messages, requestId: answer.headers.get("x-request-id")};
  } catch (error) {
    return {error: String(error)};
  }
}
(async () => {
  const results = {
    list: await call("/shop.catalog.v1.CatalogService/ListProducts", []),
    login: await call("/shop.identity.v1.IdentityService/Login", [...field(1, "USERNAME"), ...field(2, "PASSWORD")]),
    cart: await call("/shop.cart.v1.CartService/GetCart", []),
  };
  await fetch("/result", {method: "POST", body: JSON.stringify(results)});
})();
</script>"#;

/// Serves the page at `/` and hands over what the page posts to `/result`.
fn serve_page(listener: tokio::net::TcpListener, page: String) -> tokio::sync::oneshot::Receiver<String> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut sender = Some(sender);
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut raw = Vec::new();
            let mut buffer = [0u8; 8192];
            let (head, body) = loop {
                let read = socket.read(&mut buffer).await.unwrap_or(0);
                if read == 0 {
                    break (String::new(), Vec::new());
                }
                raw.extend_from_slice(&buffer[..read]);
                if let Some(split) = raw.windows(4).position(|window| window == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length:"))
                        .map_or(0, |value| value.trim().parse().unwrap_or(0));
                    while raw.len() < split + 4 + length {
                        let read = socket.read(&mut buffer).await.unwrap_or(0);
                        if read == 0 {
                            break;
                        }
                        raw.extend_from_slice(&buffer[..read]);
                    }
                    break (head, raw[split + 4..].to_vec());
                }
            };
            let answer = if head.starts_with("post /result") {
                if let Some(sender) = sender.take() {
                    let _ = sender.send(String::from_utf8_lossy(&body).to_string());
                }
                "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n".to_owned()
            } else if head.starts_with("get / ") {
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                    page.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
            };
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    receiver
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| Path::new(dir).join(name)).find(|path| path.is_file())
    })
}

#[tokio::test]
async fn a_browser_page_on_another_origin_calls_the_gateway_with_grpc_web() {
    let Some(chromium) = chromium() else {
        // .ci/run installs it; a developer machine may not have it.
        eprintln!("skipped: no chromium on PATH (apt-get install chromium)");
        assert!(std::env::var_os("CI").is_none(), "CI must have chromium");
        return;
    };
    // The page's own origin (another port than the gateway's), which the gateway allows.
    let page_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_url = format!("http://{}/", page_listener.local_addr().unwrap());
    let origin = page_url.trim_end_matches('/').to_owned();
    let shop = TestShop::start_with(move |config| config.gateway.cors_origins = origin).await;
    shop.register("browser_user").await;
    let page = PAGE
        .replace("GATEWAY", &format!("http://{}", shop.suite.gateway_addr))
        .replace("USERNAME", "browser_user")
        .replace("PASSWORD", PASSWORD);
    let result = serve_page(page_listener, page);
    let profile = unique_temp_dir("shop-chromium");
    let mut browser = std::process::Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(&page_url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start chromium");
    let posted = tokio::time::timeout(Duration::from_secs(60), result).await;
    let _ = browser.kill();
    let _ = browser.wait();
    let _ = std::fs::remove_dir_all(&profile);
    let posted = posted.expect("the page reported within 60 s").expect("a report");
    let results: serde_json::Value = serde_json::from_str(&posted).expect("JSON from the page");
    assert_eq!(results["list"]["status"], "0", "{results}");
    assert_eq!(results["list"]["messages"], 1, "{results}");
    assert!(results["list"]["requestId"].is_string(), "x-request-id is exposed: {results}");
    assert_eq!(results["login"]["status"], "0", "{results}");
    assert_eq!(results["cart"]["status"], "16", "UNAUTHENTICATED reaches the page: {results}");
}
