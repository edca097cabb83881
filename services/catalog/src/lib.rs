//! Catalog: categories, products and their stock. Owns the `catalog` schema
//! and reads no other. Public `CatalogService`; internal `InventoryService`
//! (stock reservations for the order service) and `CatalogEventsService`
//! (the outbox feed for reporting), both behind service credentials.
//!
//! Every service has the same rooms: `config` (settings), `error` (the one
//! error type and its way out to `tonic::Status`), `model` (types and each
//! value's rules, below every other room), `domain` (use cases, with no
//! protobuf and no SQL: `domain::categories`,
//! `domain::products`, `domain::listing` (listings, and the indexer that
//! feeds the search index), `domain::inventory`), `repo` (SQL, one file per
//! table group, and the search index's store), `grpc` (one file per gRPC
//! service: protobuf in, one use-case call, protobuf out). Catalog has two
//! more: `wire` (its wire format shared by `grpc` and `repo`: catalog events
//! as the stream sends them and the outbox stores them, and the products an
//! event touched) and `seed` (`shop seed`'s data generator; its statements
//! are in `repo`). A call goes `grpc` → `domain` → `repo`, never back up.
//! Start at [`start`].

mod config;
mod domain;
mod error;
mod grpc;
mod model;
mod repo;
mod seed;
mod wire;

use shop_platform::storage::db::Schema;
use shop_platform::storage::files::{FileStoreConfig, Files};
use shop_platform::storage::outbox::EventFeed;
use shop_platform::transport::budget::WorkBudget;
use shop_platform::transport::server::{self, Launch, Running, Services};
use shop_proto::catalog::catalog_events_service_server::CatalogEventsServiceServer;
use shop_proto::catalog::catalog_service_server::CatalogServiceServer;
use shop_proto::catalog::inventory_service_server::InventoryServiceServer;
use sqlx::PgPool;
use tonic::service::Routes;

pub use config::CatalogConfig;
pub use domain::inventory::StockLedger;
pub use seed::{Seeded, seed};

use crate::domain::categories::Categories;
use crate::domain::inventory::Inventory;
use crate::domain::listing::{ListingLimits, Listings};
use crate::domain::pictures::Pictures;
use crate::domain::products::Products;
use crate::model::picture::PictureLimits;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
/// Catalog's schema, with the outbox its event stream is read from.
pub const SCHEMA: Schema = Schema { name: "catalog", migrator: &MIGRATOR, outbox: Some(repo::outbox::OUTBOX) };

/// Every word a seeded title can hold.
pub fn seed_vocabulary() -> impl Iterator<Item = &'static str> {
    seed::vocabulary()
}

/// Every product's stock and units sold, at one moment (`shop bench
/// checkout` balances its books with it).
pub async fn stock_ledger(pool: &PgPool) -> anyhow::Result<StockLedger> {
    Ok(domain::inventory::ledger(pool).await?)
}

/// Migrates the catalog schema and starts serving; returns once the port is bound.
pub async fn start(config: &CatalogConfig, files: &FileStoreConfig, launch: Launch<'_>) -> anyhow::Result<Running> {
    let Launch { database, server: server_config, credentials, shutdown } = launch;
    let tls = credentials.server_tls()?;
    let listener = config.listen_addr.bind("catalog").await?;
    let pool = SCHEMA.connect(database, config.db_max_connections).await?;
    let pool_watch = shop_platform::observability::metrics::watch_pool(pool.clone(), SCHEMA.name);
    let feed = EventFeed::new(pool.clone(), repo::outbox::OUTBOX);
    let listener_task = feed.spawn_listener();
    let feed_closing = feed.closing_with(shutdown);

    let limits = ListingLimits {
        max_depth: i64::from(config.max_listing_depth),
        searches: WorkBudget::new(
            "index searches",
            CatalogConfig::concurrency(config.search_concurrency),
            config.expensive_call_queue,
        ),
        deep_pages: WorkBudget::new(
            "deep listings",
            CatalogConfig::concurrency(config.deep_listing_concurrency),
            config.expensive_call_queue,
        ),
    };
    let index_dir = config.index_dir_for(database);
    let listings = Listings::open(pool.clone(), Some(&index_dir), config.search_cache_entries, limits).await?;
    let indexer = listings.spawn_indexer(feed.notifications());
    let warm_up = Box::pin(listings.ready());
    let pictures = Pictures::new(
        Files::open(files)?,
        &files.public_url,
        PictureLimits { max_bytes: config.image_max_bytes, max_pixels: config.image_max_pixels },
        CatalogConfig::concurrency(config.image_concurrency),
    );
    let sweeper = pictures.spawn_sweeper(pool.clone());
    let products = Products::new(pool.clone(), listings, pictures);
    let catalog = CatalogServiceServer::with_interceptor(
        grpc::CatalogApi::new(Categories::new(pool.clone()), products, credentials.clone()),
        credentials.interceptor(),
    );
    let inventory = InventoryServiceServer::with_interceptor(
        grpc::InventoryApi::new(Inventory::new(pool)),
        credentials.interceptor(),
    );
    let events =
        CatalogEventsServiceServer::with_interceptor(grpc::CatalogEventsApi::new(feed), credentials.interceptor());
    let services = Services {
        server: "catalog",
        routes: Routes::new(catalog).add_service(inventory).add_service(events),
        names: vec![
            "shop.catalog.v1.CatalogService",
            "shop.catalog.v1.InventoryService",
            "shop.catalog.v1.CatalogEventsService",
        ],
        // No traffic reaches an index still being built.
        warm_up: Some(warm_up),
        tls,
        web: None,
        body_budget: None,
    };
    let running = server::serve(listener, services, server_config, feed_closing).await?;
    Ok(server::with_companions(running, [listener_task, indexer, pool_watch, sweeper]))
}
