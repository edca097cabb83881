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

/// A pooled connection idle this long is pinged before it is handed out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Whether a failed connection attempt is worth another try: Postgres not
/// reachable yet, starting up, or refusing connections for now.
fn is_not_up_yet(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)
        || error
            .as_database_error()
            .and_then(|db| db.code())
            .is_some_and(|code| code.starts_with("08") || code == "57P03")
}

/// The connection options of DATABASE_URL, refusing what would only fail
/// later, or quietly do the wrong thing: another scheme than postgres (a
/// `mysql://` URL fails later with an unreadable protocol error), or no
/// database name (every schema would land in the server's `postgres`
/// database). The message never repeats the URL, which may hold a password.
pub fn connect_options(config: &DatabaseConfig) -> anyhow::Result<PgConnectOptions> {
    const EXAMPLE: &str = "postgres://postgres@127.0.0.1:5432/shop";
    let url = config.url();
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    if !matches!(scheme, "postgres" | "postgresql") {
        let scheme = if scheme.is_empty() { "no scheme".to_owned() } else { format!("{scheme}://") };
        anyhow::bail!("DATABASE_URL must be a postgres:// (or postgresql://) URL such as {EXAMPLE}, not {scheme}");
    }
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let database = before_query.split_once('/').map_or("", |(_, path)| path);
    let named_in_query = query.split('&').any(|pair| pair.starts_with("dbname=") && pair.len() > "dbname=".len());
    if database.is_empty() && !named_in_query {
        anyhow::bail!("DATABASE_URL names no database: put one after the host and port, as in {EXAMPLE}");
    }
    PgConnectOptions::from_str(url).context("DATABASE_URL is not a valid Postgres URL")
}

/// `host:port` of DATABASE_URL, for messages (never the password).
fn server_of(options: &PgConnectOptions) -> String {
    format!("{}:{}", options.get_host(), options.get_port())
}

/// Runs a connection attempt again while Postgres is not up yet, with
/// backoff, for up to `SHOP_DB_CONNECT_RETRY_SECS`: services may start before
/// their database does (docker-compose, Kubernetes). The first failure is
/// logged with its cause, the retries after it as one line each with the
/// wait as people read it.
async fn connecting<T, Fut>(
    config: &DatabaseConfig,
    server: &str,
    attempt: impl FnMut() -> Fut,
) -> Result<T, sqlx::Error>
where
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .without_max_times()
        .with_total_delay(Some(config.connect_retry()));
    let mut told = false;
    attempt
        .retry(backoff)
        .when(is_not_up_yet)
        .notify(|error, wait| {
            let wait = format!("{:.1} s", wait.as_secs_f64());
            if told {
                tracing::debug!(server, wait, "Postgres is still not reachable; retrying");
            } else {
                told = true;
                tracing::warn!(
                    server,
                    error = %crate::error::chain_without_repeats(error),
                    wait,
                    retry_for_secs = config.connect_retry_secs,
                    "Postgres is not reachable yet; retrying (SHOP_DB_CONNECT_RETRY_SECS)"
                );
            }
        })
        .await
}

/// The error for a Postgres server that could not be reached: where, and why
/// (once).
fn unreachable_server(server: &str, error: &sqlx::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot reach the Postgres server at {server} (DATABASE_URL): {}",
        crate::error::chain_without_repeats(error)
    )
}

/// Creates the database named in the URL when it does not exist yet, by
/// connecting to the server's `postgres` database.
pub async fn ensure_database(config: &DatabaseConfig) -> anyhow::Result<()> {
    let options = connect_options(config)?;
    let name = options.get_database().unwrap_or("postgres").to_owned();
    if name == "postgres" {
        return Ok(());
    }
    let server = server_of(&options);
    let admin_options = options.clone().database("postgres");
    let mut admin = connecting(config, &server, || admin_options.connect())
        .await
        .map_err(|error| unreachable_server(&server, &error))?;
    let exists =
        sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS "exists!""#, name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        // Dynamic: identifiers cannot be bound as parameters; quote_ident makes the name safe.
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
    let options = connect_options(config)?.options([("client_min_messages", "warning")]);
    let server = server_of(&options);
    let mut setup = connecting(config, &server, || PgConnection::connect_with(&options))
        .await
        .map_err(|error| unreachable_server(&server, &error))?;
    // Dynamic: identifiers cannot be bound as parameters; quote_ident makes the name safe.
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
/// [`crate::storage::outbox`] defines, once for every schema).
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    pub name: &'static str,
    pub migrator: &'static Migrator,
    pub outbox: Option<crate::storage::outbox::Outbox>,
}

