//! `TestShop::start()` is `shop up` for one test: its own database (dropped
//! when the test ends), every server on port 0, stopped on drop.

use std::time::Duration;

use shop::{Suite, SuiteConfig};
use shop_platform::storage::testing::TestDatabase;
use shop_platform::transport::server::Launch;
use shop_proto::cart::cart_service_client::CartServiceClient;
use shop_proto::cart::wishlist_service_client::WishlistServiceClient;
use shop_proto::catalog::catalog_service_client::CatalogServiceClient;
use shop_proto::catalog::{Category, CreateCategoryRequest, CreateProductRequest, Product};
use shop_proto::identity::identity_service_client::IdentityServiceClient;
use shop_proto::identity::{LoginRequest, RegisterRequest, TokenPair, User};
use shop_proto::order::order_service_client::OrderServiceClient;
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt as _;

/// The service credential of every test suite, so tests can call internal
/// services directly, as the order service and reporting do.
pub const SERVICE_TOKEN: &str = "test-service-token-0123456789abcdef0123";

/// The password every test user gets unless a test says otherwise.
pub const PASSWORD: &str = "tulip-Orbit-42";

/// Fields drop in order: the servers stop before their database and index
/// directory are dropped.
pub struct TestShop {
    _stop: DropGuard,
    pub gateway: Channel,
    pub suite: Suite,
    pub config: SuiteConfig,
    pub database: TestDatabase,
    _index_dir: IndexDir,
}

/// The test's own directory for search indexes, removed afterwards.
struct IndexDir(std::path::PathBuf);

impl Drop for IndexDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl TestShop {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts the suite after `adjust` has changed the test configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut SuiteConfig)) -> Self {
        let database = TestDatabase::create(&shop::SCHEMAS).await.expect("create the test database");
        Self::start_on(database, adjust).await
    }

    /// Starts the suite on `database` as it is (a restored one, say), with a
    /// search index directory of its own.
    pub async fn start_on(database: TestDatabase, adjust: impl FnOnce(&mut SuiteConfig)) -> Self {
        let mut config = SuiteConfig::for_tests(&database.url).expect("test configuration");
        config.credentials.service_token = Some(SERVICE_TOKEN.into());
        let index_dir = IndexDir(std::env::temp_dir().join("shop-test-indexes").join(&database.name));
        config.catalog.index_dir = index_dir.0.join("catalog");
        adjust(&mut config);
        let stop = CancellationToken::new();
        let suite = shop::up(config.clone(), stop.clone().cancelled_owned()).await.expect("shop up");
        // A gateway that speaks TLS is reached by the test's own client
        // (this channel stays unused); tests that count connections count
        // this one as open.
        let gateway = if config.gateway.tls_cert_file.is_some() {
            Endpoint::from_shared(format!("http://{}", suite.gateway_addr)).expect("endpoint").connect_lazy()
        } else {
            connect(suite.gateway_addr).await
        };
        Self { _stop: stop.drop_guard(), gateway, suite, config, database, _index_dir: index_dir }
    }

    pub fn catalog(&self) -> CatalogServiceClient<Channel> {
        CatalogServiceClient::new(self.gateway.clone())
    }

    /// A channel straight to the catalog (not through the gateway) whose
    /// calls carry the service credential.
    pub async fn catalog_internal(&self) -> InterceptedService<Channel, impl Interceptor + Clone + use<>> {
        internal(self.suite.catalog_addr).await
    }

    /// A channel straight to cart-order carrying the service credential.
    pub async fn cart_order_internal(&self) -> InterceptedService<Channel, impl Interceptor + Clone + use<>> {
        internal(self.suite.cart_order_addr).await
    }

    /// Takes one service down (the rest keeps running) until the returned
    /// outage is restarted.
    pub async fn stop_service(&mut self, service: &'static str) -> Outage {
        self.suite.stop_service(service).await.unwrap_or_else(|error| panic!("stop {service}: {error:#}"));
        let addr = match service {
            "catalog" => self.suite.catalog_addr,
            "cart-order" => self.suite.cart_order_addr,
            "reporting" => self.suite.reporting_addr,
            other => panic!("tests do not restart {other}"),
        };
        Outage {
            service,
            addr,
            config: self.config.clone(),
            catalog_url: format!("http://{}", self.suite.catalog_addr),
            cart_order_url: format!("http://{}", self.suite.cart_order_addr),
        }
    }

    pub fn cart(&self) -> CartServiceClient<Channel> {
        CartServiceClient::new(self.gateway.clone())
    }

    pub fn wishlist(&self) -> WishlistServiceClient<Channel> {
        WishlistServiceClient::new(self.gateway.clone())
    }

    pub fn orders(&self) -> OrderServiceClient<Channel> {
        OrderServiceClient::new(self.gateway.clone())
    }

    pub async fn create_category(&self, admin: &str, name: &str) -> Category {
        self.catalog()
            .create_category(bearer(CreateCategoryRequest { name: name.into(), slug: String::new() }, admin))
            .await
            .expect("create category")
            .into_inner()
    }

    pub async fn create_product(&self, admin: &str, request: CreateProductRequest) -> Product {
        self.catalog().create_product(bearer(request, admin)).await.expect("create product").into_inner()
    }

    pub fn identity(&self) -> IdentityServiceClient<Channel> {
        IdentityServiceClient::new(self.gateway.clone())
    }

    pub async fn register(&self, username: &str) -> User {
        self.identity().register(registration(username)).await.expect("register").into_inner().user.expect("user")
    }

    pub async fn login(&self, username: &str) -> TokenPair {
        self.identity()
            .login(LoginRequest { username: username.into(), password: PASSWORD.into() })
            .await
            .expect("login")
            .into_inner()
    }

    /// A registered customer's access token.
    pub async fn customer(&self, username: &str) -> String {
        self.register(username).await;
        self.login(username).await.access_token
    }

    /// An admin made the way operators make the first one (`shop create-admin`).
    pub async fn admin(&self, username: &str) -> String {
        shop::create_admin(
            &self.config.database.for_service("identity"),
            &self.config.identity.password_hash,
            username,
            &format!("{username}@example.com"),
            PASSWORD,
        )
        .await
        .expect("create admin");
        self.login(username).await.access_token
    }

    /// A connection to the database this test's suite uses (for checks and
    /// for forging tokens with identity's stored key).
    pub async fn db(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.database.url).await.expect("connect to test database")
    }
}

