//! Reporting: the admin sales report, from a read model fed by catalog and
//! order event streams. Owns the `reporting` schema. Its RPC arrives with the
//! reporting issue; until then it answers `UNIMPLEMENTED`.

use std::future::Future;
use std::net::SocketAddr;

use shop_platform::auth::ServiceCredentials;
use shop_platform::config::{DatabaseConfig, ServerConfig};
use shop_platform::server::{self, Running, Services};
use shop_proto::reporting::reporting_service_server::{ReportingService, ReportingServiceServer};
use tonic::service::Routes;

pub const SCHEMA: &str = "reporting";

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
    /// Most Postgres connections the reporting pool opens.
    #[arg(
        id = "reporting-db-max-connections",
        long = "reporting-db-max-connections",
        env = "SHOP_REPORTING_DB_MAX_CONNECTIONS",
        default_value_t = 10
    )]
    pub db_max_connections: u32,
}

struct ReportingApi;
impl ReportingService for ReportingApi {}

pub async fn start(
    config: &ReportingConfig,
    database: &DatabaseConfig,
    server_config: &ServerConfig,
    // Kept for the report RPC (admin-only: it trusts the gateway's caller
    // metadata only with these credentials).
    _credentials: ServiceCredentials,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let listener = server::bind(config.listen_addr, "reporting").await?;
    shop_platform::db::ensure_schema(database, SCHEMA).await?;
    let routes = Routes::new(ReportingServiceServer::new(ReportingApi));
    let names = vec!["shop.reporting.v1.ReportingService"];
    server::serve(listener, Services { routes, names }, server_config, shutdown).await
}