impl Schema {
    /// Every migration of the schema: its own, then the outbox's.
    pub async fn migrator(&self) -> Result<Migrator, sqlx::migrate::MigrateError> {
        Migrator::new(SchemaMigrations(*self)).await
    }

    /// A pool whose connections use the schema, after creating it and
    /// running its migrations.
    pub async fn connect(&self, config: &DatabaseConfig, max_connections: u32) -> anyhow::Result<PgPool> {
        ensure_schema(config, self.name).await?;
        let pool = open(config, self, max_connections).await?;
        let migrator = self.migrator().await.with_context(|| format!("migrations of schema {}", self.name))?;
        migrator.run(&pool).await.with_context(|| format!("migrations of schema {} failed", self.name))?;
        Ok(pool)
    }
}

#[derive(Debug)]
struct SchemaMigrations(Schema);

impl<'s> MigrationSource<'s> for SchemaMigrations {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        let mut migrations: Vec<Migration> = self.0.migrator.iter().cloned().collect();
        if self.0.outbox.is_some() {
            migrations.extend(crate::storage::outbox::migrations());
        }
        migrations.sort_by_key(|migration| migration.version);
        Box::pin(async move { Ok(migrations) })
    }
}

/// A pool on `schema` as it stands, creating and migrating nothing: for
/// tools that read what a running suite keeps (a newer tool must not
/// migrate the schema under an older suite).
pub async fn open(config: &DatabaseConfig, schema: &Schema, max_connections: u32) -> anyhow::Result<PgPool> {
    let statement_timeout = config.statement_timeout_ms.to_string();
    let options = connect_options(config)?.options([
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
    let pool_options = PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(config.acquire_timeout())
        // sqlx pings every connection before handing it out: a second round
        // trip to Postgres for every query. A connection in steady use has
        // just proved itself; one that sat idle (Postgres may have restarted
        // meanwhile) is still pinged, and a dead one replaced.
        .test_before_acquire(false)
        .before_acquire(|connection, held| {
            Box::pin(async move {
                if held.idle_for >= PING_AFTER_IDLE {
                    connection.ping().await?;
                }
                Ok(true)
            })
        });
    let server = server_of(&options);
    connecting(config, &server, || pool_options.clone().connect_with(options.clone()))
        .await
        .map_err(|error| unreachable_server(&server, &error))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_of_another_scheme_or_without_a_database_is_refused_without_its_password() {
        for (url, says) in [
            ("postgres://postgres@127.0.0.1:5432/", "names no database"),
            ("postgres://postgres:hunter2@127.0.0.1:5432", "names no database"),
            ("mysql://root:hunter2@127.0.0.1:3306/shop", "not mysql://"),
            ("127.0.0.1:5432/shop", "not no scheme"),
        ] {
            let error = connect_options(&DatabaseConfig::for_url(url)).unwrap_err().to_string();
            assert!(error.contains(says), "{url}: {error}");
            assert!(error.contains("postgres://postgres@127.0.0.1:5432/shop"), "shows the expected form: {error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
        for url in [
            "postgres://postgres@127.0.0.1:5432/shop",
            "postgresql://u:p@db/shop?sslmode=disable",
            "postgres://u@db:5432?dbname=shop",
        ] {
            assert!(connect_options(&DatabaseConfig::for_url(url)).is_ok(), "{url}");
        }
    }
}
