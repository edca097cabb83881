//! Catalog's settings, each an env var with a default (see README).

use std::net::SocketAddr;

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
