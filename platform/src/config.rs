//! Settings every service shares. Each field is an env var (`SHOP_*`) with a
//! laptop-friendly default and a doc comment, so `shop --help` lists them all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};

/// Where a server listens: `host:port`, the host an IP address or a name
/// (`localhost:50051`, `0.0.0.0:50051`, `[::1]:50051`). Port 0 lets the OS
/// pick. A name is resolved when the server binds, to its first address that
/// can be bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    host: String,
    port: u16,
}

impl ListenAddr {
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Binds the address before returning, so callers can connect at once.
    /// `what` names the server (`cart-order`); a failure names its setting
    /// too (`SHOP_CART_ORDER_ADDR`), since a port in use is fixed there.
    pub async fn bind(&self, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
        use anyhow::Context as _;
        let setting = format!("SHOP_{}_ADDR", what.to_uppercase().replace('-', "_"));
        tokio::net::TcpListener::bind((self.host(), self.port()))
            .await
            .with_context(|| format!("{what} cannot listen on {self} (set by {setting})"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl std::str::FromStr for ListenAddr {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        if let Some((scheme, rest)) = raw.split_once("://") {
            return Err(format!("{raw:?} is a URL; give host:port here ({rest:?}, without {scheme}://)"));
        }
        let (host, port) =
            raw.rsplit_once(':').ok_or_else(|| format!("{raw:?} is not host:port (e.g. 127.0.0.1:50051)"))?;
        let port = port.parse().map_err(|_| format!("{port:?} is not a port number (0-65535)"))?;
        // "[::1]" names an IPv6 address; the brackets are only for the colon.
        let host = match host.strip_prefix('[').and_then(|inner| inner.strip_suffix(']')) {
            Some(ipv6) => {
                ipv6.parse::<std::net::Ipv6Addr>().map_err(|_| format!("{host} is not an IPv6 address"))?.to_string()
            }
            None if host.contains(':') => {
                return Err(format!("{raw:?}: write an IPv6 address in brackets, [::1]:50051"));
            }
            None => host.to_owned(),
        };
        let is_name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':');
        if host.is_empty() || !host.chars().all(is_name_char) {
            return Err(format!("{host:?} is not a host name or IP address"));
        }
        Ok(ListenAddr { host, port })
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl From<std::net::SocketAddr> for ListenAddr {
    fn from(addr: std::net::SocketAddr) -> Self {
        ListenAddr { host: addr.ip().to_string(), port: addr.port() }
    }
}

/// The Postgres server and database all schemas live in.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseConfig {
    /// Postgres connection URL. The database is created if missing (by `shop up`
    /// and `shop serve`); each service keeps its tables in its own schema.
    #[arg(
        id = "database-url",
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/shop",
        hide_env_values = true
    )]
    pub url: SecretString,
    /// Seconds to wait for a free pooled connection before failing the call (UNAVAILABLE).
    #[arg(id = "db-acquire-timeout-secs", long, env = "SHOP_DB_ACQUIRE_TIMEOUT_SECS", default_value_t = 5)]
    pub acquire_timeout_secs: u64,
    /// Longest a single SQL statement may run, in milliseconds (0 = no limit).
    #[arg(id = "db-statement-timeout-ms", long, env = "SHOP_DB_STATEMENT_TIMEOUT_MS", default_value_t = 10_000)]
    pub statement_timeout_ms: u64,
    /// How long a starting service keeps retrying to reach Postgres (with
    /// backoff) before it gives up, in seconds: services may start before
    /// their database is up.
    #[arg(id = "db-connect-retry-secs", long, env = "SHOP_DB_CONNECT_RETRY_SECS", default_value_t = 30)]
    pub connect_retry_secs: u64,
    /// A statement running longer than this many milliseconds is logged as a
    /// warning with its SQL (0 = never).
    #[arg(id = "db-slow-statement-ms", long, env = "SHOP_DB_SLOW_STATEMENT_MS", default_value_t = 1_000)]
    pub slow_statement_ms: u64,
    /// identity's own Postgres (database created if missing); unset: DATABASE_URL.
    #[arg(id = "identity-database-url", long, env = "SHOP_IDENTITY_DATABASE_URL", hide_env_values = true)]
    pub identity_url: Option<SecretString>,
    /// catalog's own Postgres; unset: DATABASE_URL.
    #[arg(id = "catalog-database-url", long, env = "SHOP_CATALOG_DATABASE_URL", hide_env_values = true)]
    pub catalog_url: Option<SecretString>,
    /// cart-order's own Postgres (its schemas cart and orders); unset: DATABASE_URL.
    #[arg(id = "cart-order-database-url", long, env = "SHOP_CART_ORDER_DATABASE_URL", hide_env_values = true)]
    pub cart_order_url: Option<SecretString>,
    /// reporting's own Postgres; unset: DATABASE_URL.
    #[arg(id = "reporting-database-url", long, env = "SHOP_REPORTING_DATABASE_URL", hide_env_values = true)]
    pub reporting_url: Option<SecretString>,
}

impl DatabaseConfig {
    pub fn for_url(url: impl Into<String>) -> Self {
        Self {
            url: SecretString::from(url.into()),
            acquire_timeout_secs: 5,
            statement_timeout_ms: 10_000,
            connect_retry_secs: 0,
            slow_statement_ms: 1_000,
            identity_url: None,
            catalog_url: None,
            cart_order_url: None,
            reporting_url: None,
        }
    }

