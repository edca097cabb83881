//! Shop's one binary: `shop up` runs every service and the gateway in one
//! process (each on its own port, talking real gRPC), `shop serve <service>`
//! runs one alone, `shop create-admin` makes the first admin. This crate only
//! wires the service crates together; tests call [`up`] exactly as `shop up` does.

pub mod bench;
pub mod certs;
pub mod cli;
mod private_file;
mod secrets;

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context as _;
use shop_cart_order::CartOrderConfig;
use shop_catalog::CatalogConfig;
use shop_gateway::GatewayConfig;
use shop_identity::IdentityConfig;
use shop_platform::auth::ServiceCredentials;
use shop_platform::config::{DatabaseConfig, ListenAddr, ServerConfig, ServiceCredentialsConfig};
use shop_platform::storage::db::Schema;
use shop_platform::storage::files::FileStoreConfig;
use shop_platform::transport::server::{Launch, Running};
use shop_reporting::ReportingConfig;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Every setting of every service, as env vars (see README) or flags.
#[derive(Debug, Clone, clap::Args)]
pub struct SuiteConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub server: ServerConfig,
    #[command(flatten)]
    pub credentials: ServiceCredentialsConfig,
    #[command(flatten)]
    pub identity: IdentityConfig,
    #[command(flatten)]
    pub catalog: CatalogConfig,
    #[command(flatten)]
    pub cart_order: CartOrderConfig,
    #[command(flatten)]
    pub reporting: ReportingConfig,
    #[command(flatten)]
    pub gateway: GatewayConfig,
    #[command(flatten)]
    pub files: FileStoreConfig,
    #[command(flatten)]
    pub metrics: shop_platform::observability::metrics::MetricsConfig,
}

impl SuiteConfig {
    /// Defaults (and whatever `SHOP_*` env is set), as `shop up` would read them.
    pub fn from_env() -> anyhow::Result<Self> {
        #[derive(clap::Parser)]
        struct Standalone {
            #[command(flatten)]
            suite: SuiteConfig,
        }
        Ok(<Standalone as clap::Parser>::try_parse_from(["shop"])?.suite)
    }

    /// For tests: every server on a free port, the given database, cheap
    /// password hashing and no rate limits (tests that need them set them).
    pub fn for_tests(database_url: &str) -> anyhow::Result<Self> {
        let mut config = Self::from_env()?;
        config.database = DatabaseConfig::for_url(database_url);
        let any_port: ListenAddr = "127.0.0.1:0".parse().map_err(anyhow::Error::msg)?;
        config.identity.listen_addr = any_port.clone();
        config.catalog.listen_addr = any_port.clone();
        config.cart_order.listen_addr = any_port.clone();
        config.reporting.listen_addr = any_port.clone();
        config.gateway.listen_addr = any_port;
        config.identity.password_hash.argon2_memory_kib = 256;
        config.identity.password_hash.argon2_iterations = 1;
        config.identity.login_per_addr_per_min = 0;
        config.identity.login_failures_per_account_addr = 0;
        config.identity.login_failures_per_account = 0;
        config.identity.register_per_addr_per_min = 0;
        config.identity.register_per_username_per_min = 0;
        config.gateway.jwt_leeway_secs = 0;
        // Tests stop and restart servers often; a tenth of a second still
        // lets a peer's balancer hear NOT_SERVING before the GOAWAY.
        config.server.shutdown_notice_ms = 100;
        // Each test's pictures apart: keys repeat from one database to the next.
        let database_name = database_url.rsplit('/').next().unwrap_or("shop");
        config.files.location =
            std::env::temp_dir().join("shop-files-tests").join(database_name).to_string_lossy().into_owned();
        for pool in [
            &mut config.identity.db_max_connections,
            &mut config.catalog.db_max_connections,
            &mut config.cart_order.db_max_connections,
            &mut config.reporting.db_max_connections,
        ] {
            *pool = 4;
        }
        Ok(config)
    }

    fn credentials_or_random(&self) -> anyhow::Result<ServiceCredentials> {
        let credentials = match self.credentials.token()? {
            Some(token) => ServiceCredentials::new(token)?,
            None => ServiceCredentials::random(),
        };
        credentials.with_internal_tls(self.credentials.internal_tls()?)
    }

