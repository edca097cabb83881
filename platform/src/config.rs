//! Settings every service shares. Each field is an env var (`SHOP_*`) with a
//! laptop-friendly default and a doc comment, so `shop --help` lists them all.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// The Postgres server and database all schemas live in.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseConfig {
    /// Postgres connection URL. The database is created if missing (by `shop up`
    /// and `shop serve`); each service keeps its tables in its own schema.
    #[arg(
        id = "database-url",
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/shop",
        hide_env_values = true
    )]
    pub url: SecretString,
    /// Seconds to wait for a free pooled connection before failing the call (UNAVAILABLE).
    #[arg(
        id = "db-acquire-timeout-secs",
        long = "db-acquire-timeout-secs",
        env = "SHOP_DB_ACQUIRE_TIMEOUT_SECS",
        default_value_t = 5
    )]
    pub acquire_timeout_secs: u64,
    /// Longest a single SQL statement may run, in milliseconds (0 = no limit).
    #[arg(
        id = "db-statement-timeout-ms",
        long = "db-statement-timeout-ms",
        env = "SHOP_DB_STATEMENT_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub statement_timeout_ms: u64,
}

impl DatabaseConfig {
    pub fn for_url(url: impl Into<String>) -> Self {
        Self { url: SecretString::from(url.into()), acquire_timeout_secs: 5, statement_timeout_ms: 10_000 }
    }

    pub fn url(&self) -> &str {
        self.url.expose_secret()
    }

    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_secs(self.acquire_timeout_secs)
    }
}

/// How every gRPC server behaves.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerConfig {
    /// Longest any one call may run on a server, in seconds; a shorter client
    /// deadline (grpc-timeout) wins.
    #[arg(
        id = "request-timeout-secs",
        long = "request-timeout-secs",
        env = "SHOP_REQUEST_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub request_timeout_secs: u64,
    /// Most calls served at once on one client connection (0 = no limit).
    #[arg(
        id = "concurrency-per-connection",
        long = "concurrency-per-connection",
        env = "SHOP_CONCURRENCY_PER_CONNECTION",
        default_value_t = 0
    )]
    pub concurrency_per_connection: usize,
    /// Seconds between HTTP/2 keep-alive pings to idle clients (0 = off).
    #[arg(
        id = "http2-keepalive-secs",
        long = "http2-keepalive-secs",
        env = "SHOP_HTTP2_KEEPALIVE_SECS",
        default_value_t = 30
    )]
    pub http2_keepalive_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { request_timeout_secs: 30, concurrency_per_connection: 0, http2_keepalive_secs: 30 }
    }
}

/// The secret that internal calls carry between Shop's own services.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceCredentialsConfig {
    /// Shared secret for service-to-service calls (at least 32 characters).
    /// Backends trust caller identity and serve internal RPCs only to calls
    /// carrying it. `shop up` makes a random one when unset; `shop serve`
    /// requires it.
    #[arg(id = "service-token", long = "service-token", env = "SHOP_SERVICE_TOKEN", hide_env_values = true)]
    pub service_token: Option<SecretString>,
}
