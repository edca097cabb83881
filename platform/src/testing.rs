//! For tests only: a fresh Postgres database per test, dropped afterwards.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// The server tests use: `SHOP_TEST_DATABASE_URL`, else the local Postgres.
pub fn server_url() -> String {
    std::env::var("SHOP_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists until this value is dropped.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> anyhow::Result<Self> {
        let name = format!("shop_test_{}", uuid::Uuid::new_v4().simple());
        let server = PgConnectOptions::from_str(&server_url())?;
        let mut admin = server.clone().database("postgres").connect().await?;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await?;
        admin.close().await?;
        let url = server.database(&name).to_url_lossy().to_string();
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
                let Ok(server) = PgConnectOptions::from_str(&server_url()) else {
                    return;
                };
                if let Ok(mut admin) = server.database("postgres").connect().await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}
