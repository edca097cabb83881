//! Identity: users, password hashing, access and refresh tokens, and the
//! public signing keys the gateway verifies tokens with. Owns the `identity`
//! schema; reads no other.
//!
//! Every service has the same rooms: `config` (settings), `error` (the one
//! error type and its way out to `tonic::Status`), `model` (types and each
//! value's rules, below every other room), `domain` (use cases:
//! `domain::accounts`), `repo` (SQL), `grpc` (one file per gRPC
//! service: protobuf in, one use-case call, protobuf out). Start at [`start`].

mod config;
mod domain;
mod error;
mod grpc;
mod model;
mod repo;

use std::time::Duration;

use shop_platform::config::DatabaseConfig;
use shop_platform::storage::db::Schema;
use shop_platform::transport::server::{self, Launch, Running, Services};
use shop_proto::identity::identity_service_server::IdentityServiceServer;
use shop_proto::identity::signing_keys_service_server::SigningKeysServiceServer;
use tonic::service::Routes;

pub use config::{IdentityConfig, PasswordHashConfig};

/// A new access-token signing key as PKCS#8 PEM (what
/// SHOP_IDENTITY_SIGNING_KEY_FILE reads): `shop init-secrets` writes one.
pub fn new_signing_key_pem() -> anyhow::Result<String> {
    Ok(domain::tokens::SigningMaterial::generate()?.private_key_pem()?)
}

use crate::domain::accounts::{Accounts, Registration, create_user};
use crate::domain::passwords::PasswordHasher;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
/// Identity's schema; it publishes no event stream.
pub const SCHEMA: Schema = Schema { name: "identity", migrator: &MIGRATOR, outbox: None };

/// Migrates identity's schema and starts serving; returns once the port is bound.
pub async fn start(config: &IdentityConfig, launch: Launch<'_>) -> anyhow::Result<Running> {
    let Launch { database, server: server_config, credentials, shutdown } = launch;
    let tls = credentials.server_tls()?;
    config.validate()?;
    let listener = config.listen_addr.bind("identity").await?;
    let pool = SCHEMA.connect(database, config.db_max_connections).await?;
    domain::accounts::keep_skeletons_of_older_users(&pool).await?;
    let pool_for_metrics = pool.clone();
    let accounts = Accounts::new(pool, config).await?;

    let limits_owner = accounts.clone();
    let sweeper = tokio::spawn(async move {
        let mut every_minute = tokio::time::interval(Duration::from_secs(60));
        loop {
            every_minute.tick().await;
            limits_owner.forget_idle_rate_limits();
        }
    });

    let identity = IdentityServiceServer::with_interceptor(
        grpc::IdentityApi::new(accounts.clone(), credentials.clone()),
        credentials.interceptor(),
    );
    let keys =
        SigningKeysServiceServer::with_interceptor(grpc::SigningKeysApi::new(accounts), credentials.interceptor());
    let services = Services {
        server: "identity",
        routes: Routes::new(identity).add_service(keys),
        names: vec!["shop.identity.v1.IdentityService", "shop.identity.v1.SigningKeysService"],
        warm_up: None,
        tls,
        web: None,
        body_budget: None,
    };
    let running = server::serve(listener, services, server_config, shutdown).await?;
    let pool_watch = shop_platform::observability::metrics::watch_pool(pool_for_metrics, SCHEMA.name);
    Ok(server::with_companions(running, [sweeper, pool_watch]))
}

/// `shop create-admin`: the first admin, with every Register rule applied
/// (the database is created if missing); returns the new user's id.
pub async fn create_admin(
    database: &DatabaseConfig,
    password_hash: &PasswordHashConfig,
    username: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<i64> {
    password_hash.validate()?;
    let registration = Registration::parse(username, email, password, password, true)?;
    let hasher = PasswordHasher::new(password_hash, 1)?;
    shop_platform::storage::db::ensure_database(database).await?;
    let pool = SCHEMA.connect(database, 1).await?;
    Ok(create_user(&pool, &hasher, registration).await?.id)
}
