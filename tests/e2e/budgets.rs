//! Budgets an anonymous client cannot exhaust: the memory that unfinished
//! request messages hold (per connection, per address, in all), and the
//! connection table, which makes room for newcomers by closing connections
//! that only sit there.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use shop_proto::catalog::{GetProductRequest, ListProductsRequest};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpSocket, TcpStream};
use tonic::Code;

use crate::harness::TestShop;

/// A TCP connection to `addr` from the loopback address `from` (127.0.0.x):
/// how one machine plays several clients.
async fn tcp_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

async fn h2_from(from: &str, addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let (client, connection) = h2::client::handshake(tcp_from(from, addr).await).await.unwrap();
    tokio::spawn(connection);
    client.ready().await.unwrap()
}

/// A GetProduct message of about `size` bytes: the id, then an unknown
/// field the server skips. Its 5-byte gRPC frame header comes first.
fn padded_get_product(size: usize) -> Vec<u8> {
    let mut message = prost::Message::encode_to_vec(&GetProductRequest { id: 1 });
    // Field 99, length-delimited: tag, then the length as a varint.
    message.extend_from_slice(&[0x9a, 0x06]);
    let mut length = size;
    while length >= 0x80 {
        message.push((length as u8) | 0x80);
        length >>= 7;
    }
    message.push(length as u8);
    message.resize(message.len() + size, b'x');
    let mut framed = vec![0];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    framed
}

/// A GetProduct call whose message is being sent: `sent` bytes of it so
/// far, the rest held back.
struct Unfinished {
    response: h2::client::ResponseFuture,
    body: h2::SendStream<Bytes>,
    rest: Bytes,
}

impl Unfinished {
    async fn start(client: &mut h2::client::SendRequest<Bytes>, addr: SocketAddr, size: usize, sent: usize) -> Self {
        let request = http::Request::post(format!("http://{addr}/shop.catalog.v1.CatalogService/GetProduct"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (response, mut body) = client.send_request(request, false).unwrap();
        let mut message = Bytes::from(padded_get_product(size));
        let first = message.split_to(sent);
        body.send_data(first, false).unwrap();
        Self { response, body, rest: message }
    }

    /// One more byte, so the message is not idle.
    fn trickle(&mut self) {
        if self.rest.len() > 1 {
            let byte = self.rest.split_to(1);
            self.body.send_data(byte, false).unwrap();
        }
    }

    fn finish(mut self) -> h2::client::ResponseFuture {
        self.body.send_data(self.rest, true).unwrap();
        self.response
    }

    /// The status the gateway ends the call with, within `within`.
    async fn status(self, within: Duration) -> Code {
        status_of(self.response, within).await
    }
}

async fn status_of(response: h2::client::ResponseFuture, within: Duration) -> Code {
    let response = tokio::time::timeout(within, response).await.expect("an answer in time").expect("an answer");
    let code = match response.headers().get("grpc-status") {
        Some(code) => code.to_str().unwrap().parse::<i32>().unwrap(),
        None => {
            let mut body = response.into_body();
            while let Some(chunk) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.map(|chunk| chunk.len()).unwrap_or(0));
            }
            let trailers = body.trailers().await.unwrap().expect("trailers");
            trailers.get("grpc-status").unwrap().to_str().unwrap().parse().unwrap()
        }
    };
    Code::from(code)
}

const KIB: usize = 1024;