    fn required_credentials(&self) -> anyhow::Result<ServiceCredentials> {
        let token = self.credentials.token()?.context(
            "SHOP_SERVICE_TOKEN (or SHOP_SERVICE_TOKEN_FILE) must be set when services run apart (the same value for all of them)",
        )?;
        ServiceCredentials::new(token)?.with_internal_tls(self.credentials.internal_tls()?)
    }
}

/// The running suite: where each server listens, and their tasks.
pub struct Suite {
    pub gateway_addr: SocketAddr,
    pub identity_addr: SocketAddr,
    pub catalog_addr: SocketAddr,
    pub cart_order_addr: SocketAddr,
    pub reporting_addr: SocketAddr,
    tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
    stop: CancellationToken,
    /// One per server, children of `stop`, so one server can be stopped alone.
    service_stops: Vec<(&'static str, CancellationToken)>,
}

impl Suite {
    /// Stops one server (draining its calls) and waits until it has stopped,
    /// leaving the others running: how tests take a service down.
    pub async fn stop_service(&mut self, name: &str) -> anyhow::Result<()> {
        let (_, stop) = self.service_stops.iter().find(|(service, _)| *service == name).context("no such service")?;
        stop.cancel();
        let index = self.tasks.iter().position(|(service, _)| *service == name).context("service already stopped")?;
        let (_, task) = self.tasks.remove(index);
        task.await.context("server panicked")?
    }

    /// Waits until every server has stopped. One server failing (or stopping
    /// before shutdown was asked for) stops the others: a half-running suite
    /// is worse than a stopped one. The first failure is returned.
    pub async fn wait(self) -> anyhow::Result<()> {
        let mut servers = tokio::task::JoinSet::new();
        for (name, task) in self.tasks {
            servers.spawn(async move { (name, task.await) });
        }
        let mut outcome = Ok(());
        while let Some(joined) = servers.join_next().await {
            let (name, result) = joined.context("server watcher panicked")?;
            let result = result.with_context(|| format!("{name} panicked")).and_then(|served| served);
            let failure = match result {
                Err(error) => Some(error.context(format!("{name} failed"))),
                Ok(()) if !self.stop.is_cancelled() => Some(anyhow::anyhow!("{name} stopped unexpectedly")),
                Ok(()) => None,
            };
            if let Some(failure) = failure {
                tracing::error!(error = format!("{failure:#}"), "stopping the suite");
                if outcome.is_ok() {
                    outcome = Err(failure);
                }
            }
            self.stop.cancel();
        }
        outcome
    }
}

/// Starts the whole suite in this process; returns once every port is bound.
/// All servers stop (draining in-flight calls) when `shutdown` resolves.
pub async fn up(config: SuiteConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<Suite> {
    let stop = CancellationToken::new();
    let on_stop = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        on_stop.cancel();
    });
    // A failure part-way stops the servers already started.
    let stop_on_error = stop.clone().drop_guard();
    let credentials = config.credentials_or_random()?;
    // Each service on its own database when one is set (the same one by default).
    let databases: Vec<(&str, DatabaseConfig)> =
        DATABASE_OWNERS.iter().map(|&service| (service, config.database.for_service(service))).collect();
    ensure_databases(databases.iter().map(|(_, database)| database)).await?;
    let database_of = |name: &str| {
        databases.iter().find(|(service, _)| *service == name).map_or(&config.database, |(_, database)| database)
    };
    let service_stops: Vec<(&'static str, CancellationToken)> =
        ["identity", "catalog", "cart-order", "reporting", "gateway"].map(|name| (name, stop.child_token())).into();
    let stop_of = |name: &str| {
        service_stops.iter().find(|(service, _)| *service == name).map(|(_, token)| token.clone().cancelled_owned())
    };
    let launch = |name: &str| -> anyhow::Result<Launch<'_>> {
        let stop = stop_of(name).with_context(|| format!("{name} stop"))?;
        Ok(Launch {
            database: database_of(name),
            server: &config.server,
            credentials: credentials.clone(),
            shutdown: Box::pin(stop),
        })
    };

