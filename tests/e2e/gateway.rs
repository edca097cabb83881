//! What the gateway itself promises: reflection lists exactly the public
//! services, health answers, a dead backend is UNAVAILABLE fast, deadlines
//! hold, and tokens keep verifying while identity restarts.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use shop_platform::auth::ServiceCredentials;
use shop_platform::transport::server::Launch;
use shop_proto::catalog::ListCategoriesRequest;
use shop_proto::catalog::catalog_service_client::CatalogServiceClient;
use shop_proto::identity::GetCurrentUserRequest;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use tonic_reflection::pb::{v1, v1alpha};

use crate::harness::{TestShop, bearer, connect, eventually};

/// One v1 reflection request through the gateway. An unknown symbol comes
/// back as an `ErrorResponse` in the stream.
async fn reflect(
    shop: &TestShop,
    request: v1::server_reflection_request::MessageRequest,
) -> Result<Option<v1::server_reflection_response::MessageResponse>, tonic::Status> {
    let request = v1::ServerReflectionRequest { host: String::new(), message_request: Some(request) };
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(shop.gateway.clone());
    let mut responses = client.server_reflection_info(tokio_stream::iter([request])).await?.into_inner();
    Ok(responses.message().await?.and_then(|response| response.message_response))
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_exactly_the_public_services() {
    use v1::server_reflection_request::MessageRequest;
    use v1::server_reflection_response::MessageResponse;
    let shop = TestShop::start().await;
    let expected: BTreeSet<String> = public_services().iter().cloned().collect();
    assert_eq!(expected.len(), 6);

    let Ok(Some(MessageResponse::ListServicesResponse(list))) =
        reflect(&shop, MessageRequest::ListServices(String::new())).await
    else {
        panic!("not a list");
    };
    let listed: BTreeSet<String> = list.service.into_iter().map(|service| service.name).collect();
    assert_eq!(listed, expected);

    // grpcurl 1.8 speaks v1alpha.
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(shop.gateway.clone());
    let mut responses = client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let response = responses.message().await.unwrap().expect("a response");
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        panic!("not a list: {response:?}");
    };
    let listed: BTreeSet<String> = list.service.into_iter().map(|service| service.name).collect();
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn a_reflection_lookup_that_finds_nothing_answers_in_the_stream_and_keeps_it_open() {
    use v1::server_reflection_request::MessageRequest;
    use v1::server_reflection_response::MessageResponse;
    let shop = TestShop::start().await;
    let ask = |symbol: &str| v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(symbol.into())),
    };
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(shop.gateway.clone());
    let requests = [ask("shop.Nope"), ask("shop.catalog.v1.CatalogService"), ask("shop.order.v1.PlaceOrderRequest")];
    let mut responses = client.server_reflection_info(tokio_stream::iter(requests)).await.unwrap().into_inner();
    let mut answers = Vec::new();
    while let Some(response) = responses.message().await.expect("the stream stays open") {
        answers.push(response.message_response.expect("an answer"));
    }
    assert_eq!(answers.len(), 3, "{answers:?}");
    let MessageResponse::ErrorResponse(error) = &answers[0] else { panic!("{:?}", answers[0]) };
    assert_eq!(error.error_code, Code::NotFound as i32);
    assert!(error.error_message.contains("shop.Nope"), "{error:?}");
    assert!(matches!(answers[1], MessageResponse::FileDescriptorResponse(_)), "{:?}", answers[1]);
    assert!(matches!(answers[2], MessageResponse::ErrorResponse(_)), "internal: {:?}", answers[2]);
}

#[tokio::test]
async fn reflection_describes_public_services_and_error_details_but_nothing_internal() {
    use v1::server_reflection_request::MessageRequest;
    use v1::server_reflection_response::MessageResponse;
    let shop = TestShop::start().await;
    for (symbol, is_described) in [
        ("shop.identity.v1.IdentityService", true),
        ("shop.cart.v1.CartService", true),
        ("shop.catalog.v1.CreateProductRequest", true),
        ("shop.order.v1.Order", true),
        // grpcurl decodes the details Shop attaches with these.
        ("google.rpc.BadRequest", true),
        ("google.rpc.PreconditionFailure", true),
        ("google.rpc.RetryInfo", true),
        ("shop.order.v1.PlaceOrderRequest", false),
        ("shop.catalog.v1.ReserveStockRequest", false),
        ("shop.identity.v1.SigningKeysService", false),
        ("shop.catalog.v1.InventoryService", false),
        ("shop.catalog.v1.CatalogEventsService", false),
        ("shop.order.v1.OrderPlacementService", false),
        ("shop.order.v1.OrderEventsService", false),
    ] {
        let response = reflect(&shop, MessageRequest::FileContainingSymbol(symbol.into())).await;
        let found = matches!(response, Ok(Some(MessageResponse::FileDescriptorResponse(_))));
        assert_eq!(found, is_described, "{symbol}: {response:?}");
    }
    // The file that holds a public service holds none of its internal neighbours.
    let Ok(Some(MessageResponse::FileDescriptorResponse(files))) =
        reflect(&shop, MessageRequest::FileContainingSymbol("shop.order.v1.OrderService".into())).await
    else {
        panic!("shop.order.v1.OrderService is described");
    };
    let order_file = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| <prost_types::FileDescriptorProto as prost::Message>::decode(bytes.as_slice()).unwrap())
        .find(|file| file.name() == "shop/order/v1/order.proto")
        .expect("order.proto is in the answer");
    let messages: Vec<&str> = order_file.message_type.iter().map(|message| message.name()).collect();
    assert!(messages.contains(&"ListOrdersRequest"), "{messages:?}");
    assert!(!messages.contains(&"PlaceOrderRequest"), "{messages:?}");
}

