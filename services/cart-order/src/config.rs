//! Cart-order's settings, each an env var with a default (see README).

use shop_platform::config::ListenAddr;

use crate::faults::Faults;

#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Cart-order")]
pub struct CartOrderConfig {
    /// Where the cart-order gRPC server listens. Port 0 lets the OS pick.
    #[arg(id = "cart-order-addr", long, env = "SHOP_CART_ORDER_ADDR", default_value = "127.0.0.1:50054")]
    pub listen_addr: ListenAddr,
    /// Most Postgres connections each of the two cart-order pools (schemas
    /// `cart` and `orders`) opens.
    #[arg(
        id = "cart-order-db-max-connections",
        long,
        env = "SHOP_CART_ORDER_DB_MAX_CONNECTIONS",
        default_value_t = 10
    )]
    pub db_max_connections: u32,
    /// Where cart-order reaches catalog (product lookups, stock reservations).
    #[arg(
        id = "cart-order-catalog-url",
        long,
        env = "SHOP_CART_ORDER_CATALOG_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub catalog_url: String,
    /// Where checkout reaches OrderPlacementService. Unset: this server itself.
    #[arg(id = "cart-order-orders-url", long, env = "SHOP_CART_ORDER_ORDERS_URL")]
    pub orders_url: Option<String>,
    /// Deadline of one call to another service, in milliseconds (a shorter
    /// deadline of the incoming call wins).
    #[arg(id = "cart-order-call-timeout-ms", long, env = "SHOP_CART_ORDER_CALL_TIMEOUT_MS", default_value_t = 5_000)]
    pub call_timeout_ms: u64,
    /// Milliseconds to wait for a connection to another service.
    #[arg(
        id = "cart-order-connect-timeout-ms",
        long,
        env = "SHOP_CART_ORDER_CONNECT_TIMEOUT_MS",
        default_value_t = 1_000
    )]
    pub connect_timeout_ms: u64,
    /// Retries of an idempotent call that found its service UNAVAILABLE
    /// (exponential backoff with jitter from 50 ms; 0 = no retry).
    #[arg(id = "cart-order-call-retries", long, env = "SHOP_CART_ORDER_CALL_RETRIES", default_value_t = 3)]
    pub call_retries: usize,
    /// How often the recovery loop looks for orders a crash or an outage left
    /// half-done, in milliseconds.
    #[arg(
        id = "cart-order-recovery-interval-ms",
        long,
        env = "SHOP_CART_ORDER_RECOVERY_INTERVAL_MS",
        default_value_t = 5_000
    )]
    pub recovery_interval_ms: u64,
    /// A PENDING order older than this many milliseconds was abandoned by a
    /// crash: recovery marks it FAILED and gives its stock back. Keep it well
    /// above the call timeout.
    #[arg(
        id = "cart-order-pending-timeout-ms",
        long,
        env = "SHOP_CART_ORDER_PENDING_TIMEOUT_MS",
        default_value_t = 60_000
    )]
    pub pending_timeout_ms: u64,
    /// Test-only fault injection; never set from the environment.
    #[arg(skip)]
    pub faults: Faults,
}
