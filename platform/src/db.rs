//! Postgres: one database, one schema per service. Each service's pool pins
//! `search_path` to its own schema, so its tables and its `_sqlx_migrations`
//! bookkeeping live there and no service can see another's tables by accident.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use backon::{ExponentialBuilder, Retryable as _};
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::config::DatabaseConfig;

/// Whether a failed connection attempt is worth another try: Postgres not
/// reachable yet, starting up, or refusing connections for now.
fn is_not_up_yet(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)
        || error
            .as_database_error()
            .and_then(|db| db.code())
            .is_some_and(|code| code.starts_with("08") || code == "57P03")
}

/// Runs a connection attempt again while Postgres is not up yet, with
/// backoff, for up to `SHOP_DB_CONNECT_RETRY_SECS`: services may start before
/// their database does (docker-compose, Kubernetes).
async fn connecting<T, Fut>(config: &DatabaseConfig, attempt: impl FnMut() -> Fut) -> Result<T, sqlx::Error>
where
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .without_max_times()
        .with_total_delay(Some(config.connect_retry()));
    attempt
        .retry(backoff)
        .when(is_not_up_yet)
        .notify(|error, wait| tracing::warn!(error = %error, ?wait, "Postgres is not reachable yet; retrying"))
        .await
}

/// Creates the database named in the URL when it does not exist yet, by
/// connecting to the server's `postgres` database.
pub async fn ensure_database(config: &DatabaseConfig) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(config.url()).context("DATABASE_URL is not a valid Postgres URL")?;
    let name = options.get_database().unwrap_or("postgres").to_owned();
    if name == "postgres" {
        return Ok(());
    }
    let admin_options = options.clone().database("postgres");
    let mut admin = connecting(config, || admin_options.connect())
        .await
        .context("cannot reach the Postgres server in DATABASE_URL")?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut admin)
        .await?;
    if !exists {
        // Identifiers cannot be bound as parameters; quote_ident makes the name safe.
        let create = format!("CREATE DATABASE {}", quote_ident(&name));
        if let Err(error) = sqlx::query(&create).execute(&mut admin).await {
            // Another process may have created it between our check and now.
            if !is_code(&error, "42P04") {
                return Err(error).context("cannot create the database");
            }
        }
        tracing::info!(database = %name, "created database");
    }
    admin.close().await?;
    Ok(())
}

/// Creates `schema` if it does not exist yet.
pub async fn ensure_schema(config: &DatabaseConfig, schema: &str) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(config.url()).context("DATABASE_URL is not a valid Postgres URL")?;
    let options = options.options([("client_min_messages", "warning")]);
    let mut setup = connecting(config, || PgConnection::connect_with(&options))
        .await
        .context("cannot connect to Postgres (DATABASE_URL)")?;
    let create = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema));
    if let Err(error) = sqlx::query(&create).execute(&mut setup).await {
        // Two replicas starting together race on IF NOT EXISTS.
        if !is_code(&error, "23505") && !is_code(&error, "42P06") {
            return Err(error).context("cannot create the schema");
        }
    }
    setup.close().await?;
    Ok(())
}

/// One service's schema: its name, its own embedded migrations, and the
/// outbox it publishes events from, if any (whose tables
/// [`crate::outbox`] defines, once for every schema).
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    pub name: &'static str,
    pub migrator: &'static Migrator,
    pub outbox: Option<crate::outbox::Outbox>,
}

impl Schema {
    /// Every migration of the schema: its own, then the outbox's.
    pub async fn migrator(&self) -> Result<Migrator, sqlx::migrate::MigrateError> {
        Migrator::new(SchemaMigrations(*self)).await
    }
}

#[derive(Debug)]
struct SchemaMigrations(Schema);

impl<'s> MigrationSource<'s> for SchemaMigrations {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        let mut migrations: Vec<Migration> = self.0.migrator.iter().cloned().collect();
        if self.0.outbox.is_some() {
            migrations.extend(crate::outbox::migrations());
        }
        migrations.sort_by_key(|migration| migration.version);
        Box::pin(async move { Ok(migrations) })
    }
}

/// A pool whose connections use the schema, after creating it and running
/// its migrations.
pub async fn connect(config: &DatabaseConfig, schema: &Schema, max_connections: u32) -> anyhow::Result<PgPool> {
    ensure_schema(config, schema.name).await?;
    let pool = open(config, schema, max_connections).await?;
    let migrator = schema.migrator().await.with_context(|| format!("migrations of schema {}", schema.name))?;
    migrator.run(&pool).await.with_context(|| format!("migrations of schema {} failed", schema.name))?;
    Ok(pool)
}

/// A pool on `schema` as it stands, creating and migrating nothing: for
/// tools that read what a running suite keeps (a newer tool must not
/// migrate the schema under an older suite).
pub async fn open(config: &DatabaseConfig, schema: &Schema, max_connections: u32) -> anyhow::Result<PgPool> {
    let statement_timeout = config.statement_timeout_ms.to_string();
    let options =
        PgConnectOptions::from_str(config.url()).context("DATABASE_URL is not a valid Postgres URL")?.options([
            ("search_path", schema.name),
            ("statement_timeout", statement_timeout.as_str()),
            // "already exists, skipping" notices from migrations are not news.
            ("client_min_messages", "warning"),
            // Every statement is prepared once per connection (sqlx caches
            // them, plpgsql too); planning it again at every call was 15 % of
            // Postgres' time under checkout load. Each of ours has one good
            // plan whatever its parameters.
            ("plan_cache_mode", "force_generic_plan"),
            // A generic plan guesses an unknown LIMIT at a tenth of the
            // table, so a ten-row page looks costly enough for Postgres to
            // JIT-compile it or hand it to parallel workers, each costing
            // milliseconds per call. Neither pays off for calls like ours,
            // and concurrent calls already keep every core busy.
            ("jit", "off"),
            ("max_parallel_workers_per_gather", "0"),
        ]);
    let options = match config.slow_statement_ms {
        0 => options.log_slow_statements(log::LevelFilter::Off, Duration::ZERO),
        ms => options.log_slow_statements(log::LevelFilter::Warn, Duration::from_millis(ms)),
    };
    let pool_options =
        PgPoolOptions::new().max_connections(max_connections.max(1)).acquire_timeout(config.acquire_timeout());
    connecting(config, || pool_options.clone().connect_with(options.clone()))
        .await
        .context("cannot connect to Postgres (DATABASE_URL)")
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Whether a query failed with the given SQLSTATE.
pub fn is_code(error: &sqlx::Error, sqlstate: &str) -> bool {
    error.as_database_error().and_then(|db| db.code()).is_some_and(|code| code == sqlstate)
}

/// The name of the constraint a query violated, for sites that map several:
/// `match constraint(&error) { Some("users_email_key") => …, _ => error.into() }`.
pub fn constraint(error: &sqlx::Error) -> Option<&str> {
    error.as_database_error().and_then(|db| db.constraint())
}

/// Turns a named constraint's violation into a client error right where the
/// query runs: `.on_constraint("users_email_key", || Error::AlreadyExists("email"))`.
pub trait OnConstraint<T> {
    fn on_constraint<E: From<sqlx::Error>>(self, name: &str, map: impl FnOnce() -> E) -> Result<T, E>;
}

impl<T> OnConstraint<T> for Result<T, sqlx::Error> {
    fn on_constraint<E: From<sqlx::Error>>(self, name: &str, map: impl FnOnce() -> E) -> Result<T, E> {
        self.map_err(|error| match constraint(&error) {
            Some(constraint) if constraint == name => map(),
            _ => E::from(error),
        })
    }
}