    /// The settings `service` (`identity`, `catalog`, `cart-order`,
    /// `reporting`) connects with: its own URL when one is set, else
    /// DATABASE_URL's.
    pub fn for_service(&self, service: &str) -> DatabaseConfig {
        let own = match service {
            "identity" => &self.identity_url,
            "catalog" => &self.catalog_url,
            "cart-order" => &self.cart_order_url,
            "reporting" => &self.reporting_url,
            _ => &None,
        };
        let mut config = self.clone();
        if let Some(url) = own {
            config.url = url.clone();
        }
        config
    }

    pub fn url(&self) -> &str {
        self.url.expose_secret()
    }

    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_secs(self.acquire_timeout_secs)
    }

    pub fn connect_retry(&self) -> Duration {
        Duration::from_secs(self.connect_retry_secs)
    }
}

/// How every gRPC server behaves, and what it allows one client connection.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Limits (every server)")]
pub struct ServerConfig {
    /// Longest any one call may run on a server, sending its answer
    /// included, in seconds; a shorter client deadline (grpc-timeout) wins.
    /// The event streams are bounded only by their client.
    #[arg(id = "request-timeout-secs", long, env = "SHOP_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Most calls served at once on one client connection (0 = no limit);
    /// more wait their turn.
    #[arg(id = "concurrency-per-connection", long, env = "SHOP_CONCURRENCY_PER_CONNECTION", default_value_t = 0)]
    pub concurrency_per_connection: usize,
    /// Seconds between HTTP/2 keep-alive pings to idle clients (0 = off); a
    /// client that does not answer one within 20 s is disconnected.
    #[arg(id = "http2-keepalive-secs", long, env = "SHOP_HTTP2_KEEPALIVE_SECS", default_value_t = 30)]
    pub http2_keepalive_secs: u64,
    /// Most HTTP/2 streams (calls) open at once on one connection to a
    /// backend service; more are refused (REFUSED_STREAM). Every call the
    /// gateway forwards to a backend shares one connection, so keep it high.
    /// The gateway's own limit is SHOP_GATEWAY_MAX_STREAMS_PER_CONNECTION.
    #[arg(id = "max-streams-per-connection", long, env = "SHOP_MAX_STREAMS_PER_CONNECTION", default_value_t = 1000)]
    pub max_streams_per_connection: u32,
    /// Milliseconds a new connection has to send the HTTP/2 preface before it
    /// is closed.
    #[arg(id = "handshake-timeout-ms", long, env = "SHOP_HANDSHAKE_TIMEOUT_MS", default_value_t = 5_000)]
    pub handshake_timeout_ms: u64,
    /// Seconds a connection may stay open with no call in flight before it is
    /// closed (0 = no limit); clients reconnect when they next call.
    #[arg(id = "idle-timeout-secs", long, env = "SHOP_IDLE_TIMEOUT_SECS", default_value_t = 300)]
    pub idle_timeout_secs: u64,
    /// Connections one client address may hold at once to a backend service
    /// (0 = no limit). The gateway's own limit is
    /// SHOP_GATEWAY_MAX_CONNECTIONS_PER_ADDR.
    #[arg(id = "max-connections-per-addr", long, env = "SHOP_MAX_CONNECTIONS_PER_ADDR", default_value_t = 0)]
    pub max_connections_per_addr: usize,
    /// Connections one server holds at once, from everyone together; past it
    /// a new connection is closed as soon as it is accepted (0 = no limit).
    #[arg(id = "max-connections", long, env = "SHOP_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Largest header block (metadata) a call may carry, in bytes: above it
    /// HTTP/2 itself refuses the call. Backends keep HTTP/2's usual 16 KiB;
    /// the gateway takes more, to answer oversized tokens with a gRPC status.
    #[arg(skip = DEFAULT_MAX_HEADER_LIST_BYTES)]
    pub max_header_list_bytes: u32,
    /// Milliseconds a stopping server (SIGTERM, Ctrl-C) keeps answering
    /// while its health says NOT_SERVING, before it tells its clients to go
    /// away: long enough for the balancers of its peers, which watch that
    /// health, to stop sending it calls.
    #[arg(id = "shutdown-notice-ms", long, env = "SHOP_SHUTDOWN_NOTICE_MS", default_value_t = 1_000)]
    pub shutdown_notice_ms: u64,
    /// Seconds a stopping server then gives the calls in flight to finish
    /// (as long as the longest call may run, SHOP_REQUEST_TIMEOUT_SECS);
    /// calls still running after it are cut and the server exits all the
    /// same (Kubernetes' terminationGracePeriodSeconds must exceed the
    /// notice, this and preStop's wait together).
    #[arg(id = "shutdown-grace-secs", long, env = "SHOP_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
}