#[tokio::test]
async fn unfinished_messages_take_a_bounded_share_and_whole_ones_always_pass() {
    let shop = TestShop::start_with(|config| {
        config.gateway.unfinished_bodies_mib = 3;
        config.gateway.unfinished_bodies_per_addr_mib = 2;
        config.gateway.unfinished_bodies_per_connection_mib = 1;
        config.gateway.body_idle_timeout_ms = 1_500;
    })
    .await;
    let addr = shop.suite.gateway_addr;
    let size = 3_000 * KIB;

    // One connection holds 900 KiB of a message it keeps sending, slowly.
    let mut first = h2_from("127.0.0.1", addr).await;
    let mut held = Unfinished::start(&mut first, addr, size, 900 * KIB).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Another 300 KiB on the same connection is past its 1 MiB: it waits
    // for room, and gets none.
    let started = Instant::now();
    let over_the_connection = Unfinished::start(&mut first, addr, size, 300 * KIB).await;
    let trickling = tokio::spawn(async move {
        for _ in 0..8 {
            held.trickle();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        held
    });
    assert_eq!(over_the_connection.status(Duration::from_secs(5)).await, Code::ResourceExhausted);
    assert!(started.elapsed() >= Duration::from_millis(1_000), "it waited for room first");

    // Whole messages from the same address pass meanwhile, at once.
    let quick = Instant::now();
    shop.catalog().list_products(ListProductsRequest::default()).await.expect("a whole message passes");
    assert!(quick.elapsed() < Duration::from_millis(500), "{:?}", quick.elapsed());

    // A second address fills its own 2 MiB, and no more.
    let mut second_a = h2_from("127.0.0.2", addr).await;
    let mut second_b = h2_from("127.0.0.2", addr).await;
    let mut second_c = h2_from("127.0.0.2", addr).await;
    let a = Unfinished::start(&mut second_a, addr, size, 950 * KIB).await;
    let b = Unfinished::start(&mut second_b, addr, size, 950 * KIB).await;
    let keep_coming = tokio::spawn(async move {
        let mut both = [a, b];
        for _ in 0..8 {
            both.iter_mut().for_each(Unfinished::trickle);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        both
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let over_the_address = Unfinished::start(&mut second_c, addr, size, 300 * KIB).await;
    assert_eq!(over_the_address.status(Duration::from_secs(5)).await, Code::ResourceExhausted);
    drop(keep_coming.await.unwrap());

    // The message that kept coming and then stops is given up once idle,
    // and what it held is free again: a third address sends a big message
    // whole and is answered.
    let held = trickling.await.unwrap();
    let stopped = Instant::now();
    assert_eq!(held.status(Duration::from_secs(5)).await, Code::DeadlineExceeded);
    assert!(stopped.elapsed() < Duration::from_secs(4));
    let mut third = h2_from("127.0.0.3", addr).await;
    let whole = Unfinished::start(&mut third, addr, 500 * KIB, 200 * KIB).await;
    assert_eq!(status_of(whole.finish(), Duration::from_secs(5)).await, Code::NotFound, "answered: no product 1");
}

#[tokio::test]
async fn a_full_connection_table_closes_idle_connections_to_let_newcomers_in() {
    let shop = TestShop::start_with(|config| {
        config.server.max_connections = 12;
        config.gateway.max_connections_per_addr = 0;
    })
    .await;
    let addr = shop.suite.gateway_addr;
    // Connections that finished the preface, answer PINGs, and never call;
    // and sockets that never even send the preface. Together they fill
    // the table (the harness's own connection is the twelfth).
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut idle = Vec::new();
    for _ in 0..6 {
        let (client, connection) = h2::client::handshake(TcpStream::connect(addr).await.unwrap()).await.unwrap();
        idle.push((client, tokio::spawn(connection)));
    }
    // Of no use for long enough to give way (a moment is not enough).
    tokio::time::sleep(Duration::from_millis(400)).await;

    // Every newcomer is served, at once (and stays connected).
    let mut newcomers = Vec::new();
    for n in 0..8 {
        let started = Instant::now();
        let channel = crate::harness::connect(addr).await;
        shop_proto::catalog::catalog_service_client::CatalogServiceClient::new(channel.clone())
            .list_products(ListProductsRequest::default())
            .await
            .unwrap_or_else(|status| panic!("newcomer {n}: {status:?}"));
        assert!(started.elapsed() < Duration::from_secs(2), "newcomer {n} took {:?}", started.elapsed());
        newcomers.push(channel);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Those that were only sitting there made the room, the longest of no
    // use first: the harness's idle connection, the half-open sockets (a
    // handshake takes milliseconds), then the idle connections.
    let mut closed_silent = 0;
    for socket in &mut silent {
        if crate::hostile::closed_within(socket, Duration::from_millis(200)).await {
            closed_silent += 1;
        }
    }
    assert_eq!(closed_silent, 5, "every half-open socket gave way");
    let closed_idle = idle.iter().filter(|(_, connection)| connection.is_finished()).count();
    assert!(closed_idle >= 2, "idle connections gave way after them: {closed_idle}");
}

#[tokio::test]
async fn a_connection_table_full_of_busy_connections_turns_newcomers_away() {
    let shop = TestShop::start_with(|config| {
        config.server.max_connections = 4;
        config.gateway.max_connections_per_addr = 0;
        config.gateway.body_idle_timeout_ms = 10_000;
    })
    .await;
    let addr = shop.suite.gateway_addr;
    // Three connections, each with a call in flight (a message still coming):
    // with the harness's own, the table is full and nobody gives way.
    let mut busy = Vec::new();
    for _ in 0..3 {
        let mut client = h2_from("127.0.0.1", addr).await;
        busy.push((Unfinished::start(&mut client, addr, 100 * KIB, 10 * KIB).await, client));
    }
    // The harness's connection has no call in flight: once that has lasted
    // a moment, it is the one to go.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut newcomer = TcpStream::connect(addr).await.unwrap();
    newcomer.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    assert!(
        !crate::hostile::closed_within(&mut newcomer, Duration::from_millis(500)).await,
        "an idle connection made room for the first newcomer"
    );
    // Now every connection but the newcomer's holds a call, and the
    // newcomer's just finished its preface: it is idle, so it gives way to
    // the next one. Make it busy too, and the table has nothing to give.
    drop(newcomer);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fourth = h2_from("127.0.0.1", addr).await;
    let _fourth_call = Unfinished::start(&mut fourth, addr, 100 * KIB, 10 * KIB).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut turned_away = TcpStream::connect(addr).await.unwrap();
    let _ = turned_away.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    assert!(
        crate::hostile::closed_within(&mut turned_away, Duration::from_secs(2)).await,
        "with every connection busy, a newcomer is closed"
    );
    drop(busy);
}
