//! The backup and restore drill (docs/OPERATIONS.md, "Backup and restore"):
//! `pg_dump` taken while checkouts run, restored into a fresh database, and
//! a new suite started on it. The books balance, every order's reservation
//! is in the stock, catalog rebuilds its index from the record, reporting's
//! totals equal the orders, and the restored shop takes new checkouts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shop_platform::storage::testing::TestDatabase;
use shop_proto::catalog::ListProductsRequest;
use shop_proto::reporting::GetProductSalesReportRequest;
use shop_proto::reporting::reporting_service_client::ReportingServiceClient;
use tokio::task::JoinSet;

use crate::cart::{add, stocked};
use crate::checkout::checkout;
use crate::harness::{TestShop, bearer, eventually};

const STOCK: i32 = 100_000;

/// Units in live orders per product, from the database.
async fn units_in_orders(pool: &sqlx::PgPool) -> BTreeMap<i64, i64> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT l.product_id, sum(l.quantity)::bigint FROM orders.order_lines l JOIN orders.orders o ON o.id = l.order_id
          WHERE o.status IN ('PLACED', 'SHIPPED', 'DELIVERED') GROUP BY l.product_id",
    )
    .fetch_all(pool)
    .await
    .expect("units in orders");
    rows.into_iter().collect()
}

/// Units sold per product as the report has them.
async fn units_in_report(shop: &TestShop, admin: &str) -> Result<BTreeMap<i64, i64>, tonic::Status> {
    let request = GetProductSalesReportRequest { exclude_unsold: true, page_size: 100, ..Default::default() };
    let report =
        ReportingServiceClient::new(shop.gateway.clone()).get_product_sales_report(bearer(request, admin)).await?;
    Ok(report.into_inner().rows.iter().map(|row| (row.product_id, row.units_sold)).collect())
}

/// A URL as libpq reads it: sqlx's own query settings left out.
fn libpq_url(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// Runs a command off the test's runtime thread (the buyers keep buying).
async fn run(command: &mut std::process::Command) -> std::process::ExitStatus {
    let mut command = std::mem::replace(command, std::process::Command::new("true"));
    tokio::task::spawn_blocking(move || command.status()).await.expect("the command's thread").expect("run it")
}

/// What a balanced set of books shows, or what is wrong with it.
async fn books(pool: &sqlx::PgPool) -> Result<(i64, usize), String> {
    let (pending, owing): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'PENDING'), count(*) FILTER (WHERE release_needed) FROM orders.orders",
    )
    .fetch_one(pool)
    .await
    .map_err(|error| error.to_string())?;
    if (pending, owing) != (0, 0) {
        return Err(format!("{pending} orders PENDING, {owing} owing stock"));
    }
    let units = units_in_orders(pool).await;
    let stock: Vec<(i64, i64, i64)> =
        sqlx::query_as("SELECT product_id, stock::bigint, sold_count FROM catalog.stock ORDER BY product_id")
            .fetch_all(pool)
            .await
            .map_err(|error| error.to_string())?;
    for (product, left, sold) in &stock {
        let ordered = units.get(product).copied().unwrap_or(0);
        if *sold != ordered || left + sold != i64::from(STOCK) {
            return Err(format!("product {product}: stock {left}, sold {sold}, in orders {ordered}"));
        }
    }
    let orders: i64 =
        sqlx::query_scalar("SELECT count(*) FROM orders.orders").fetch_one(pool).await.map_err(|e| e.to_string())?;
    Ok((orders, stock.len()))
}

