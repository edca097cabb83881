//! Cart-order: carts, wishlists, orders and the checkout saga. Owns the
//! `cart` and `orders` schemas and reads no other; it learns about products
//! only from catalog, over gRPC.
//!
//! Checkout crosses three hops, each a gRPC call ([`cart::Carts::checkout`] →
//! `OrderPlacementService.PlaceOrder` → [`orders::Orders::place`] →
//! `InventoryService.ReserveStock`), so the cart half and the order half keep
//! to their own schema even in one process. [`orders::Orders::recover`] repairs
//! what a crash leaves between the steps.
//!
//! Start at [`start`]; rules are in [`domain`], SQL in [`repo`], calls to other
//! services in [`calls`], the gRPC edge in [`grpc`].

pub mod calls;
pub mod cart;
pub mod domain;
pub mod error;
pub mod faults;
pub mod grpc;
pub mod orders;
pub mod repo;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use shop_platform::auth::ServiceCredentials;
use shop_platform::config::{DatabaseConfig, ServerConfig};
use shop_platform::outbox::EventFeed;
use shop_platform::server::{self, Running, Services};
use shop_proto::cart::cart_service_server::CartServiceServer;
use shop_proto::cart::wishlist_service_server::WishlistServiceServer;
use shop_proto::order::order_events_service_server::OrderEventsServiceServer;
use shop_proto::order::order_placement_service_server::OrderPlacementServiceServer;
use shop_proto::order::order_service_server::OrderServiceServer;
use sqlx::PgPool;
use tonic::service::Routes;

pub use faults::{Faults, SagaStep};

pub const CART_SCHEMA: &str = "cart";
pub const ORDERS_SCHEMA: &str = "orders";
static CART_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/cart");
static ORDERS_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/orders");

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
    /// Most Postgres connections each of the two cart-order pools (schemas
    /// `cart` and `orders`) opens.
    #[arg(
        id = "cart-order-db-max-connections",
        long = "cart-order-db-max-connections",
        env = "SHOP_CART_ORDER_DB_MAX_CONNECTIONS",
        default_value_t = 10
    )]
    pub db_max_connections: u32,
    /// Where cart-order reaches catalog (product lookups, stock reservations).
    #[arg(
        id = "cart-order-catalog-url",
        long = "cart-order-catalog-url",
        env = "SHOP_CART_ORDER_CATALOG_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub catalog_url: String,
    /// Where checkout reaches OrderPlacementService. Unset: this server itself.
    #[arg(id = "cart-order-orders-url", long = "cart-order-orders-url", env = "SHOP_CART_ORDER_ORDERS_URL")]
    pub orders_url: Option<String>,
    /// Deadline of one call to another service, in milliseconds (a shorter
    /// deadline of the incoming call wins).
    #[arg(
        id = "cart-order-call-timeout-ms",
        long = "cart-order-call-timeout-ms",
        env = "SHOP_CART_ORDER_CALL_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub call_timeout_ms: u64,
    /// Milliseconds to wait for a connection to another service.
    #[arg(
        id = "cart-order-connect-timeout-ms",
        long = "cart-order-connect-timeout-ms",
        env = "SHOP_CART_ORDER_CONNECT_TIMEOUT_MS",
        default_value_t = 1_000
    )]
    pub connect_timeout_ms: u64,
    /// Retries of an idempotent call that found its service UNAVAILABLE
    /// (exponential backoff with jitter from 50 ms; 0 = no retry).
    #[arg(
        id = "cart-order-call-retries",
        long = "cart-order-call-retries",
        env = "SHOP_CART_ORDER_CALL_RETRIES",
        default_value_t = 3
    )]
    pub call_retries: usize,
    /// How often the recovery loop looks for orders a crash or an outage left
    /// half-done, in milliseconds.
    #[arg(
        id = "cart-order-recovery-interval-ms",
        long = "cart-order-recovery-interval-ms",
        env = "SHOP_CART_ORDER_RECOVERY_INTERVAL_MS",
        default_value_t = 5_000
    )]
    pub recovery_interval_ms: u64,
    /// A PENDING order older than this many milliseconds was abandoned by a
    /// crash: recovery marks it FAILED and gives its stock back. Keep it well
    /// above the call timeout.
    #[arg(
        id = "cart-order-pending-timeout-ms",
        long = "cart-order-pending-timeout-ms",
        env = "SHOP_CART_ORDER_PENDING_TIMEOUT_MS",
        default_value_t = 60_000
    )]
    pub pending_timeout_ms: u64,
    /// Test-only fault injection; never set from the environment.
    #[arg(skip)]
    pub faults: Faults,
}

