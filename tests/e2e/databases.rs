//! Each service on the database it is given (SHOP_<SERVICE>_DATABASE_URL),
//! here catalog and reporting on a second PostgreSQL server while identity
//! and cart-order stay on the first: a checkout reserves stock across the
//! two and the report, fed by the streams, sees it.

use std::time::Duration;

use shop_proto::reporting::GetProductSalesReportRequest;
use shop_proto::reporting::reporting_service_client::ReportingServiceClient;
use sqlx::{Connection as _, PgConnection};

use crate::cart::{add, stocked};
use crate::checkout::checkout;
use crate::harness::{TestShop, bearer, eventually};

/// The second server (`.ci/run` makes it: a cluster on port 5433).
fn second_server() -> String {
    std::env::var("SHOP_TEST_SECOND_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5433".to_owned())
}

async fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(conn).await.unwrap_or_else(|error| panic!("{sql}: {error}"))
}

#[tokio::test]
async fn services_keep_their_data_on_the_servers_they_are_given() {
    let server = second_server();
    let Ok(mut admin_b) = PgConnection::connect(&format!("{server}/postgres")).await else {
        // A developer machine may have one server; CI must have two.
        eprintln!("skipped: no second PostgreSQL server at {server} (SHOP_TEST_SECOND_DATABASE_URL)");
        assert!(std::env::var_os("CI").is_none(), "CI must have a second PostgreSQL server at {server}");
        return;
    };
    let name =
        format!("shop_test_second_{}", std::process::id() as u64 * 1000 + u64::from(rand::random::<u16>() % 1000));
    let url = format!("{server}/{name}");
    let shop = TestShop::start_with(|config| {
        config.database.catalog_url = Some(url.clone().into());
        config.database.reporting_url = Some(url.clone().into());
    })
    .await;

    let (admin, products) = stocked(&shop, &[("Desk lamp", "12.50", 5)]).await;
    let ann = shop.customer("ann").await;
    add(&shop, &ann, products[0].id, 2).await.expect("add to cart");
    checkout(&shop, &ann, "two-servers").await.expect("checkout");
    eventually("the sale in the report", Duration::from_secs(10), async || {
        let report = ReportingServiceClient::new(shop.gateway.clone())
            .get_product_sales_report(bearer(GetProductSalesReportRequest::default(), &admin))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| status.code())?;
        let units: Vec<i64> = report.rows.iter().map(|row| row.units_sold).collect();
        if units == [2] { Ok(()) } else { Err(tonic::Code::Ok) }
    })
    .await;

    // Where the rows are: catalog's and reporting's on the second server,
    // identity's and the orders on the first, and nothing of either on the other.
    let mut b = PgConnection::connect(&url).await.expect("the second server's database");
    assert_eq!(count(&mut b, "SELECT count(*) FROM catalog.products").await, 1);
    assert_eq!(count(&mut b, "SELECT count(*) FROM catalog.stock WHERE sold_count = 2").await, 1);
    assert_eq!(count(&mut b, "SELECT count(*) FROM reporting.product_sales").await, 1);
    let schemas =
        "SELECT count(*) FROM information_schema.schemata WHERE schema_name IN ('identity', 'cart', 'orders')";
    assert_eq!(count(&mut b, schemas).await, 0);
    let mut a = shop.db().await.acquire().await.expect("the first server's database").detach();
    assert_eq!(count(&mut a, "SELECT count(*) FROM orders.orders").await, 1);
    assert_eq!(count(&mut a, "SELECT count(*) FROM identity.users").await, 2);
    assert_eq!(count(&mut a, "SELECT count(*) FROM catalog.products").await, 0);
    b.close().await.ok();
    drop(shop);
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin_b).await.expect("drop");
}