#[tokio::test]
async fn a_dump_taken_during_checkouts_restores_to_a_shop_whose_books_balance() {
    let shop = TestShop::start().await;
    let titles = ["Drill lamp", "Drill mug", "Drill desk", "Drill stool"];
    let items: Vec<(&str, &str, i32)> = titles.iter().map(|title| (*title, "9.50", STOCK)).collect();
    let (_, products) = stocked(&shop, &items).await;
    let ids: Vec<i64> = products.iter().map(|product| product.id).collect();

    // Buyers check out without pause until told to stop.
    let buying = Arc::new(AtomicBool::new(true));
    let placed = Arc::new(AtomicUsize::new(0));
    let mut buyers = JoinSet::new();
    for n in 0..4 {
        let token = shop.customer(&format!("buyer{n}")).await;
        let (gateway, ids, buying, placed) = (shop.gateway.clone(), ids.clone(), buying.clone(), placed.clone());
        buyers.spawn(async move {
            let mut cart = shop_proto::cart::cart_service_client::CartServiceClient::new(gateway);
            let mut round = 0;
            while buying.load(Ordering::SeqCst) {
                let add =
                    shop_proto::cart::AddCartItemRequest { product_id: ids[(n + round) % ids.len()], quantity: 2 };
                cart.add_cart_item(bearer(add, &token)).await.expect("add to cart");
                let key = format!("buyer{n}-{round}");
                let request = shop_proto::cart::CheckoutRequest { idempotency_key: key };
                cart.checkout(bearer(request, &token)).await.expect("checkout");
                placed.fetch_add(1, Ordering::SeqCst);
                round += 1;
            }
        });
    }
    eventually("checkouts under way", Duration::from_secs(30), async || {
        let done = placed.load(Ordering::SeqCst);
        if done >= 8 { Ok(()) } else { Err(done) }
    })
    .await;

    // The backup, as docs/OPERATIONS.md takes it: one snapshot of the whole database.
    let dump = std::env::temp_dir().join(format!("{}.dump", shop.database.name));
    let before_dump = placed.load(Ordering::SeqCst);
    let dumped = run(std::process::Command::new("pg_dump")
        .args(["--format=custom", "--file"])
        .arg(&dump)
        .arg(libpq_url(&shop.database.url)))
    .await;
    assert!(dumped.success(), "pg_dump: {dumped}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    buying.store(false, Ordering::SeqCst);
    buyers.join_all().await;
    let before = placed.load(Ordering::SeqCst);

    // The restore: a fresh database, pg_restore, a suite started on it.
    let restored = TestDatabase::empty().await.expect("an empty database");
    let began = Instant::now();
    let restore = run(std::process::Command::new("pg_restore")
        .args(["--no-owner", "--exit-on-error", "--dbname"])
        .arg(libpq_url(&restored.url))
        .arg(&dump))
    .await;
    let _ = std::fs::remove_file(&dump);
    assert!(restore.success(), "pg_restore: {restore}");
    // Checkouts caught mid-way by the snapshot are PENDING in it: recovery
    // fails them and gives their stock back once they are this old.
    let again = TestShop::start_on(restored, |config| {
        config.cart_order.pending_timeout_ms = 2_000;
        config.cart_order.recovery_interval_ms = 500;
    })
    .await;
    let pool = again.db().await;

    // The books: checkouts that were mid-way at the snapshot are settled by
    // cart-order's recovery, and then every unit ordered is a unit sold.
    let (orders, stocked_products) =
        eventually("the restored books balance", Duration::from_secs(30), async || books(&pool).await).await;
    assert_eq!(stocked_products, ids.len());
    assert!(orders as usize >= before_dump, "the {before_dump} orders placed before the dump are there: {orders}");

    // Catalog built its index from the record: searching finds what it holds.
    let admin_again = again.login("root").await.access_token;
    eventually("the rebuilt index answers with the restored stock", Duration::from_secs(30), async || {
        let request = ListProductsRequest { search: "drill".into(), page_size: 10, ..Default::default() };
        let found = again.catalog().list_products(request).await.map_err(|status| status.to_string())?.into_inner();
        let sold: BTreeMap<i64, i64> = found.products.iter().map(|product| (product.id, product.sold_count)).collect();
        let expected = units_in_orders(&pool).await;
        let all: BTreeMap<i64, i64> = ids.iter().map(|id| (*id, expected.get(id).copied().unwrap_or(0))).collect();
        if sold == all { Ok(()) } else { Err(format!("listed {sold:?}, orders {all:?}")) }
    })
    .await;

    // Reporting's totals equal the restored orders.
    eventually("the report equals the restored orders", Duration::from_secs(30), async || {
        let report = units_in_report(&again, &admin_again).await.map_err(|status| status.to_string())?;
        let orders = units_in_orders(&pool).await;
        if report == orders { Ok(()) } else { Err(format!("report {report:?}, orders {orders:?}")) }
    })
    .await;
    let restored_in = began.elapsed();

    // The restored shop sells: a new checkout, and the books still balance.
    let late = again.customer("after-restore").await;
    add(&again, &late, ids[0], 3).await.expect("add after the restore");
    checkout(&again, &late, "after-restore").await.expect("checkout after the restore");
    eventually("the books balance after a new sale", Duration::from_secs(30), async || books(&pool).await).await;
    eprintln!(
        "restore drill: {orders} of {before} orders in the dump ({before_dump} placed when it began); \
         restored and consistent in {restored_in:?}"
    );
}
