//! Reporting: the admin sales report, answered from a read model that only
//! the catalog and order event streams feed. Owns the `reporting` schema and
//! reads no other, so reports keep answering while catalog or cart-order is
//! down.
//!
//! [`consumer`] applies each stream exactly once (events and checkpoint in one
//! transaction), one replica at a time (a Postgres advisory lock); [`report`]
//! answers the RPC; [`repo`] holds the SQL.

pub mod consumer;
pub mod error;
pub mod grpc;
pub mod repo;
pub mod report;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use shop_platform::auth::ServiceCredentials;
use shop_platform::client::lazy_channel;
use shop_platform::config::{DatabaseConfig, ServerConfig};
use shop_platform::server::{self, Running, Services};
use shop_proto::reporting::reporting_service_server::ReportingServiceServer;
use sqlx::PgPool;
use tonic::service::Routes;

pub const SCHEMA: &str = "reporting";
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, clap::Args)]
pub struct ReportingConfig {
    /// Where the reporting gRPC server listens. Port 0 lets the OS pick.
    #[arg(
        id = "reporting-addr",
        long = "reporting-addr",
        env = "SHOP_REPORTING_ADDR",
        default_value = "127.0.0.1:50055"
    )]
    pub listen_addr: SocketAddr,
    /// Most Postgres connections the reporting pool opens (each stream
    /// consumer holds one more of its own while it consumes).
    #[arg(
        id = "reporting-db-max-connections",
        long = "reporting-db-max-connections",
        env = "SHOP_REPORTING_DB_MAX_CONNECTIONS",
        default_value_t = 10
    )]
    pub db_max_connections: u32,
    /// Where reporting reads the catalog event stream.
    #[arg(
        id = "reporting-catalog-url",
        long = "reporting-catalog-url",
        env = "SHOP_REPORTING_CATALOG_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub catalog_url: String,
    /// Where reporting reads the order event stream.
    #[arg(
        id = "reporting-orders-url",
        long = "reporting-orders-url",
        env = "SHOP_REPORTING_ORDERS_URL",
        default_value = "http://127.0.0.1:50054"
    )]
    pub orders_url: String,
    /// Milliseconds to wait for a connection to a stream's service.
    #[arg(
        id = "reporting-connect-timeout-ms",
        long = "reporting-connect-timeout-ms",
        env = "SHOP_REPORTING_CONNECT_TIMEOUT_MS",
        default_value_t = 1_000
    )]
    pub connect_timeout_ms: u64,
    /// Most events applied in one transaction (catching up goes faster in
    /// bigger batches; live events are applied as they come).
    #[arg(
        id = "reporting-batch-size",
        long = "reporting-batch-size",
        env = "SHOP_REPORTING_BATCH_SIZE",
        default_value_t = 500
    )]
    pub batch_size: usize,
    /// Longest wait, in milliseconds, between attempts to (re)connect a
    /// dropped stream or take over consuming from another replica (the wait
    /// doubles from 100 ms up to this).
    #[arg(
        id = "reporting-retry-max-ms",
        long = "reporting-retry-max-ms",
        env = "SHOP_REPORTING_RETRY_MAX_MS",
        default_value_t = 5_000
    )]
    pub retry_max_ms: u64,
}

/// The reporting schema, migrated, behind a pool of `max_connections`.
pub async fn connect(database: &DatabaseConfig, max_connections: u32) -> anyhow::Result<PgPool> {
    shop_platform::db::connect(database, SCHEMA, max_connections, &MIGRATOR).await
}

/// Migrates the schema, starts both stream consumers and serves the report;
/// returns once the port is bound.
pub async fn start(
    config: &ReportingConfig,
    database: &DatabaseConfig,
    server_config: &ServerConfig,
    credentials: ServiceCredentials,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let listener = server::bind(config.listen_addr, "reporting").await?;
    let pool = connect(database, config.db_max_connections).await?;
    let pool_watch = shop_platform::metrics::watch_pool(pool.clone(), SCHEMA);
    let connect_timeout = Duration::from_millis(config.connect_timeout_ms.max(1));
    let policy = consumer::ConsumerPolicy {
        batch_size: config.batch_size.max(1),
        retry_max: Duration::from_millis(config.retry_max_ms.max(100)),
    };
    let catalog = consumer::CatalogSource(consumer::Upstream::new(
        lazy_channel(&config.catalog_url, "SHOP_REPORTING_CATALOG_URL", connect_timeout)?,
        credentials.clone(),
    ));
    let orders = consumer::OrderSource(consumer::Upstream::new(
        lazy_channel(&config.orders_url, "SHOP_REPORTING_ORDERS_URL", connect_timeout)?,
        credentials.clone(),
    ));
    let catalog_consumer = consumer::spawn(catalog, pool.clone(), policy);
    let orders_consumer = consumer::spawn(orders, pool.clone(), policy);

    let api = ReportingServiceServer::new(grpc::ReportingApi::new(report::Reports::new(pool), credentials));
    let services =
        Services { server: "reporting", routes: Routes::new(api), names: vec!["shop.reporting.v1.ReportingService"] };
    let running = server::serve(listener, services, server_config, shutdown).await?;
    Ok(server::with_companions(running, [catalog_consumer, orders_consumer, pool_watch]))
}