#[tokio::test]
async fn servers_listen_on_host_names() {
    let shop = TestShop::start_with(|config| {
        config.gateway.listen_addr = "localhost:0".parse().unwrap();
        config.catalog.listen_addr = "localhost:0".parse().unwrap();
    })
    .await;
    assert!(shop.suite.gateway_addr.ip().is_loopback(), "{}", shop.suite.gateway_addr);
    let categories = shop.catalog().list_categories(ListCategoriesRequest {}).await.unwrap().into_inner();
    assert!(categories.categories.is_empty());
}

#[tokio::test]
async fn health_reports_serving_overall_and_per_public_service() {
    let shop = TestShop::start().await;
    let mut health = HealthClient::new(shop.gateway.clone());
    for service in std::iter::once("").chain(public_services().iter().map(String::as_str)) {
        let response = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(response.status(), ServingStatus::Serving, "{service:?}");
    }
}

/// A gateway of its own in front of the given backends (others point at a
/// port nobody listens on).
async fn gateway_in_front_of(
    identity: Option<SocketAddr>,
    catalog: SocketAddr,
    credentials: ServiceCredentials,
    stop: &CancellationToken,
) -> SocketAddr {
    let nobody = format!("http://{}", closed_port().await);
    let mut config = shop::SuiteConfig::for_tests("postgres://unused/unused").unwrap().gateway;
    config.identity_url = identity.map_or(nobody.clone(), |addr| format!("http://{addr}"));
    config.catalog_url = format!("http://{catalog}");
    config.cart_order_url = nobody.clone();
    config.reporting_url = nobody;
    config.key_refresh_secs = 1;
    let files = shop::SuiteConfig::for_tests("postgres://unused/unused").unwrap().files;
    let running =
        shop_gateway::start(&config, &files, &Default::default(), credentials, stop.clone().cancelled_owned())
            .await
            .unwrap();
    running.addr
}

async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn a_backend_that_is_down_is_unavailable_not_a_hang() {
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let gateway_addr = gateway_in_front_of(None, closed_port().await, ServiceCredentials::random(), &stop).await;
    let mut catalog = CatalogServiceClient::new(connect(gateway_addr).await);
    // The client's deadline is far longer than the gateway's connect timeout:
    // a hang would end in DEADLINE_EXCEEDED, not UNAVAILABLE.
    let mut request = tonic::Request::new(ListCategoriesRequest {});
    request.set_timeout(Duration::from_secs(15));
    let status = catalog.list_categories(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("catalog"), "{status:?}");
}

/// grpc-go clients (grpcurl among them) insist that an answer whose status is
/// in its headers ends the stream with those headers; an error that comes
/// from a backend must reach them that way through the gateway too.
#[tokio::test]
async fn a_backends_error_reaches_a_raw_client_as_one_headers_frame_that_ends_the_stream() {
    use prost::Message as _;
    let shop = TestShop::start().await;
    let mut client = crate::harness::raw_h2(shop.suite.gateway_addr).await;
    let request =
        http::Request::post(format!("http://{}/shop.catalog.v1.CatalogService/GetProduct", shop.suite.gateway_addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
    let (response, mut body) = client.send_request(request, false).unwrap();
    let message = shop_proto::catalog::GetProductRequest { id: 987_654_321 }.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(&message);
    body.send_data(bytes::Bytes::from(framed), true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.headers().get("grpc-status").map(|value| value.as_bytes()), Some(&b"5"[..]), "{response:?}");
    assert!(response.headers().contains_key("x-request-id"), "{response:?}");
    assert!(response.body().is_end_stream(), "the headers must end the stream: {response:?}");
}

/// One unary call over a bare HTTP/2 connection, with no client-side timer,
/// so only the server can end it early. Returns the grpc-status.
async fn raw_call(addr: SocketAddr, path: &str, grpc_timeout: &str) -> Code {
    let mut client = crate::harness::raw_h2(addr).await;
    let request = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", grpc_timeout)
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(request, false).unwrap();
    // An empty message: flag 0, length 0.
    body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true).unwrap();
    let response = response.await.unwrap();
    let status = match response.headers().get("grpc-status") {
        Some(status) => status.clone(),
        None => {
            let mut body = response.into_body();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.unwrap();
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            body.trailers().await.unwrap().expect("trailers").get("grpc-status").expect("grpc-status").clone()
        }
    };
    Code::from_i32(status.to_str().unwrap().parse().unwrap())
}

#[tokio::test]
async fn the_clients_deadline_is_honoured_when_a_backend_never_answers() {
    // A backend that accepts connections and then says nothing.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            connections.push(connection);
        }
    });
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let gateway_addr = gateway_in_front_of(None, silent_addr, ServiceCredentials::random(), &stop).await;
    // The test's own limit only catches a gateway that ignores the deadline.
    let call = raw_call(gateway_addr, "/shop.catalog.v1.CatalogService/ListCategories", "300m");
    let code = tokio::time::timeout(Duration::from_secs(10), call).await.expect("the gateway ignored grpc-timeout");
    assert_eq!(code, Code::DeadlineExceeded);
    held.abort();
}

