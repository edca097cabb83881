//! Catalog: categories, products and their stock. Owns the `catalog` schema
//! and reads no other. Public `CatalogService`; internal `InventoryService`
//! (stock reservations for the order service) and `CatalogEventsService`
//! (the outbox feed for reporting), both behind service credentials.
//!
//! Start at [`start`]; use cases are in [`catalog`] and [`inventory`], rules
//! in [`domain`], SQL in [`repo`], the gRPC edge in [`grpc`].

pub mod catalog;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod inventory;
pub mod repo;
pub mod seed;

use std::future::Future;
use std::net::SocketAddr;

use shop_platform::auth::ServiceCredentials;
use shop_platform::config::{DatabaseConfig, ServerConfig};
use shop_platform::outbox::EventFeed;
use shop_platform::server::{self, Running, Services};
use shop_proto::catalog::catalog_events_service_server::CatalogEventsServiceServer;
use shop_proto::catalog::catalog_service_server::CatalogServiceServer;
use shop_proto::catalog::inventory_service_server::InventoryServiceServer;
use sqlx::PgPool;
use tonic::service::Routes;

pub const SCHEMA: &str = "catalog";
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, clap::Args)]
pub struct CatalogConfig {
    /// Where the catalog gRPC server listens. Port 0 lets the OS pick.
    #[arg(id = "catalog-addr", long = "catalog-addr", env = "SHOP_CATALOG_ADDR", default_value = "127.0.0.1:50053")]
    pub listen_addr: SocketAddr,
    /// Most Postgres connections the catalog pool opens.
    #[arg(
        id = "catalog-db-max-connections",
        long = "catalog-db-max-connections",
        env = "SHOP_CATALOG_DB_MAX_CONNECTIONS",
        default_value_t = 10
    )]
    pub db_max_connections: u32,
}

/// The catalog schema, migrated, behind a pool of `max_connections`.
pub async fn connect(database: &DatabaseConfig, max_connections: u32) -> anyhow::Result<PgPool> {
    shop_platform::db::connect(database, SCHEMA, max_connections, &MIGRATOR).await
}

/// Migrates the catalog schema and starts serving; returns once the port is bound.
pub async fn start(
    config: &CatalogConfig,
    database: &DatabaseConfig,
    server_config: &ServerConfig,
    credentials: ServiceCredentials,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let listener = server::bind(config.listen_addr, "catalog").await?;
    let pool = connect(database, config.db_max_connections).await?;
    let pool_for_metrics = pool.clone();
    let feed = EventFeed::new(pool.clone(), repo::outbox::OUTBOX);
    let listener_task = feed.spawn_listener();
    let feed_closing = feed.closing_with(shutdown);

    let catalog =
        CatalogServiceServer::new(grpc::CatalogApi::new(catalog::Catalog::new(pool.clone()), credentials.clone()));
    let inventory = InventoryServiceServer::with_interceptor(
        grpc::InventoryApi::new(inventory::Inventory::new(pool)),
        credentials.interceptor(),
    );
    let events =
        CatalogEventsServiceServer::with_interceptor(grpc::CatalogEventsApi::new(feed), credentials.interceptor());
    let services = Services {
        server: "catalog",
        routes: Routes::new(catalog).add_service(inventory).add_service(events),
        names: vec![
            "shop.catalog.v1.CatalogService",
            "shop.catalog.v1.InventoryService",
            "shop.catalog.v1.CatalogEventsService",
        ],
    };
    let running = server::serve(listener, services, server_config, feed_closing).await?;
    let pool_watch = shop_platform::metrics::watch_pool(pool_for_metrics, SCHEMA);
    Ok(server::with_companions(running, [listener_task, pool_watch]))
}
