//! For tests only: a fresh Postgres database per test, dropped afterwards,
//! copied from a template that holds every schema already migrated, so a
//! test run migrates once rather than once per test.

use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::OnceCell;

use crate::config::DatabaseConfig;
use crate::storage::db::Schema;

/// The server tests use: `SHOP_TEST_DATABASE_URL`, else the local Postgres.
pub fn server_url() -> String {
    std::env::var("SHOP_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Taken while a template is built, so parallel test processes build it once.
const TEMPLATE_LOCK: i64 = 0x7368_6f70_746d_706c; // "shoptmpl"

/// A database that exists until this value is dropped.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

async fn admin_connection() -> anyhow::Result<PgConnection> {
    let server = PgConnectOptions::from_str(&server_url())?;
    Ok(server.database("postgres").connect().await?)
}

/// A name for the template of exactly these migrations: a change to any
/// of them gives a new template.
async fn template_name(schemas: &[Schema]) -> anyhow::Result<String> {
    let mut hasher = DefaultHasher::new();
    for schema in schemas {
        schema.name.hash(&mut hasher);
        for migration in schema.migrator().await?.iter() {
            migration.version.hash(&mut hasher);
            migration.checksum.hash(&mut hasher);
        }
    }
    Ok(format!("shop_template_{:016x}", hasher.finish()))
}

/// Makes sure the template exists (building it if not) and returns its name.
async fn template(schemas: &[Schema]) -> anyhow::Result<String> {
    let name = template_name(schemas).await?;
    let mut admin = admin_connection().await?;
    sqlx::query!("SELECT pg_advisory_lock($1)", TEMPLATE_LOCK).fetch_one(&mut admin).await?;
    let built = async {
        let exists =
            sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS "exists!""#, name)
                .fetch_one(&mut admin)
                .await?;
        if exists {
            return anyhow::Ok(());
        }
        // Templates of older migrations are of no use any more.
        let stale = sqlx::query_scalar!(
            r#"SELECT datname::text AS "datname!" FROM pg_database WHERE datname LIKE 'shop\_template\_%' AND datname <> $1"#,
            name,
        )
        .fetch_all(&mut admin)
        .await?;
        // Dynamic from here on: database DDL names its database, which no parameter can.
        for database in stale {
            sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")).execute(&mut admin).await?;
        }
        // Built under another name and renamed when complete, so a run that
        // dies half-way leaves nothing that looks finished.
        let building = format!("{name}_building");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)")).execute(&mut admin).await?;
        sqlx::query(&format!("CREATE DATABASE {building}")).execute(&mut admin).await?;
        let url = PgConnectOptions::from_str(&server_url())?.database(&building).to_url_lossy().to_string();
        let config = DatabaseConfig::for_url(url);
        for schema in schemas {
            schema.connect(&config, 1).await?.close().await;
        }
        sqlx::query(&format!("ALTER DATABASE {building} RENAME TO {name}")).execute(&mut admin).await?;
        Ok(())
    }
    .await;
    sqlx::query!("SELECT pg_advisory_unlock($1)", TEMPLATE_LOCK).fetch_one(&mut admin).await?;
    admin.close().await?;
    built.map(|()| name)
}

impl TestDatabase {
    /// A new database holding `schemas`, migrated. The template is checked
    /// once per process.
    pub async fn create(schemas: &[Schema]) -> anyhow::Result<Self> {
        static TEMPLATE: OnceCell<String> = OnceCell::const_new();
        let template = TEMPLATE.get_or_try_init(|| template(schemas)).await?;
        Self::copy_of(template).await
    }

    /// A new database with nothing in it (what a restore starts from).
    pub async fn empty() -> anyhow::Result<Self> {
        Self::copy_of("template0").await
    }

    /// A new database made from `template`.
    async fn copy_of(template: &str) -> anyhow::Result<Self> {
        let name = format!("shop_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = admin_connection().await?;
        // Dynamic: database DDL names its database, which no parameter can.
        sqlx::query(&format!("CREATE DATABASE {name} TEMPLATE {template}")).execute(&mut admin).await?;
        admin.close().await?;
        let url = PgConnectOptions::from_str(&server_url())?.database(&name).to_url_lossy().to_string();
        Ok(Self { name, url })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any async context we can rely on; a short-lived
        // thread with its own runtime does the cleanup.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut admin) = admin_connection().await {
                    // Dynamic: database DDL names its database, which no parameter can.
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}