    let identity = shop_identity::start(&config.identity, launch("identity")?).await?;
    let catalog = shop_catalog::start(&config.catalog, &config.files, launch("catalog")?).await?;
    // In one process cart-order dials the port catalog really bound.
    let mut cart_order_config = config.cart_order.clone();
    cart_order_config.catalog_url = format!("http://{}", catalog.addr);
    let cart_order = shop_cart_order::start(&cart_order_config, launch("cart-order")?).await?;
    // In one process reporting reads the streams where they really are.
    let mut reporting_config = config.reporting.clone();
    reporting_config.catalog_url = format!("http://{}", catalog.addr);
    reporting_config.orders_url = format!("http://{}", cart_order.addr);
    let reporting = shop_reporting::start(&reporting_config, launch("reporting")?).await?;

    // In one process the gateway dials the ports the services really bound.
    let mut gateway_config = config.gateway.clone();
    gateway_config.identity_url = format!("http://{}", identity.addr);
    gateway_config.catalog_url = format!("http://{}", catalog.addr);
    gateway_config.cart_order_url = format!("http://{}", cart_order.addr);
    gateway_config.reporting_url = format!("http://{}", reporting.addr);
    let gateway = shop_gateway::start(
        &gateway_config,
        &config.files,
        &config.server,
        credentials,
        stop_of("gateway").context("gateway stop")?,
    )
    .await?;

    // Ready means ready: catalog's search index is built before `up` returns.
    let mut catalog = catalog;
    catalog.wait_ready().await;

    let suite = Suite {
        gateway_addr: gateway.addr,
        identity_addr: identity.addr,
        catalog_addr: catalog.addr,
        cart_order_addr: cart_order.addr,
        reporting_addr: reporting.addr,
        tasks: vec![
            ("gateway", gateway.task),
            ("identity", identity.task),
            ("catalog", catalog.task),
            ("cart-order", cart_order.task),
            ("reporting", reporting.task),
        ],
        stop: stop.clone(),
        service_stops,
    };
    stop_on_error.disarm();
    Ok(suite)
}

/// The services `shop serve` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceName {
    Identity,
    Catalog,
    CartOrder,
    Reporting,
    Gateway,
}

impl ServiceName {
    /// As `shop serve` spells it.
    pub fn name(self) -> &'static str {
        match self {
            ServiceName::Identity => "identity",
            ServiceName::Catalog => "catalog",
            ServiceName::CartOrder => "cart-order",
            ServiceName::Reporting => "reporting",
            ServiceName::Gateway => "gateway",
        }
    }
}

/// Runs one service alone, configured from the environment.
pub async fn serve(
    service: ServiceName,
    config: SuiteConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let credentials = config.required_credentials()?;
    let database = config.database.for_service(service.name());
    if service != ServiceName::Gateway {
        shop_platform::storage::db::ensure_database(&database).await?;
    }
    let launch = Launch { database: &database, server: &config.server, credentials, shutdown: Box::pin(shutdown) };
    match service {
        ServiceName::Identity => shop_identity::start(&config.identity, launch).await,
        ServiceName::Catalog => shop_catalog::start(&config.catalog, &config.files, launch).await,
        ServiceName::CartOrder => shop_cart_order::start(&config.cart_order, launch).await,
        ServiceName::Reporting => shop_reporting::start(&config.reporting, launch).await,
        ServiceName::Gateway => {
            shop_gateway::start(&config.gateway, &config.files, launch.server, launch.credentials, launch.shutdown)
                .await
        }
    }
}

/// `shop create-admin`.
pub use shop_identity::create_admin;

/// Every service's schema, in the order `shop migrate` migrates them.
pub const SCHEMAS: [Schema; 5] = [
    shop_identity::SCHEMA,
    shop_catalog::SCHEMA,
    shop_cart_order::CART_SCHEMA,
    shop_cart_order::ORDERS_SCHEMA,
    shop_reporting::SCHEMA,
];

/// `shop migrate`: the database and every service's schema, migrated.
pub async fn migrate(database: &DatabaseConfig) -> anyhow::Result<()> {
    let databases: Vec<DatabaseConfig> = SCHEMA_OWNERS.iter().map(|service| database.for_service(service)).collect();
    ensure_databases(&databases).await?;
    for (database, schema) in databases.iter().zip(&SCHEMAS) {
        schema.connect(database, 1).await?.close().await;
    }
    Ok(())
}

