//! Reporting's settings, each an env var with a default (see README).

use shop_platform::config::ListenAddr;

#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Reporting")]
pub struct ReportingConfig {
    /// Where the reporting gRPC server listens. Port 0 lets the OS pick.
    #[arg(id = "reporting-addr", long, env = "SHOP_REPORTING_ADDR", default_value = "127.0.0.1:50055")]
    pub listen_addr: ListenAddr,
    /// Most Postgres connections the reporting pool opens (each stream
    /// consumer holds one more of its own while it consumes).
    #[arg(id = "reporting-db-max-connections", long, env = "SHOP_REPORTING_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
    /// Where reporting reads the catalog event stream.
    #[arg(
        id = "reporting-catalog-url",
        long,
        env = "SHOP_REPORTING_CATALOG_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub catalog_url: String,
    /// Where reporting reads the order event stream.
    #[arg(
        id = "reporting-orders-url",
        long,
        env = "SHOP_REPORTING_ORDERS_URL",
        default_value = "http://127.0.0.1:50054"
    )]
    pub orders_url: String,
    /// Milliseconds to wait for a connection to a stream's service.
    #[arg(
        id = "reporting-connect-timeout-ms",
        long,
        env = "SHOP_REPORTING_CONNECT_TIMEOUT_MS",
        default_value_t = 1_000
    )]
    pub connect_timeout_ms: u64,
    /// Most events applied in one transaction (catching up goes faster in
    /// bigger batches; live events are applied as they come).
    #[arg(id = "reporting-batch-size", long, env = "SHOP_REPORTING_BATCH_SIZE", default_value_t = 500)]
    pub batch_size: usize,
    /// Longest wait, in milliseconds, between attempts to (re)connect a
    /// dropped stream or take over consuming from another replica (the wait
    /// doubles from 100 ms up to this).
    #[arg(id = "reporting-retry-max-ms", long, env = "SHOP_REPORTING_RETRY_MAX_MS", default_value_t = 5_000)]
    pub retry_max_ms: u64,
}
