//! Every public RPC's access level, as the protos give it (checked against
//! API.md by the gateway's unit tests), exercised through the gateway as an
//! anonymous caller, a customer and an admin. Calls carry an empty message: what is
//! checked is whether the gateway let the call reach its backend.

use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_prost::ProstCodec;

use crate::harness::{TestShop, bearer};

/// Calls `method` with an empty message and returns the status code.
async fn call(channel: &Channel, method: &str, token: Option<&str>) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("gateway ready");
    let request = match token {
        Some(token) => bearer((), token),
        None => Request::new(()),
    };
    let path = PathAndQuery::try_from(format!("/{method}")).expect("path");
    match grpc.unary::<(), (), _>(request, path, ProstCodec::default()).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

fn rows() -> Vec<(String, String)> {
    let contract = shop_proto::contract::contract().expect("the contract");
    contract.rpcs().map(|rpc| (rpc.name.clone(), rpc.access.as_str().to_owned())).collect()
}

fn let_through(code: Code) -> bool {
    !matches!(code, Code::Unauthenticated | Code::PermissionDenied)
}

#[tokio::test]
async fn every_row_of_the_policy_table_holds_through_the_gateway() {
    let shop = TestShop::start().await;
    let customer = shop.customer("carl").await;
    let admin = shop.admin("root").await;
    let rows = rows();
    assert!(rows.iter().any(|(_, access)| access == "admin"), "{rows:?}");
    for (method, access) in rows {
        let anonymous = call(&shop.gateway, &method, None).await;
        let as_customer = call(&shop.gateway, &method, Some(&customer)).await;
        let as_admin = call(&shop.gateway, &method, Some(&admin)).await;
        match access.as_str() {
            "public" => {
                assert!(let_through(anonymous), "{method}: anonymous got {anonymous:?}");
                assert!(let_through(as_customer), "{method}: customer got {as_customer:?}");
            }
            "user" => {
                assert_eq!(anonymous, Code::Unauthenticated, "{method}: anonymous");
                assert!(let_through(as_customer), "{method}: customer got {as_customer:?}");
            }
            "admin" => {
                assert_eq!(anonymous, Code::Unauthenticated, "{method}: anonymous");
                assert_eq!(as_customer, Code::PermissionDenied, "{method}: customer");
            }
            other => panic!("unknown access level {other}"),
        }
        assert!(let_through(as_admin), "{method}: admin got {as_admin:?}");
    }
}

/// RegisterRequest's username field, as raw bytes, so a test can send a
/// string that is not UTF-8.
#[derive(Clone, PartialEq, prost::Message)]
struct RawRegisterRequest {
    #[prost(bytes = "vec", tag = "1")]
    username: Vec<u8>,
}

#[tokio::test]
async fn a_message_that_does_not_decode_is_invalid_argument_not_internal() {
    let shop = TestShop::start().await;
    let mut grpc = tonic::client::Grpc::new(shop.gateway.clone());
    grpc.ready().await.unwrap();
    let request = Request::new(RawRegisterRequest { username: vec![0xff, 0xfe, b'a'] });
    let path = PathAndQuery::from_static("/shop.identity.v1.IdentityService/Register");
    let status = grpc.unary::<_, (), _>(request, path, ProstCodec::default()).await.unwrap_err();
    crate::harness::assert_invalid_field(&status, "username");
}

#[tokio::test]
async fn internal_services_are_never_routed_even_for_admins() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    for method in [
        "shop.catalog.v1.InventoryService/ReserveStock",
        "shop.catalog.v1.InventoryService/ReleaseStock",
        "shop.catalog.v1.CatalogEventsService/Subscribe",
        "shop.order.v1.OrderPlacementService/PlaceOrder",
        "shop.order.v1.OrderEventsService/Subscribe",
        "shop.identity.v1.SigningKeysService/ListSigningKeys",
        "shop.identity.v1.IdentityService/NoSuchMethod",
    ] {
        assert_eq!(call(&shop.gateway, method, None).await, Code::Unimplemented, "{method}");
        assert_eq!(call(&shop.gateway, method, Some(&admin)).await, Code::Unimplemented, "{method}");
    }
}

#[tokio::test]
async fn backends_refuse_identity_metadata_and_internal_calls_without_service_credentials() {
    let shop = TestShop::start().await;
    shop.register("ann").await;
    let identity = crate::harness::connect(shop.suite.identity_addr).await;
    let catalog = crate::harness::connect(shop.suite.catalog_addr).await;

    let mut forged = Request::new(shop_proto::identity::GetCurrentUserRequest {});
    forged.metadata_mut().insert("x-shop-user-id", "1".parse().unwrap());
    forged.metadata_mut().insert("x-shop-user-is-admin", "true".parse().unwrap());
    forged.metadata_mut().insert("x-shop-service-token", "not-the-real-service-token-0123456789".parse().unwrap());
    let status = shop_proto::identity::identity_service_client::IdentityServiceClient::new(identity.clone())
        .get_current_user(forged)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    for (channel, method) in [
        (&identity, "shop.identity.v1.SigningKeysService/ListSigningKeys"),
        (&catalog, "shop.catalog.v1.InventoryService/ReserveStock"),
        (&catalog, "shop.catalog.v1.InventoryService/ReleaseStock"),
    ] {
        assert_eq!(call(channel, method, None).await, Code::Unauthenticated, "{method}");
    }
    let cart_order = crate::harness::connect(shop.suite.cart_order_addr).await;
    assert_eq!(call(&cart_order, "shop.order.v1.OrderPlacementService/PlaceOrder", None).await, Code::Unauthenticated);
}
