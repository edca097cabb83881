//! Catalog's settings, each an env var with a default (see README).

use shop_platform::config::ListenAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Catalog")]
pub struct CatalogConfig {
    /// Where the catalog gRPC server listens. Port 0 lets the OS pick.
    #[arg(id = "catalog-addr", long, env = "SHOP_CATALOG_ADDR", default_value = "127.0.0.1:50053")]
    pub listen_addr: ListenAddr,
    /// Most Postgres connections the catalog pool opens.
    #[arg(id = "catalog-db-max-connections", long, env = "SHOP_CATALOG_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
    /// Where this replica keeps its search index, to resume from after a
    /// restart (each replica has its own; two processes cannot share one).
    #[arg(
        id = "catalog-index-dir",
        long,
        env = "SHOP_CATALOG_INDEX_DIR",
        default_value_os_t = default_index_dir()
    )]
    pub index_dir: PathBuf,
    /// Answers of recent searches kept for the index's current state (0 =
    /// none). Exact: any change to the index (a write, a sale) starts afresh.
    #[arg(
        id = "catalog-search-cache-entries",
        long,
        env = "SHOP_CATALOG_SEARCH_CACHE_ENTRIES",
        default_value_t = 4096
    )]
    pub search_cache_entries: usize,
    /// How deep listings page: `page × page_size` above this is OUT_OF_RANGE
    /// (a page past the last product is still an empty page).
    #[arg(id = "catalog-max-listing-depth", long, env = "SHOP_CATALOG_MAX_LISTING_DEPTH", default_value_t = 10_000)]
    pub max_listing_depth: u32,
    /// Index searches run at once (0 = one per CPU core); more wait briefly
    /// or are refused with RESOURCE_EXHAUSTED.
    #[arg(id = "catalog-search-concurrency", long, env = "SHOP_CATALOG_SEARCH_CONCURRENCY", default_value_t = 0)]
    pub search_concurrency: usize,
    /// Listings read from deep in Postgres (past the first 1,000 products)
    /// at once (0 = one per CPU core); more wait briefly or are refused.
    #[arg(
        id = "catalog-deep-listing-concurrency",
        long,
        env = "SHOP_CATALOG_DEEP_LISTING_CONCURRENCY",
        default_value_t = 0
    )]
    pub deep_listing_concurrency: usize,
    /// Calls that may wait (at most a second) for a search or deep-listing
    /// turn; the next is refused at once.
    #[arg(id = "catalog-expensive-call-queue", long, env = "SHOP_CATALOG_EXPENSIVE_CALL_QUEUE", default_value_t = 64)]
    pub expensive_call_queue: usize,
    /// Largest product picture accepted, in bytes (the gateway's 4 MiB
    /// message cap bounds it too).
    #[arg(id = "catalog-image-max-bytes", long, env = "SHOP_CATALOG_IMAGE_MAX_BYTES", default_value_t = 3 << 20)]
    pub image_max_bytes: usize,
    /// Most pixels a product picture may have, checked from its header
    /// before it is decoded (a picture decodes to up to 8 bytes a pixel).
    #[arg(id = "catalog-image-max-pixels", long, env = "SHOP_CATALOG_IMAGE_MAX_PIXELS", default_value_t = 16_777_216)]
    pub image_max_pixels: u64,
    /// Pictures decoded at once (0 = one per CPU core); more wait their turn.
    #[arg(id = "catalog-image-concurrency", long, env = "SHOP_CATALOG_IMAGE_CONCURRENCY", default_value_t = 0)]
    pub image_concurrency: usize,
}

impl CatalogConfig {
    /// Where this replica keeps its index: SHOP_CATALOG_INDEX_DIR as given,
    /// or, left at its default, a directory of the database's own
    /// (`…/shop-catalog-index/<host>-<port>-<database>`), so two suites on
    /// two databases on one machine do not reach for one index.
    pub fn index_dir_for(&self, database: &shop_platform::config::DatabaseConfig) -> PathBuf {
        if self.index_dir != default_index_dir() {
            return self.index_dir.clone();
        }
        let Ok(options) = shop_platform::storage::db::connect_options(database) else {
            return self.index_dir.clone();
        };
        let name =
            format!("{}-{}-{}", options.get_host(), options.get_port(), options.get_database().unwrap_or("postgres"));
        let name: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') { c } else { '_' })
            .collect();
        self.index_dir.join(name)
    }

    /// `configured`, or one per CPU core when it is 0.
    pub fn concurrency(configured: usize) -> usize {
        if configured > 0 {
            return configured;
        }
        std::thread::available_parallelism().map_or(2, usize::from)
    }
}

/// `shop-catalog-index` in the system's temporary directory.
fn default_index_dir() -> PathBuf {
    std::env::temp_dir().join("shop-catalog-index")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;
    use shop_platform::config::DatabaseConfig;

    #[derive(clap::Parser)]
    struct Args {
        #[command(flatten)]
        catalog: CatalogConfig,
    }

    #[test]
    fn the_default_index_dir_is_the_databases_own_and_a_given_one_is_kept() {
        let default = Args::parse_from(["test"]).catalog;
        let one = default.index_dir_for(&DatabaseConfig::for_url("postgres://postgres@127.0.0.1:5432/shop"));
        let other = default.index_dir_for(&DatabaseConfig::for_url("postgres://postgres@127.0.0.1:5432/shop_b"));
        assert_ne!(one, other);
        assert!(one.ends_with("127.0.0.1-5432-shop"), "{}", one.display());
        let given = Args::parse_from(["test", "--catalog-index-dir", "/var/lib/shop/index"]).catalog;
        let kept = given.index_dir_for(&DatabaseConfig::for_url("postgres://postgres@127.0.0.1:5432/shop"));
        assert_eq!(kept, PathBuf::from("/var/lib/shop/index"));
    }
}