/// HTTP/2's customary limit on a header block (hyper's default too).
pub const DEFAULT_MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            request_timeout_secs: 30,
            concurrency_per_connection: 0,
            http2_keepalive_secs: 30,
            max_streams_per_connection: 1000,
            handshake_timeout_ms: 5_000,
            idle_timeout_secs: 300,
            max_connections_per_addr: 0,
            max_connections: 4096,
            max_header_list_bytes: DEFAULT_MAX_HEADER_LIST_BYTES,
            shutdown_notice_ms: 1_000,
            shutdown_grace_secs: 30,
        }
    }
}

impl ServerConfig {
    pub fn connection_limits(&self) -> crate::transport::connection::ConnectionLimits {
        crate::transport::connection::ConnectionLimits {
            handshake: Duration::from_millis(self.handshake_timeout_ms.max(1)),
            idle: Duration::from_secs(self.idle_timeout_secs),
            per_addr: self.max_connections_per_addr,
            total: self.max_connections,
        }
    }
}

/// The secret that internal calls carry between Shop's own services.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Service credential")]
pub struct ServiceCredentialsConfig {
    /// Shared secret for service-to-service calls (at least 32 characters).
    /// Backends trust caller identity and serve internal RPCs only to calls
    /// carrying it. `shop up` makes a random one when unset; `shop serve`
    /// requires it.
    #[arg(id = "service-token", long, env = "SHOP_SERVICE_TOKEN", hide_env_values = true)]
    pub service_token: Option<SecretString>,
    /// A file holding the service token (Docker and Kubernetes secrets), in
    /// place of SHOP_SERVICE_TOKEN.
    #[arg(id = "service-token-file", long, env = "SHOP_SERVICE_TOKEN_FILE")]
    pub service_token_file: Option<PathBuf>,
    #[command(flatten)]
    pub internal_tls: InternalTlsConfig,
}

impl ServiceCredentialsConfig {
    /// The token, from the variable or from the file.
    pub fn token(&self) -> anyhow::Result<Option<SecretString>> {
        secret(self.service_token.as_ref(), self.service_token_file.as_deref(), "SHOP_SERVICE_TOKEN")
    }

    /// Internal TLS, when its three files are set.
    pub fn internal_tls(&self) -> anyhow::Result<Option<crate::transport::tls::InternalTls>> {
        self.internal_tls.files()
    }
}

