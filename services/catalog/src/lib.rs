//! Catalog: categories, products, stock and their event outbox. Owns the
//! `catalog` schema. Its RPCs arrive with the catalog issue; until then the
//! contract is served and every call answers `UNIMPLEMENTED` (internal
//! services only after the service-credential check).

use std::future::Future;
use std::net::SocketAddr;

use shop_platform::auth::ServiceCredentials;
use shop_platform::config::{DatabaseConfig, ServerConfig};
use shop_platform::server::{self, Running, Services};
use shop_proto::catalog::catalog_events_service_server::{CatalogEventsService, CatalogEventsServiceServer};
use shop_proto::catalog::catalog_service_server::{CatalogService, CatalogServiceServer};
use shop_proto::catalog::inventory_service_server::{InventoryService, InventoryServiceServer};
use tonic::service::Routes;

pub const SCHEMA: &str = "catalog";

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

struct CatalogApi;
impl CatalogService for CatalogApi {}
impl InventoryService for CatalogApi {}
impl CatalogEventsService for CatalogApi {}

pub async fn start(
    config: &CatalogConfig,
    database: &DatabaseConfig,
    server_config: &ServerConfig,
    credentials: ServiceCredentials,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let listener = server::bind(config.listen_addr, "catalog").await?;
    shop_platform::db::ensure_schema(database, SCHEMA).await?;
    let routes = Routes::new(CatalogServiceServer::new(CatalogApi))
        .add_service(InventoryServiceServer::with_interceptor(CatalogApi, credentials.interceptor()))
        .add_service(CatalogEventsServiceServer::with_interceptor(CatalogApi, credentials.interceptor()));
    let names = vec![
        "shop.catalog.v1.CatalogService",
        "shop.catalog.v1.InventoryService",
        "shop.catalog.v1.CatalogEventsService",
    ];
    server::serve(listener, Services { routes, names }, server_config, shutdown).await
}