/// A channel straight to a backend whose calls carry the service credential.
pub async fn internal(addr: std::net::SocketAddr) -> InterceptedService<Channel, impl Interceptor + Clone + use<>> {
    let channel = connect(addr).await;
    InterceptedService::new(channel, |mut request: Request<()>| {
        request.metadata_mut().insert("x-shop-service-token", SERVICE_TOKEN.parse().expect("ascii"));
        Ok(request)
    })
}

/// A service stopped by [`TestShop::stop_service`].
pub struct Outage {
    service: &'static str,
    addr: std::net::SocketAddr,
    config: SuiteConfig,
    catalog_url: String,
    cart_order_url: String,
}

impl Outage {
    /// Starts the service again on its old address, dialing the others where
    /// the suite runs them.
    pub async fn restart(&self) -> Restarted {
        let stop = CancellationToken::new();
        let credentials = shop_platform::auth::ServiceCredentials::new(SERVICE_TOKEN.into()).expect("credentials");
        let config = &self.config;
        let launch = Launch {
            database: &config.database,
            server: &config.server,
            credentials,
            shutdown: Box::pin(stop.clone().cancelled_owned()),
        };
        let running = match self.service {
            "catalog" => {
                let mut catalog = config.catalog.clone();
                catalog.listen_addr = self.addr.into();
                shop_catalog::start(&catalog, &config.files, launch).await
            }
            "cart-order" => {
                let mut cart_order = config.cart_order.clone();
                cart_order.listen_addr = self.addr.into();
                cart_order.catalog_url = self.catalog_url.clone();
                shop_cart_order::start(&cart_order, launch).await
            }
            _ => {
                let mut reporting = config.reporting.clone();
                reporting.listen_addr = self.addr.into();
                reporting.catalog_url = self.catalog_url.clone();
                reporting.orders_url = self.cart_order_url.clone();
                shop_reporting::start(&reporting, launch).await
            }
        };
        let running = running.unwrap_or_else(|error| panic!("restart {}: {error:#}", self.service));
        Restarted { stop, task: Some(running.task) }
    }
}

/// A service restarted by a test; it stops when dropped, or for sure with [`Restarted::stop`].
pub struct Restarted {
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Restarted {
    /// Stops it and waits until it has (its port is free again).
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server stopped cleanly");
        }
    }
}

impl Drop for Restarted {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Polls `check` every 50 ms until it answers `Ok`, for at most `within`;
/// past that, fails the test naming `what` and the last answer seen.
pub async fn eventually<T, Last: std::fmt::Debug>(
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> Result<T, Last>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match check().await {
            Ok(done) => return done,
            Err(last) if tokio::time::Instant::now() >= deadline => {
                panic!("{what}: not within {within:?}; last seen: {last:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A bare HTTP/2 client of `addr`, ready for a request: for tests that
/// need frames a gRPC client would not send.
pub async fn raw_h2(addr: std::net::SocketAddr) -> h2::client::SendRequest<bytes::Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    client.ready().await.unwrap()
}

pub async fn connect(addr: std::net::SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .timeout(Duration::from_secs(20))
        .connect()
        .await
        .expect("connect")
}

pub fn registration(username: &str) -> RegisterRequest {
    RegisterRequest {
        username: username.into(),
        email: format!("{username}@example.com"),
        password: PASSWORD.into(),
        password_confirm: PASSWORD.into(),
        is_admin: false,
    }
}

/// `message` with `authorization: Bearer <token>`.
pub fn bearer<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    let value = MetadataValue::try_from(format!("Bearer {token}")).expect("ascii token");
    request.metadata_mut().insert("authorization", value);
    request
}

/// Asserts an INVALID_ARGUMENT whose BadRequest detail names `field`.
pub fn assert_invalid_field(status: &Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_details_bad_request().unwrap_or_else(|| panic!("no BadRequest in {status:?}"));
    let fields: Vec<&str> = details.field_violations.iter().map(|violation| violation.field.as_str()).collect();
    assert_eq!(fields, [field], "{status:?}");
    assert!(status.message().starts_with(&format!("{field}:")), "{status:?}");
}

/// A product request with sensible defaults; tests change what they test.
pub fn product(title: &str, price: &str, stock: i32, category_id: i64) -> CreateProductRequest {
    CreateProductRequest {
        title: title.into(),
        description: format!("{title}, described"),
        price: price.into(),
        stock,
        category_id,
        image_url: String::new(),
        image: Vec::new(),
    }
}