/// Mutual TLS between Shop's services.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Internal TLS")]
pub struct InternalTlsConfig {
    /// Mutual TLS between services: the CA (PEM) that signed every service's
    /// certificate. With the two below, every backend serves only TLS to
    /// clients presenting a certificate from this CA, and every internal call
    /// checks its server's. `shop certs` makes a throwaway set.
    #[arg(id = "internal-tls-ca-file", long, env = "SHOP_INTERNAL_TLS_CA_FILE")]
    pub internal_tls_ca_file: Option<PathBuf>,
    /// This process's certificate (PEM) for internal TLS: presented by its
    /// servers and by its calls to other services, so it must name every
    /// host the others dial it by.
    #[arg(id = "internal-tls-cert-file", long, env = "SHOP_INTERNAL_TLS_CERT_FILE")]
    pub internal_tls_cert_file: Option<PathBuf>,
    /// The private key (PEM) of SHOP_INTERNAL_TLS_CERT_FILE.
    #[arg(id = "internal-tls-key-file", long, env = "SHOP_INTERNAL_TLS_KEY_FILE")]
    pub internal_tls_key_file: Option<PathBuf>,
    /// The names Shop's services' certificates are issued for,
    /// comma-separated: a backend takes a client certificate only when one
    /// of its DNS names is one of these, or a name under one
    /// (`catalog.shop.svc`), so a certificate the same CA made for an end
    /// user is not taken for a service.
    #[arg(
        id = "internal-tls-peer-names",
        long,
        env = "SHOP_INTERNAL_TLS_PEER_NAMES",
        default_value = "gateway,identity,catalog,cart-order,reporting"
    )]
    pub internal_tls_peer_names: String,
}

impl InternalTlsConfig {
    /// The files, when all three are set.
    pub fn files(&self) -> anyhow::Result<Option<crate::transport::tls::InternalTls>> {
        crate::transport::tls::InternalTls::from_settings(
            self.internal_tls_ca_file.as_deref(),
            self.internal_tls_cert_file.as_deref(),
            self.internal_tls_key_file.as_deref(),
            &self.internal_tls_peer_names,
        )
    }
}

/// A secret given either inline (`name`) or as a file (`name_FILE`), as
/// container platforms mount them; surrounding white space in the file is
/// dropped. Both at once is refused.
pub fn secret(inline: Option<&SecretString>, file: Option<&Path>, name: &str) -> anyhow::Result<Option<SecretString>> {
    match (inline, file) {
        (Some(_), Some(_)) => anyhow::bail!("set {name} or {name}_FILE, not both"),
        (Some(inline), None) => Ok(Some(inline.clone())),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {name}_FILE ({})", path.display()))?;
            Ok(Some(SecretString::from(text.trim().to_owned())))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_take_names_ips_and_bracketed_ipv6() {
        for (raw, host, port) in [
            ("localhost:50051", "localhost", 50051),
            ("0.0.0.0:0", "0.0.0.0", 0),
            ("[::1]:8080", "::1", 8080),
            ("shop-gateway.default.svc:50051", "shop-gateway.default.svc", 50051),
        ] {
            let addr: ListenAddr = raw.parse().unwrap();
            assert_eq!((addr.host(), addr.port()), (host, port), "{raw}");
            assert_eq!(addr.to_string(), raw);
        }
        for raw in ["localhost", ":50051", "localhost:99999", "::1:80", "local host:80", "[nope]:80", "a/b:1"] {
            assert!(raw.parse::<ListenAddr>().is_err(), "{raw}");
        }
        let url = "http://127.0.0.1:50061".parse::<ListenAddr>().unwrap_err();
        assert!(url.contains("is a URL") && url.contains("\"127.0.0.1:50061\""), "{url}");
    }

    #[test]
    fn a_secret_comes_from_its_variable_or_its_file_but_not_both() {
        let path = std::env::temp_dir().join(format!("shop-secret-{}", std::process::id()));
        std::fs::write(&path, "from-a-file\n").unwrap();
        let from_file = secret(None, Some(&path), "X").unwrap().unwrap();
        assert_eq!(from_file.expose_secret(), "from-a-file");
        let inline = SecretString::from("inline");
        assert_eq!(secret(Some(&inline), None, "X").unwrap().unwrap().expose_secret(), "inline");
        assert!(secret(Some(&inline), Some(&path), "X").is_err());
        assert!(secret(None, None, "X").unwrap().is_none());
        assert!(secret(None, Some(Path::new("/no/such/file")), "X").is_err());
        std::fs::remove_file(path).unwrap();
    }
}
