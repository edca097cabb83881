//! Cart-order: carts, wishlists, orders and the checkout saga. Owns the
//! `cart` and `orders` schemas and reads no other; it learns about products
//! only from catalog, over gRPC.
//!
//! Checkout crosses three hops, each a gRPC call (`CartService.Checkout` →
//! `OrderPlacementService.PlaceOrder` → `InventoryService.ReserveStock`), so
//! the cart half and the order half keep to their own schema even in one
//! process. A recovery loop repairs what a crash leaves between the steps.
//!
//! Every service has the same rooms: `config` (settings), `error` (the one
//! error type and its way out to `tonic::Status`), `model` (the types and
//! each value's rules, below every other room), `domain` (use cases:
//! `domain::cart`, `domain::placement`, `domain::orders`; no protobuf, no SQL), `repo` (SQL), `grpc` (one file per gRPC service: protobuf in, one
//! use-case call, protobuf out) and `calls` (calls to other services). A call
//! goes `grpc` → `domain` → `repo`. This service has one room more, `wire`:
//! its own protobuf (orders, their status, order events) to and from domain
//! values, shared by `grpc`, `repo` (the outbox stores events as the stream
//! carries them) and `calls`. Start at [`start`].

mod calls;
mod config;
mod domain;
mod error;
mod faults;
mod grpc;
mod model;
mod repo;
mod wire;

use std::time::Duration;

use shop_platform::config::DatabaseConfig;
use shop_platform::storage::db::Schema;
use shop_platform::storage::outbox::EventFeed;
use shop_platform::transport::client::CallPolicy;
use shop_platform::transport::server::{self, Launch, Running, Services};
use shop_proto::cart::cart_service_server::CartServiceServer;
use shop_proto::cart::wishlist_service_server::WishlistServiceServer;
use shop_proto::order::order_events_service_server::OrderEventsServiceServer;
use shop_proto::order::order_placement_service_server::OrderPlacementServiceServer;
use shop_proto::order::order_service_server::OrderServiceServer;
use sqlx::PgPool;
use tonic::service::Routes;

pub use config::CartOrderConfig;
pub use faults::{Faults, SagaStep};
pub use model::OrderBooks;

use crate::domain::cart::Carts;
use crate::domain::orders::Orders;
use crate::domain::placement::{Placement, RecoveryPolicy};

static CART_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/cart");
static ORDERS_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/orders");
/// Carts and wishlists.
pub const CART_SCHEMA: Schema = Schema { name: "cart", migrator: &CART_MIGRATOR, outbox: None };
/// Orders, with the outbox the order event stream is read from.
pub const ORDERS_SCHEMA: Schema =
    Schema { name: "orders", migrator: &ORDERS_MIGRATOR, outbox: Some(repo::orders::OUTBOX) };

/// Both schemas, migrated, each behind its own pool.
pub async fn connect(database: &DatabaseConfig, max_connections: u32) -> anyhow::Result<(PgPool, PgPool)> {
    let cart = CART_SCHEMA.connect(database, max_connections).await?;
    let orders = ORDERS_SCHEMA.connect(database, max_connections).await?;
    Ok((cart, orders))
}

/// The order side of an audit (`shop bench checkout` balances its books
/// with it), read through a pool on [`ORDERS_SCHEMA`].
pub async fn order_books(orders: &PgPool, key_prefix: &str) -> anyhow::Result<OrderBooks> {
    Ok(domain::orders::books(orders, key_prefix).await?)
}

/// Migrates both schemas and starts serving (and the recovery loop); returns
/// once the port is bound.
pub async fn start(config: &CartOrderConfig, launch: Launch<'_>) -> anyhow::Result<Running> {
    let Launch { database, server: server_config, credentials, shutdown } = launch;
    let tls = credentials.server_tls()?;
    let listener = config.listen_addr.bind("cart-order").await?;
    let own_url = format!("http://{}", listener.local_addr()?);
    let (cart_pool, orders_pool) = connect(database, config.db_max_connections).await?;
    let cart_watch = shop_platform::observability::metrics::watch_pool(cart_pool.clone(), CART_SCHEMA.name);
    let orders_watch = shop_platform::observability::metrics::watch_pool(orders_pool.clone(), ORDERS_SCHEMA.name);
    let calls = calls::Calls::new(
        &config.catalog_url,
        config.orders_url.as_deref().unwrap_or(&own_url),
        CallPolicy {
            timeout: Duration::from_millis(config.call_timeout_ms.max(1)),
            connect_timeout: Duration::from_millis(config.connect_timeout_ms.max(1)),
            retries: config.call_retries,
        },
        credentials.clone(),
    )?;

    let feed = EventFeed::new(orders_pool.clone(), repo::orders::OUTBOX);
    let listener_task = feed.spawn_listener();
    let feed_closing = feed.closing_with(shutdown);
    let placement = Placement::new(orders_pool.clone(), calls.clone(), config.faults.clone());
    let recovery_task = placement.clone().spawn_recovery(RecoveryPolicy {
        interval: Duration::from_millis(config.recovery_interval_ms.max(10)),
        pending_timeout: Duration::from_millis(config.pending_timeout_ms),
    });
    let orders = Orders::new(orders_pool, placement.clone());
    let carts = Carts::new(cart_pool, calls);

    let customer_api = grpc::CustomerApi::new(carts, credentials.clone());
    let cart_api = CartServiceServer::with_interceptor(customer_api.clone(), credentials.interceptor());
    let wishlist_api = WishlistServiceServer::with_interceptor(customer_api, credentials.interceptor());
    let order_api = OrderServiceServer::with_interceptor(
        grpc::OrderApi::new(orders, credentials.clone()),
        credentials.interceptor(),
    );
    let placement_api =
        OrderPlacementServiceServer::with_interceptor(grpc::PlacementApi::new(placement), credentials.interceptor());
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
        warm_up: None,
        tls,
        web: None,
        body_budget: None,
    };
    let running = server::serve(listener, services, server_config, feed_closing).await?;
    Ok(server::with_companions(running, [listener_task, recovery_task, cart_watch, orders_watch]))
}
