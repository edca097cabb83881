//! The gateway's settings, each an env var with a default (see README).

use std::path::PathBuf;
use std::time::Duration;

use shop_platform::config::ListenAddr;
use shop_platform::transport::body_budget::BodyLimits;

#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Gateway")]
pub struct GatewayConfig {
    /// Where clients reach Shop.
    #[arg(id = "gateway-addr", long, env = "SHOP_GATEWAY_ADDR", default_value = "127.0.0.1:50051")]
    pub listen_addr: ListenAddr,
    /// The identity service, as the gateway dials it.
    #[arg(
        id = "gateway-identity-url",
        long,
        env = "SHOP_GATEWAY_IDENTITY_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub identity_url: String,
    /// The catalog service, as the gateway dials it.
    #[arg(
        id = "gateway-catalog-url",
        long,
        env = "SHOP_GATEWAY_CATALOG_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub catalog_url: String,
    /// The cart-order service, as the gateway dials it.
    #[arg(
        id = "gateway-cart-order-url",
        long,
        env = "SHOP_GATEWAY_CART_ORDER_URL",
        default_value = "http://127.0.0.1:50054"
    )]
    pub cart_order_url: String,
    /// The reporting service, as the gateway dials it.
    #[arg(
        id = "gateway-reporting-url",
        long,
        env = "SHOP_GATEWAY_REPORTING_URL",
        default_value = "http://127.0.0.1:50055"
    )]
    pub reporting_url: String,
    /// Longest wait to connect to a backend before the call fails UNAVAILABLE, in milliseconds.
    #[arg(id = "gateway-connect-timeout-ms", long, env = "SHOP_GATEWAY_CONNECT_TIMEOUT_MS", default_value_t = 1_000)]
    pub connect_timeout_ms: u64,
    /// Clock skew allowed when checking a token's `exp`, in seconds.
    #[arg(id = "gateway-jwt-leeway-secs", long, env = "SHOP_GATEWAY_JWT_LEEWAY_SECS", default_value_t = 5)]
    pub jwt_leeway_secs: u64,
    /// How often the gateway re-reads identity's public signing keys, in seconds
    /// (an unknown key id triggers an earlier read).
    #[arg(id = "gateway-key-refresh-secs", long, env = "SHOP_GATEWAY_KEY_REFRESH_SECS", default_value_t = 300)]
    pub key_refresh_secs: u64,
    /// Most HTTP/2 streams (calls) one client connection may have open at
    /// once; more are refused (REFUSED_STREAM).
    #[arg(
        id = "gateway-max-streams-per-connection",
        long,
        env = "SHOP_GATEWAY_MAX_STREAMS_PER_CONNECTION",
        default_value_t = 100
    )]
    pub max_streams_per_connection: u32,
    /// Most connections one client address (an IPv6 client's /64) may hold
    /// at once (0 = no limit; use 0 behind a proxy that hides client
    /// addresses). Keep it a small share of SHOP_MAX_CONNECTIONS (the
    /// default is 1/64 of it), so that a few dozen addresses cannot fill the
    /// table with busy connections; idle ones give way to newcomers anyway.
    #[arg(
        id = "gateway-max-connections-per-addr",
        long,
        env = "SHOP_GATEWAY_MAX_CONNECTIONS_PER_ADDR",
        default_value_t = 64
    )]
    pub max_connections_per_addr: usize,
    /// Most calls one client address may have in flight at once, over all its
    /// connections (0 = no limit); more are RESOURCE_EXHAUSTED.
    #[arg(id = "gateway-max-calls-per-addr", long, env = "SHOP_GATEWAY_MAX_CALLS_PER_ADDR", default_value_t = 256)]
    pub max_calls_per_addr: usize,
    /// Memory that request messages not yet received whole may hold at the
    /// gateway, all clients together, in MiB. A message is decoded only
    /// once whole; past this, an unfinished one waits for room (up to
    /// SHOP_GATEWAY_BODY_IDLE_TIMEOUT_MS) and is then RESOURCE_EXHAUSTED.
    #[arg(
        id = "gateway-unfinished-bodies-mib",
        long,
        env = "SHOP_GATEWAY_UNFINISHED_BODIES_MIB",
        default_value_t = 256
    )]
    pub unfinished_bodies_mib: usize,
    /// The same, for one client connection, in MiB.
    #[arg(
        id = "gateway-unfinished-bodies-per-connection-mib",
        long,
        env = "SHOP_GATEWAY_UNFINISHED_BODIES_PER_CONNECTION_MIB",
        default_value_t = 16
    )]
    pub unfinished_bodies_per_connection_mib: usize,
    /// The same, for one client address (an IPv6 client's /64), in MiB.
    #[arg(
        id = "gateway-unfinished-bodies-per-addr-mib",
        long,
        env = "SHOP_GATEWAY_UNFINISHED_BODIES_PER_ADDR_MIB",
        default_value_t = 32
    )]
    pub unfinished_bodies_per_addr_mib: usize,
    /// Milliseconds a request message may go without a byte arriving before
    /// the call is given up (DEADLINE_EXCEEDED) and what it held freed; also
    /// the longest an unfinished message waits for room in the budget.
    #[arg(
        id = "gateway-body-idle-timeout-ms",
        long,
        env = "SHOP_GATEWAY_BODY_IDLE_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub body_idle_timeout_ms: u64,
    /// Milliseconds a client may take no part of its answer before the call
    /// is cancelled (and, if its stream cannot even be reset, its connection
    /// closed).
    #[arg(id = "gateway-stall-timeout-ms", long, env = "SHOP_GATEWAY_STALL_TIMEOUT_MS", default_value_t = 10_000)]
    pub stall_timeout_ms: u64,
    /// The certificate (PEM, the chain after it) the gateway serves TLS
    /// with; with SHOP_GATEWAY_TLS_KEY_FILE, the gateway speaks only TLS. A
    /// changed file is picked up within seconds, no restart.
    #[arg(id = "gateway-tls-cert-file", long, env = "SHOP_GATEWAY_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key (PEM) of SHOP_GATEWAY_TLS_CERT_FILE.
    #[arg(id = "gateway-tls-key-file", long, env = "SHOP_GATEWAY_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// A CA (PEM): with it, every client must present a certificate this CA
    /// signed (access tokens are still checked on top).
    #[arg(id = "gateway-tls-client-ca-file", long, env = "SHOP_GATEWAY_TLS_CLIENT_CA_FILE")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Origins whose pages may call the gateway with gRPC-Web, comma-separated
    /// (`https://shop.example,http://localhost:8080`); empty: no CORS answers.
    #[arg(id = "gateway-cors-origins", long, env = "SHOP_GATEWAY_CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,
}

impl GatewayConfig {
    /// What unfinished request bodies may hold, from the settings.
    pub fn body_limits(&self) -> anyhow::Result<BodyLimits> {
        const MIB: usize = 1024 * 1024;
        let bytes = |mib: usize, setting: &str| {
            anyhow::ensure!(mib > 0, "{setting} must be at least 1 (MiB)");
            mib.checked_mul(MIB)
                .filter(|bytes| *bytes <= tokio::sync::Semaphore::MAX_PERMITS)
                .ok_or_else(|| anyhow::anyhow!("{setting} is too large"))
        };
        Ok(BodyLimits {
            total_bytes: bytes(self.unfinished_bodies_mib, "SHOP_GATEWAY_UNFINISHED_BODIES_MIB")?,
            per_connection_bytes: bytes(
                self.unfinished_bodies_per_connection_mib,
                "SHOP_GATEWAY_UNFINISHED_BODIES_PER_CONNECTION_MIB",
            )?,
            per_addr_bytes: bytes(self.unfinished_bodies_per_addr_mib, "SHOP_GATEWAY_UNFINISHED_BODIES_PER_ADDR_MIB")?,
            idle: Duration::from_millis(self.body_idle_timeout_ms.max(1)),
        })
    }
}
