//! Reporting: the admin sales report, answered from a read model that only
//! the catalog and order event streams feed. Owns the `reporting` schema and
//! reads no other, so reports keep answering while catalog or cart-order is
//! down.
//!
//! `domain::consumer` applies each stream exactly once (events and
//! checkpoint in one transaction), one replica at a time (a Postgres advisory
//! lock); `domain::report` answers the RPC.
//!
//! Every service has the same rooms: `config` (settings), `error` (the one
//! error type and its way out to `tonic::Status`), `model` (the read
//! model's types, below every other room), `domain` (use cases: no
//! protobuf, no SQL), `repo` (SQL, the consumers' advisory lock
//! included), `grpc` (one file per gRPC service: protobuf in, one use-case
//! call, protobuf out) and `calls` (the streams it reads from other services,
//! their events decoded into model changes and their failures into
//! `Error`). A call goes `grpc` → `domain` → `repo`. Start at [`start`].

mod calls;
mod config;
mod domain;
mod error;
mod grpc;
mod model;
mod repo;

use std::time::Duration;

use shop_platform::storage::db::Schema;
use shop_platform::transport::client::{CallPolicy, Peer};
use shop_platform::transport::server::{self, Launch, Running, Services};
use shop_proto::reporting::reporting_service_server::ReportingServiceServer;
use tonic::service::Routes;

pub use config::ReportingConfig;

use crate::calls::Upstream;
use crate::domain::consumer::{self, CatalogStream, ConsumerPolicy, OrderStream};
use crate::domain::report::Reports;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
/// Reporting's schema: the read model and the streams' checkpoints.
pub const SCHEMA: Schema = Schema { name: "reporting", migrator: &MIGRATOR, outbox: None };

/// Migrates the schema, starts both stream consumers and serves the report;
/// returns once the port is bound.
pub async fn start(config: &ReportingConfig, launch: Launch<'_>) -> anyhow::Result<Running> {
    let Launch { database, server: server_config, credentials, shutdown } = launch;
    let tls = credentials.server_tls()?;
    let listener = config.listen_addr.bind("reporting").await?;
    metrics::describe_gauge!("shop_reporting_checkpoint", "The last event sequence reporting applied, per stream.");
    metrics::describe_gauge!("shop_reporting_lag_seconds", "How old the last event reporting applied was, per stream.");
    let pool = SCHEMA.connect(database, config.db_max_connections).await?;
    let pool_watch = shop_platform::observability::metrics::watch_pool(pool.clone(), SCHEMA.name);
    // Subscriptions are long-lived streams: no call deadline, no retries
    // (the consumer reconnects with its own backoff).
    let streams = CallPolicy {
        timeout: Duration::MAX,
        connect_timeout: Duration::from_millis(config.connect_timeout_ms.max(1)),
        retries: 0,
    };
    let policy = ConsumerPolicy {
        batch_size: config.batch_size.max(1),
        retry_max: Duration::from_millis(config.retry_max_ms.max(100)),
    };
    let catalog = Peer::new(&config.catalog_url, "SHOP_REPORTING_CATALOG_URL", credentials.clone(), streams)?;
    let orders = Peer::new(&config.orders_url, "SHOP_REPORTING_ORDERS_URL", credentials.clone(), streams)?;
    let catalog_consumer = consumer::spawn(CatalogStream(Upstream(catalog)), pool.clone(), policy);
    let orders_consumer = consumer::spawn(OrderStream(Upstream(orders)), pool.clone(), policy);

    let api = ReportingServiceServer::with_interceptor(
        grpc::ReportingApi::new(Reports::new(pool), credentials.clone()),
        credentials.interceptor(),
    );
    let services = Services {
        server: "reporting",
        routes: Routes::new(api),
        names: vec!["shop.reporting.v1.ReportingService"],
        warm_up: None,
        tls,
        web: None,
        body_budget: None,
    };
    let running = server::serve(listener, services, server_config, shutdown).await?;
    Ok(server::with_companions(running, [catalog_consumer, orders_consumer, pool_watch]))
}
