//! The gateway: the one door clients use. It serves the public services of
//! the contract by forwarding each call's HTTP/2 frames to the owning
//! backend, after the [`policy`] (the protos' access levels) and the access
//! token allow it. Internal services are never routed. Health and reflection (listing only public services) are
//! answered here, and the old backend's REST routes ([`rest`]) are
//! translated into calls of the same public RPCs.
//!
//! Start with [`start`], then [`proxy`].

pub mod config;
mod images;
pub mod keys;
pub mod policy;
pub mod proxy;
pub mod pump;
pub mod rest;

use std::future::Future;
use std::time::Duration;

use shop_platform::auth::{ServiceCredentials, TokenVerifier};
use shop_platform::config::ServerConfig;
use shop_platform::storage::files::{FileStoreConfig, Files};
use shop_platform::transport::client::{CallPolicy, Peer, lazy_channel};
use shop_platform::transport::server::{self, Running, Services};
use shop_platform::transport::tls::{ALPN_GRPC_AND_WEB, ClientCertificates, KeyPairFiles, ServerTls};
use shop_platform::transport::web::WebAccess;
use tonic::service::Routes;
use tonic::transport::Channel;

pub use config::GatewayConfig;

use crate::keys::KeyCache;
use crate::proxy::{Backends, CallLimits, Proxy};

/// Longest wait for identity's public keys.
const KEY_FETCH_TIMEOUT: Duration = Duration::from_secs(2);

fn connect_timeout(config: &GatewayConfig) -> Duration {
    Duration::from_millis(config.connect_timeout_ms.max(1))
}

fn channel(
    url: &str,
    setting: &str,
    config: &GatewayConfig,
    credentials: &ServiceCredentials,
) -> anyhow::Result<Channel> {
    lazy_channel(url, setting, connect_timeout(config), credentials.client_tls())
}

/// TLS on the client-facing port, when its certificate is set: gRPC on
/// HTTP/2 and gRPC-Web on HTTP/1.1 too.
fn client_facing_tls(config: &GatewayConfig) -> anyhow::Result<Option<ServerTls>> {
    let pair = KeyPairFiles::from_settings(
        config.tls_cert_file.as_deref(),
        config.tls_key_file.as_deref(),
        "SHOP_GATEWAY_TLS_CERT_FILE",
        "SHOP_GATEWAY_TLS_KEY_FILE",
    )?;
    match pair {
        Some(pair) => {
            let clients = match config.tls_client_ca_file.as_deref() {
                Some(ca) => ClientCertificates::FromCa(ca),
                None => ClientCertificates::NotAsked,
            };
            Ok(Some(ServerTls::new(pair, clients, ALPN_GRPC_AND_WEB)?))
        }
        None if config.tls_client_ca_file.is_some() => anyhow::bail!(
            "SHOP_GATEWAY_TLS_CLIENT_CA_FILE needs TLS: set SHOP_GATEWAY_TLS_CERT_FILE and SHOP_GATEWAY_TLS_KEY_FILE too"
        ),
        None => Ok(None),
    }
}

/// Largest header block a client may send: room for an oversized token or
/// metadata to reach the proxy, which answers it with a gRPC status instead
/// of HTTP/2's bare refusal (HTTP 431, or GOAWAY above four times this).
const MAX_CLIENT_HEADER_LIST_BYTES: u32 = 128 * 1024;

/// The server settings, with the gateway's own limits for client connections.
fn client_facing(server: &ServerConfig, config: &GatewayConfig) -> ServerConfig {
    ServerConfig {
        max_streams_per_connection: config.max_streams_per_connection,
        max_connections_per_addr: config.max_connections_per_addr,
        max_header_list_bytes: MAX_CLIENT_HEADER_LIST_BYTES,
        ..server.clone()
    }
}