/// Creates each database that is missing, once per URL however many
/// services share it (all of them, by default).
async fn ensure_databases(databases: impl IntoIterator<Item = &DatabaseConfig>) -> anyhow::Result<()> {
    let mut ensured: Vec<&str> = Vec::new();
    for database in databases {
        if !ensured.contains(&database.url()) {
            shop_platform::storage::db::ensure_database(database).await?;
            ensured.push(database.url());
        }
    }
    Ok(())
}

/// The services that keep a database, as `shop serve` names them.
const DATABASE_OWNERS: [&str; 4] = ["identity", "catalog", "cart-order", "reporting"];
/// Whose database each of [`SCHEMAS`] lives in.
const SCHEMA_OWNERS: [&str; 5] = ["identity", "catalog", "cart-order", "cart-order", "reporting"];

/// `shop healthcheck`: what the server at `addr` (host:port) reports, as
/// grpc.health.v1 names it (`SERVING`, `NOT_SERVING`, …).
pub async fn healthcheck(
    addr: &str,
    service: &str,
    timeout: std::time::Duration,
    tls: &ClientTlsArgs,
) -> anyhow::Result<String> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let addr: shop_platform::config::ListenAddr =
        addr.parse().map_err(|reason| anyhow::anyhow!("expected host:port: {reason}"))?;
    let check = async {
        let channel =
            tls.endpoint(&addr.to_string())?.connect().await.with_context(|| format!("cannot connect to {addr}"))?;
        let response =
            HealthClient::new(channel).check(HealthCheckRequest { service: service.to_owned() }).await?.into_inner();
        let status = ServingStatus::try_from(response.status).unwrap_or(ServingStatus::Unknown);
        anyhow::Ok(status.as_str_name().to_owned())
    };
    tokio::time::timeout(timeout, check).await.with_context(|| format!("{addr} did not answer in time"))?
}

/// How a command-line client (`shop healthcheck`, `shop bench`) reaches a
/// server that speaks TLS.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "TLS (when the server speaks it)")]
pub struct ClientTlsArgs {
    /// Speak TLS, trusting this CA (PEM) to have signed the server's certificate.
    #[arg(long = "tls-ca", value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
    /// The name the server's certificate must carry, where the address is not it.
    #[arg(long = "tls-server-name", value_name = "NAME", requires = "ca")]
    pub server_name: Option<String>,
    /// A client certificate (PEM) to present, for a server that asks for one.
    #[arg(long = "tls-cert", value_name = "FILE", requires_all = ["ca", "key"])]
    pub cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long = "tls-key", value_name = "FILE", requires = "cert")]
    pub key: Option<std::path::PathBuf>,
}

impl ClientTlsArgs {
    /// The three internal TLS files of this process, when set: what a
    /// container's health check presents to a backend that requires them.
    pub fn or_internal(self, internal: Option<&shop_platform::transport::tls::InternalTls>) -> Self {
        match (self.ca.is_none(), internal) {
            (true, Some(internal)) => Self {
                ca: Some(internal.ca.clone()),
                server_name: self.server_name,
                cert: Some(internal.pair.cert.clone()),
                key: Some(internal.pair.key.clone()),
            },
            _ => self,
        }
    }

    /// An endpoint for `addr` (host:port): plaintext, or TLS when a CA is given.
    pub fn endpoint(&self, addr: &str) -> anyhow::Result<tonic::transport::Endpoint> {
        use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
        let Some(ca) = &self.ca else {
            return Endpoint::from_shared(format!("http://{addr}")).with_context(|| format!("{addr} is not host:port"));
        };
        let read =
            |path: &std::path::Path| std::fs::read(path).with_context(|| format!("cannot read {}", path.display()));
        let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host).trim_start_matches('[').trim_end_matches(']');
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(ca)?))
            .domain_name(self.server_name.clone().unwrap_or_else(|| host.to_owned()));
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        Endpoint::from_shared(format!("https://{addr}"))
            .with_context(|| format!("{addr} is not host:port"))?
            .tls_config(tls)
            .context("TLS settings")
    }
}
