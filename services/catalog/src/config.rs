//! Catalog's settings, each an env var with a default (see README).

use shop_platform::config::ListenAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct CatalogConfig {
    /// Where the catalog gRPC server listens. Port 0 lets the OS pick.
    #[arg(id = "catalog-addr", long = "catalog-addr", env = "SHOP_CATALOG_ADDR", default_value = "127.0.0.1:50053")]
    pub listen_addr: ListenAddr,
    /// Most Postgres connections the catalog pool opens.
    #[arg(
        id = "catalog-db-max-connections",
        long = "catalog-db-max-connections",
        env = "SHOP_CATALOG_DB_MAX_CONNECTIONS",
        default_value_t = 10
    )]
    pub db_max_connections: u32,
    /// Where this replica keeps its search index, to resume from after a
    /// restart (each replica has its own; two processes cannot share one).
    #[arg(
        id = "catalog-index-dir",
        long = "catalog-index-dir",
        env = "SHOP_CATALOG_INDEX_DIR",
        default_value_os_t = default_index_dir()
    )]
    pub index_dir: PathBuf,
    /// Answers of recent searches kept for the index's current state (0 =
    /// none). Exact: any change to the index (a write, a sale) starts afresh.
    #[arg(
        id = "catalog-search-cache-entries",
        long = "catalog-search-cache-entries",
        env = "SHOP_CATALOG_SEARCH_CACHE_ENTRIES",
        default_value_t = 4096
    )]
    pub search_cache_entries: usize,
}

/// `shop-catalog-index` in the system's temporary directory.
fn default_index_dir() -> PathBuf {
    std::env::temp_dir().join("shop-catalog-index")
}