#[tokio::test]
async fn tokens_keep_verifying_while_identity_restarts() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    // A second identity, gateway and stub catalog on the same database, so
    // this identity can be stopped and started without touching the suite's.
    let credentials = ServiceCredentials::random();
    let mut identity_config = shop.config.identity.clone();
    let identity_stop = CancellationToken::new();
    let identity = shop_identity::start(
        &identity_config,
        Launch {
            database: &shop.config.database,
            server: &Default::default(),
            credentials: credentials.clone(),
            shutdown: Box::pin(identity_stop.clone().cancelled_owned()),
        },
    )
    .await
    .unwrap();
    let suite_stop = CancellationToken::new();
    let _suite_stop = suite_stop.clone().drop_guard();
    // A second catalog keeps a search index of its own.
    let mut catalog_config = shop.config.catalog.clone();
    catalog_config.index_dir = shop.config.catalog.index_dir.with_file_name("second-catalog");
    let catalog = shop_catalog::start(
        &catalog_config,
        &shop.config.files,
        Launch {
            database: &shop.config.database,
            server: &Default::default(),
            credentials: credentials.clone(),
            shutdown: Box::pin(suite_stop.clone().cancelled_owned()),
        },
    )
    .await
    .unwrap();
    let gateway_addr = gateway_in_front_of(Some(identity.addr), catalog.addr, credentials.clone(), &suite_stop).await;
    let gateway = connect(gateway_addr).await;
    let mut identity_client =
        shop_proto::identity::identity_service_client::IdentityServiceClient::new(gateway.clone());
    identity_client.get_current_user(bearer(GetCurrentUserRequest {}, &admin)).await.unwrap();

    identity_stop.cancel();
    identity.task.await.unwrap().unwrap();
    let down = identity_client.get_current_user(bearer(GetCurrentUserRequest {}, &admin)).await.unwrap_err();
    assert_eq!(down.code(), Code::Unavailable);
    // An admin-only catalog call still gets past the token check: it reaches
    // the catalog, which answers for itself (no such category), not UNAUTHENTICATED.
    let mut catalog_client = CatalogServiceClient::new(gateway.clone());
    let request = bearer(shop_proto::catalog::DeleteCategoryRequest { id: 999 }, &admin);
    assert_eq!(catalog_client.delete_category(request).await.unwrap_err().code(), Code::NotFound);

    identity_config.listen_addr = identity.addr.into();
    let restarted = shop_identity::start(
        &identity_config,
        Launch {
            database: &shop.config.database,
            server: &Default::default(),
            credentials,
            shutdown: Box::pin(suite_stop.clone().cancelled_owned()),
        },
    )
    .await
    .unwrap();
    assert_eq!(restarted.addr, identity.addr);
    let back = eventually("identity answers again", Duration::from_secs(5), async || {
        identity_client.get_current_user(bearer(GetCurrentUserRequest {}, &admin)).await
    })
    .await;
    assert_eq!(back.into_inner().username, "root");
}

#[tokio::test]
async fn every_answer_carries_the_request_id_the_callers_or_a_new_one() {
    let shop = TestShop::start().await;
    let mut quoted = tonic::Request::new(ListCategoriesRequest {});
    quoted.metadata_mut().insert("x-request-id", "order-help-4711".parse().unwrap());
    let answer = shop.catalog().list_categories(quoted).await.unwrap();
    assert_eq!(answer.metadata().get("x-request-id").unwrap(), "order-help-4711");

    let answer = shop.catalog().list_categories(ListCategoriesRequest {}).await.unwrap();
    let made_up = answer.metadata().get("x-request-id").expect("a request id").to_str().unwrap().to_owned();
    assert_eq!(made_up.len(), 32, "{made_up}");
    // Errors carry one too.
    let refused = shop.identity().get_current_user(GetCurrentUserRequest {}).await.unwrap_err();
    assert!(refused.metadata().get("x-request-id").is_some(), "{refused:?}");
}

/// The services the gateway routes, as the contract says.
fn public_services() -> &'static [String] {
    shop_proto::contract::contract().expect("the contract").public_services()
}
