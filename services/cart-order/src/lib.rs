//! Cart-order: carts, wishlists, orders and the checkout saga. Owns the
//! `cart` and `orders` schemas. Its RPCs arrive with the cart-order issue;
//! until then the contract is served and every call answers `UNIMPLEMENTED`
//! (internal services only after the service-credential check).

use std::future::Future;
use std::net::SocketAddr;

use shop_platform::auth::ServiceCredentials;
use shop_platform::config::{DatabaseConfig, ServerConfig};
use shop_platform::server::{self, Running, Services};
use shop_proto::cart::cart_service_server::{CartService, CartServiceServer};
use shop_proto::cart::wishlist_service_server::{WishlistService, WishlistServiceServer};
use shop_proto::order::order_events_service_server::{OrderEventsService, OrderEventsServiceServer};
use shop_proto::order::order_placement_service_server::{OrderPlacementService, OrderPlacementServiceServer};
use shop_proto::order::order_service_server::{OrderService, OrderServiceServer};
use tonic::service::Routes;

pub const SCHEMAS: [&str; 2] = ["cart", "orders"];

#[derive(Debug, Clone, clap::Args)]
pub struct CartOrderConfig {
    /// Where the cart-order gRPC server listens. Port 0 lets the OS pick.
    #[arg(
        id = "cart-order-addr",
        long = "cart-order-addr",
        env = "SHOP_CART_ORDER_ADDR",
        default_value = "127.0.0.1:50054"
    )]
    pub listen_addr: SocketAddr,
    /// Most Postgres connections the cart-order pool opens.
    #[arg(
        id = "cart-order-db-max-connections",
        long = "cart-order-db-max-connections",
        env = "SHOP_CART_ORDER_DB_MAX_CONNECTIONS",
        default_value_t = 10
    )]
    pub db_max_connections: u32,
}

struct CartOrderApi;
impl CartService for CartOrderApi {}
impl WishlistService for CartOrderApi {}
impl OrderService for CartOrderApi {}
impl OrderPlacementService for CartOrderApi {}
impl OrderEventsService for CartOrderApi {}

pub async fn start(
    config: &CartOrderConfig,
    database: &DatabaseConfig,
    server_config: &ServerConfig,
    credentials: ServiceCredentials,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let listener = server::bind(config.listen_addr, "cart-order").await?;
    for schema in SCHEMAS {
        shop_platform::db::ensure_schema(database, schema).await?;
    }
    let routes = Routes::new(CartServiceServer::new(CartOrderApi))
        .add_service(WishlistServiceServer::new(CartOrderApi))
        .add_service(OrderServiceServer::new(CartOrderApi))
        .add_service(OrderPlacementServiceServer::with_interceptor(CartOrderApi, credentials.interceptor()))
        .add_service(OrderEventsServiceServer::with_interceptor(CartOrderApi, credentials.interceptor()));
    let names = vec![
        "shop.cart.v1.CartService",
        "shop.cart.v1.WishlistService",
        "shop.order.v1.OrderService",
        "shop.order.v1.OrderPlacementService",
        "shop.order.v1.OrderEventsService",
    ];
    server::serve(listener, Services { routes, names }, server_config, shutdown).await
}