/// Both schemas, migrated, each behind its own pool.
pub async fn connect(database: &DatabaseConfig, max_connections: u32) -> anyhow::Result<(PgPool, PgPool)> {
    let cart = shop_platform::db::connect(database, CART_SCHEMA, max_connections, &CART_MIGRATOR).await?;
    let orders = shop_platform::db::connect(database, ORDERS_SCHEMA, max_connections, &ORDERS_MIGRATOR).await?;
    Ok((cart, orders))
}

/// Migrates both schemas and starts serving (and the recovery loop); returns
/// once the port is bound.
pub async fn start(
    config: &CartOrderConfig,
    database: &DatabaseConfig,
    server_config: &ServerConfig,
    credentials: ServiceCredentials,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let listener = server::bind(config.listen_addr, "cart-order").await?;
    let own_url = format!("http://{}", listener.local_addr()?);
    let (cart_pool, orders_pool) = connect(database, config.db_max_connections).await?;
    let cart_watch = shop_platform::metrics::watch_pool(cart_pool.clone(), CART_SCHEMA);
    let orders_watch = shop_platform::metrics::watch_pool(orders_pool.clone(), ORDERS_SCHEMA);
    let calls = calls::Calls::new(
        &config.catalog_url,
        config.orders_url.as_deref().unwrap_or(&own_url),
        calls::CallPolicy {
            timeout: Duration::from_millis(config.call_timeout_ms.max(1)),
            connect_timeout: Duration::from_millis(config.connect_timeout_ms.max(1)),
            retries: config.call_retries,
        },
        credentials.clone(),
    )?;

    let feed = EventFeed::new(orders_pool.clone(), repo::orders::OUTBOX);
    let listener_task = feed.spawn_listener();
    let feed_closing = feed.closing_with(shutdown);
    let orders = orders::Orders::new(orders_pool, calls.clone(), config.faults.clone());
    let recovery_task = orders.clone().spawn_recovery(orders::RecoveryPolicy {
        interval: Duration::from_millis(config.recovery_interval_ms.max(10)),
        pending_timeout: Duration::from_millis(config.pending_timeout_ms),
    });
    let carts = cart::Carts::new(cart_pool, calls);

    let customer_api = grpc::CustomerApi::new(carts, credentials.clone());
    let cart_api = CartServiceServer::new(customer_api.clone());
    let wishlist_api = WishlistServiceServer::new(customer_api);
    let order_api = OrderServiceServer::new(grpc::OrderApi::new(orders.clone(), credentials.clone()));
    let placement_api =
        OrderPlacementServiceServer::with_interceptor(grpc::PlacementApi::new(orders), credentials.interceptor());
    let events_api =
        OrderEventsServiceServer::with_interceptor(grpc::OrderEventsApi::new(feed), credentials.interceptor());
    let services = Services {
        server: "cart-order",
        routes: Routes::new(cart_api)
            .add_service(wishlist_api)
            .add_service(order_api)
            .add_service(placement_api)
            .add_service(events_api),
        names: vec![
            "shop.cart.v1.CartService",
            "shop.cart.v1.WishlistService",
            "shop.order.v1.OrderService",
            "shop.order.v1.OrderPlacementService",
            "shop.order.v1.OrderEventsService",
        ],
    };
    let running = server::serve(listener, services, server_config, feed_closing).await?;
    Ok(server::with_companions(running, [listener_task, recovery_task, cart_watch, orders_watch]))
}
