//! The gateway's settings, each an env var with a default (see README).

use std::net::SocketAddr;

#[derive(Debug, Clone, clap::Args)]
pub struct GatewayConfig {
    /// Where clients reach Shop.
    #[arg(id = "gateway-addr", long = "gateway-addr", env = "SHOP_GATEWAY_ADDR", default_value = "127.0.0.1:50051")]
    pub listen_addr: SocketAddr,
    /// The identity service, as the gateway dials it.
    #[arg(
        id = "gateway-identity-url",
        long = "gateway-identity-url",
        env = "SHOP_GATEWAY_IDENTITY_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub identity_url: String,
    /// The catalog service, as the gateway dials it.
    #[arg(
        id = "gateway-catalog-url",
        long = "gateway-catalog-url",
        env = "SHOP_GATEWAY_CATALOG_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub catalog_url: String,
    /// The cart-order service, as the gateway dials it.
    #[arg(
        id = "gateway-cart-order-url",
        long = "gateway-cart-order-url",
        env = "SHOP_GATEWAY_CART_ORDER_URL",
        default_value = "http://127.0.0.1:50054"
    )]
    pub cart_order_url: String,
    /// The reporting service, as the gateway dials it.
    #[arg(
        id = "gateway-reporting-url",
        long = "gateway-reporting-url",
        env = "SHOP_GATEWAY_REPORTING_URL",
        default_value = "http://127.0.0.1:50055"
    )]
    pub reporting_url: String,
    /// Longest wait to connect to a backend before the call fails UNAVAILABLE, in milliseconds.
    #[arg(
        id = "gateway-connect-timeout-ms",
        long = "gateway-connect-timeout-ms",
        env = "SHOP_GATEWAY_CONNECT_TIMEOUT_MS",
        default_value_t = 1_000
    )]
    pub connect_timeout_ms: u64,
    /// Clock skew allowed when checking a token's `exp`, in seconds.
    #[arg(
        id = "gateway-jwt-leeway-secs",
        long = "gateway-jwt-leeway-secs",
        env = "SHOP_GATEWAY_JWT_LEEWAY_SECS",
        default_value_t = 5
    )]
    pub jwt_leeway_secs: u64,
    /// How often the gateway re-reads identity's public signing keys, in seconds
    /// (an unknown key id triggers an earlier read).
    #[arg(
        id = "gateway-key-refresh-secs",
        long = "gateway-key-refresh-secs",
        env = "SHOP_GATEWAY_KEY_REFRESH_SECS",
        default_value_t = 300
    )]
    pub key_refresh_secs: u64,
}