/// Starts the gateway; returns once the port is bound.
pub async fn start(
    config: &GatewayConfig,
    files: &FileStoreConfig,
    server_config: &ServerConfig,
    credentials: ServiceCredentials,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let policy = policy::PolicyTable::load()?;
    let tls = client_facing_tls(config)?;
    let body_budget = shop_platform::transport::body_budget::BodyBudget::new(config.body_limits()?);
    let mut web = WebAccess::from_setting(&config.cors_origins, "SHOP_GATEWAY_CORS_ORIGINS")?;
    web.face = Some(std::sync::Arc::new(rest::RestFace::new(shop_proto::contract::contract()?, &files.public_url)?));
    let identity = channel(&config.identity_url, "SHOP_GATEWAY_IDENTITY_URL", config, &credentials)?;
    let catalog = channel(&config.catalog_url, "SHOP_GATEWAY_CATALOG_URL", config, &credentials)?;
    let cart_order = channel(&config.cart_order_url, "SHOP_GATEWAY_CART_ORDER_URL", config, &credentials)?;
    let reporting = channel(&config.reporting_url, "SHOP_GATEWAY_REPORTING_URL", config, &credentials)?;
    let backends: Backends = [
        ("shop.identity.v1.IdentityService", ("identity", identity.clone())),
        ("shop.catalog.v1.CatalogService", ("catalog", catalog)),
        ("shop.cart.v1.CartService", ("cart-order", cart_order.clone())),
        ("shop.cart.v1.WishlistService", ("cart-order", cart_order.clone())),
        ("shop.order.v1.OrderService", ("cart-order", cart_order)),
        ("shop.reporting.v1.ReportingService", ("reporting", reporting)),
    ]
    .into_iter()
    .collect();
    metrics::describe_counter!(
        "shop_gateway_stalled_calls_total",
        "Calls the gateway cancelled because their client took no part of the answer in time, per backend."
    );
    // Counted from the start, so a dashboard's rate shows zero, not nothing.
    for (backend, _) in backends.values() {
        metrics::counter!("shop_gateway_stalled_calls_total", "backend" => *backend).increment(0);
    }

    let listener = config.listen_addr.bind("gateway").await?;
    let identity = Peer::on(
        identity,
        credentials.clone(),
        CallPolicy { timeout: KEY_FETCH_TIMEOUT, connect_timeout: connect_timeout(config), retries: 0 },
    );
    let keys = KeyCache::new(TokenVerifier::new(config.jwt_leeway_secs), identity);
    // Try once before serving so the first calls find the keys in place.
    keys.refresh().await;
    let refresher = keys.clone().spawn_refresher(Duration::from_secs(config.key_refresh_secs.max(1)));

    let limits = CallLimits {
        calls_per_addr: config.max_calls_per_addr,
        stall: Duration::from_millis(config.stall_timeout_ms.max(1)),
        request_timeout: Duration::from_secs(server_config.request_timeout_secs.max(1)),
    };
    let names = policy.public_services();
    for service in &names {
        anyhow::ensure!(backends.contains_key(service), "no backend serves the public service {service}");
    }
    let proxy = Proxy::new(policy, backends, keys, credentials, limits);
    let routes = Routes::from(
        axum::Router::new()
            .route("/openapi.json", axum::routing::get(openapi))
            .route("/images/{*key}", axum::routing::get(images::picture).with_state(Files::open(files)?))
            .fallback_service(proxy),
    );
    let services = Services {
        server: "gateway",
        routes,
        names,
        warm_up: None,
        tls,
        web: Some(web),
        body_budget: Some(body_budget),
    };
    let running = server::serve(listener, services, &client_facing(server_config, config), shutdown).await?;
    Ok(server::with_companions(running, [refresher]))
}

/// `GET /openapi.json`: the Connect face described (public; made from the
/// protos when Shop was built).
async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "application/json"), (http::header::CACHE_CONTROL, "public, max-age=300")],
        shop_proto::OPENAPI_JSON,
    )
}
