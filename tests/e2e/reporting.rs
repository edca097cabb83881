//! ReportingService through the gateway: the report's rules, answering while
//! its sources are down, and exactness across crashes of the consumer.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng as _;
use shop_platform::transport::server::Launch;
use shop_proto::catalog::{CreateCategoryRequest, UpdateProductRequest};
use shop_proto::order::{CancelOrderRequest, OrderStatus, UpdateOrderStatusRequest};
use shop_proto::reporting::reporting_service_client::ReportingServiceClient;
use shop_proto::reporting::{GetProductSalesReportRequest, GetProductSalesReportResponse, ReportSort};
use tonic::{Code, Status};

use crate::cart::{add, stocked};
use crate::checkout::checkout;
use crate::harness::{TestShop, assert_invalid_field, bearer, eventually, product};

async fn report(
    shop: &TestShop,
    admin: &str,
    request: GetProductSalesReportRequest,
) -> Result<GetProductSalesReportResponse, Status> {
    ReportingServiceClient::new(shop.gateway.clone())
        .get_product_sales_report(bearer(request, admin))
        .await
        .map(tonic::Response::into_inner)
}

/// (title, units, orders, revenue) per row.
fn rows(report: &GetProductSalesReportResponse) -> Vec<(String, i64, i64, String)> {
    report.rows.iter().map(|row| (row.title.clone(), row.units_sold, row.order_count, row.revenue.clone())).collect()
}

fn expected(rows: &[(&str, i64, i64, &str)]) -> Vec<(String, i64, i64, String)> {
    rows.iter()
        .map(|(title, units, orders, revenue)| (title.to_string(), *units, *orders, revenue.to_string()))
        .collect()
}

/// Polls the default report until `done` holds (the read model is eventually consistent).
async fn report_when(
    shop: &TestShop,
    admin: &str,
    request: GetProductSalesReportRequest,
    done: impl Fn(&GetProductSalesReportResponse) -> bool,
) -> GetProductSalesReportResponse {
    eventually("the report catches up", Duration::from_secs(10), async || {
        let current = report(shop, admin, request.clone()).await.expect("report");
        if done(&current) { Ok(current) } else { Err(current) }
    })
    .await
}

#[tokio::test]
async fn the_report_counts_placed_orders_from_their_snapshots() {
    let shop = TestShop::start().await;
    let (admin, lamps) =
        stocked(&shop, &[("Desk lamp", "10.00", 50), ("Bulb", "1.50", 50), ("Cable", "2.00", 50)]).await;
    let chairs = shop
        .catalog()
        .create_category(bearer(CreateCategoryRequest { name: "Chairs".into(), slug: String::new() }, &admin))
        .await
        .unwrap()
        .into_inner();
    let stool = shop.create_product(&admin, product("Stool", "30.00", 5, chairs.id)).await;

    let alice = shop.customer("alice").await;
    add(&shop, &alice, lamps[0].id, 2).await.unwrap();
    add(&shop, &alice, lamps[1].id, 4).await.unwrap();
    checkout(&shop, &alice, "").await.unwrap();
    let bob = shop.customer("bob").await;
    add(&shop, &bob, lamps[0].id, 1).await.unwrap();
    let bobs = checkout(&shop, &bob, "").await.unwrap();
    let ship = UpdateOrderStatusRequest { id: bobs.id, status: OrderStatus::Shipped as i32 };
    shop.orders().update_order_status(bearer(ship, &admin)).await.unwrap();
    let carol = shop.customer("carol").await;
    add(&shop, &carol, stool.id, 1).await.unwrap();
    let carols = checkout(&shop, &carol, "").await.unwrap();
    shop.orders().cancel_order(bearer(CancelOrderRequest { id: carols.id }, &carol)).await.unwrap();
    // A later price does not touch revenue: it comes from the snapshots.
    let reprice = UpdateProductRequest {
        id: lamps[0].id,
        price: "99.00".into(),
        update_mask: Some(prost_types::FieldMask { paths: vec!["price".into()] }),
        ..Default::default()
    };
    shop.catalog().update_product(bearer(reprice, &admin)).await.unwrap();
    // Rows show a product's current title; ties order titles by code point.
    let rename = UpdateProductRequest {
        id: lamps[2].id,
        title: "cable, braided".into(),
        update_mask: Some(prost_types::FieldMask { paths: vec!["title".into()] }),
        ..Default::default()
    };
    shop.catalog().update_product(bearer(rename, &admin)).await.unwrap();

    let most_sold = expected(&[
        ("Bulb", 4, 1, "6.00"),
        ("Desk lamp", 3, 2, "30.00"),
        ("Stool", 0, 0, "0.00"),
        ("cable, braided", 0, 0, "0.00"),
    ]);
    let all =
        report_when(&shop, &admin, GetProductSalesReportRequest::default(), |report| rows(report) == most_sold).await;
    assert_eq!(all.total_count, 4);
    assert!(all.as_of.is_some());
    assert_eq!((all.rows[0].category_slug.as_str(), all.rows[2].category_name.as_str()), ("lamps", "Chairs"));

    let least = GetProductSalesReportRequest { sort: ReportSort::LeastSold as i32, ..Default::default() };
    let least = report(&shop, &admin, least).await.unwrap();
    let titles: Vec<&str> = least.rows.iter().map(|row| row.title.as_str()).collect();
    assert_eq!(titles, ["Stool", "cable, braided", "Desk lamp", "Bulb"], "never-sold first, ties by title");

    let sold = GetProductSalesReportRequest { exclude_unsold: true, ..Default::default() };
    let sold = report(&shop, &admin, sold).await.unwrap();
    assert_eq!((sold.rows.len(), sold.total_count), (2, 2));

    let in_lamps = GetProductSalesReportRequest { category: "lamps".into(), ..Default::default() };
    let in_lamps = report(&shop, &admin, in_lamps).await.unwrap();
    assert_eq!((in_lamps.rows.len(), in_lamps.total_count), (3, 3));
    let second_page = GetProductSalesReportRequest { page: 2, page_size: 1, ..Default::default() };
    assert_eq!(report(&shop, &admin, second_page).await.unwrap().rows[0].title, "Desk lamp");
    let past_end = GetProductSalesReportRequest { page: 9, page_size: 1, ..Default::default() };
    assert!(report(&shop, &admin, past_end).await.unwrap().rows.is_empty());

    let unknown = GetProductSalesReportRequest { category: "no-such-slug".into(), ..Default::default() };
    assert_eq!(report(&shop, &admin, unknown).await.unwrap_err().code(), Code::NotFound);
    let too_big = GetProductSalesReportRequest { page_size: 501, ..Default::default() };
    assert_invalid_field(&report(&shop, &admin, too_big).await.unwrap_err(), "page_size");
    let negative = GetProductSalesReportRequest { page: -1, ..Default::default() };
    assert_invalid_field(&report(&shop, &admin, negative).await.unwrap_err(), "page");
    let bad_sort = GetProductSalesReportRequest { sort: 9, ..Default::default() };
    assert_invalid_field(&report(&shop, &admin, bad_sort).await.unwrap_err(), "sort");
    let denied = report(&shop, &alice, GetProductSalesReportRequest::default()).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn the_report_answers_from_its_read_model_while_its_sources_are_down() {
    let mut shop = TestShop::start().await;
    let (admin, products) = stocked(&shop, &[("Desk lamp", "10.00", 50)]).await;
    let alice = shop.customer("alice").await;
    add(&shop, &alice, products[0].id, 2).await.unwrap();
    checkout(&shop, &alice, "").await.unwrap();
    let before = report_when(&shop, &admin, GetProductSalesReportRequest::default(), |report| {
        report.rows.first().is_some_and(|row| row.units_sold == 2)
    })
    .await;

    let catalog_down = shop.stop_service("catalog").await;
    let orders_down = shop.stop_service("cart-order").await;
    let during = report(&shop, &admin, GetProductSalesReportRequest::default()).await.expect("still answers");
    assert_eq!(rows(&during), rows(&before));
    assert_eq!(during.as_of, before.as_of);

    // When they are back, the consumers reconnect and go on from their checkpoints.
    let _catalog = catalog_down.restart().await;
    let _orders = orders_down.restart().await;
    add(&shop, &alice, products[0].id, 1).await.unwrap();
    checkout(&shop, &alice, "").await.unwrap();
    report_when(&shop, &admin, GetProductSalesReportRequest::default(), |report| {
        report.rows.first().is_some_and(|row| (row.units_sold, row.order_count) == (3, 2))
    })
    .await;
}

/// The report straight from one reporting replica (not through the gateway),
/// as an admin the gateway vouched for.
async fn report_from(addr: std::net::SocketAddr) -> GetProductSalesReportResponse {
    let mut request = tonic::Request::new(GetProductSalesReportRequest::default());
    request.metadata_mut().insert("x-shop-service-token", crate::harness::SERVICE_TOKEN.parse().unwrap());
    request.metadata_mut().insert("x-shop-user-id", "1".parse().unwrap());
    request.metadata_mut().insert("x-shop-user-is-admin", "true".parse().unwrap());
    ReportingServiceClient::new(crate::harness::connect(addr).await)
        .get_product_sales_report(request)
        .await
        .expect("report from a replica")
        .into_inner()
}

#[tokio::test]
async fn a_second_replica_serves_reads_and_takes_over_consuming_when_the_first_dies() {
    let mut shop = TestShop::start_with(|config| config.reporting.retry_max_ms = 200).await;
    let (admin, products) = stocked(&shop, &[("Desk lamp", "10.00", 50)]).await;
    let alice = shop.customer("alice").await;
    add(&shop, &alice, products[0].id, 1).await.unwrap();
    checkout(&shop, &alice, "").await.unwrap();
    report_when(&shop, &admin, GetProductSalesReportRequest::default(), |report| {
        report.rows.first().is_some_and(|row| row.units_sold == 1)
    })
    .await;

    let mut second_config = shop.config.reporting.clone();
    second_config.listen_addr = "127.0.0.1:0".parse().unwrap();
    second_config.catalog_url = format!("http://{}", shop.suite.catalog_addr);
    second_config.orders_url = format!("http://{}", shop.suite.cart_order_addr);
    let stop = tokio_util::sync::CancellationToken::new();
    let credentials = shop_platform::auth::ServiceCredentials::new(crate::harness::SERVICE_TOKEN.into()).unwrap();
    let second = shop_reporting::start(
        &second_config,
        Launch {
            database: &shop.config.database,
            server: &shop.config.server,
            credentials,
            shutdown: Box::pin(stop.clone().cancelled_owned()),
        },
    )
    .await
    .expect("second replica");
    let _stop_second = stop.drop_guard();
    assert_eq!(report_from(second.addr).await.rows[0].units_sold, 1, "the second replica serves reads");

    // One consumer per stream across both replicas: one lock holder each.
    let db = shop.db().await;
    let holders: i64 = sqlx::query_scalar(
        // The consumers' session locks ("rpt-cat", "rpt-ord"), not a batch's passing write turn.
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND objid::bigint IN (x'2d636174'::bigint, x'2d6f7264'::bigint)",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(holders, 2, "one lock per stream, held by one replica");

    let _first_down = shop.stop_service("reporting").await;
    add(&shop, &alice, products[0].id, 2).await.unwrap();
    checkout(&shop, &alice, "").await.unwrap();
    eventually("the second replica takes over and applies the new order once", Duration::from_secs(10), async || {
        match report_from(second.addr).await.rows[0].units_sold {
            3 => Ok(()),
            units => Err(units),
        }
    })
    .await;
}

#[tokio::test]
async fn restarting_reporting_mid_stream_neither_loses_nor_double_counts() {
    let mut shop = TestShop::start().await;
    let (admin, products) =
        stocked(&shop, &[("A", "1.10", 1000), ("B", "2.20", 1000), ("C", "3.30", 1000), ("D", "4.40", 1000)]).await;
    let mut buyers = Vec::new();
    for n in 0..4 {
        buyers.push(shop.customer(&format!("buyer{n}")).await);
    }

    // Orders keep coming (some cancelled) while reporting is killed and
    // restarted over and over.
    let gateway = shop.gateway.clone();
    let shopping = {
        let ids: Vec<i64> = products.iter().map(|product| product.id).collect();
        let buyers = buyers.clone();
        tokio::spawn(async move {
            let cart = shop_proto::cart::cart_service_client::CartServiceClient::new(gateway.clone());
            let orders = shop_proto::order::order_service_client::OrderServiceClient::new(gateway);
            for round in 0..40 {
                let token = &buyers[round % buyers.len()];
                let lines: Vec<(i64, i32)> = {
                    let mut rng = rand::rng();
                    let chosen: Vec<i64> = ids.iter().copied().filter(|_| rng.random_bool(0.6)).collect();
                    chosen.into_iter().map(|id| (id, rng.random_range(1..=3))).collect()
                };
                for (product_id, quantity) in lines.iter().chain(std::iter::once(&(ids[0], 1))) {
                    let request = shop_proto::cart::AddCartItemRequest { product_id: *product_id, quantity: *quantity };
                    cart.clone().add_cart_item(bearer(request, token)).await.expect("add");
                }
                let order = cart
                    .clone()
                    .checkout(bearer(shop_proto::cart::CheckoutRequest::default(), token))
                    .await
                    .expect("checkout")
                    .into_inner()
                    .order
                    .expect("order");
                if round % 3 == 0 {
                    orders
                        .clone()
                        .cancel_order(bearer(CancelOrderRequest { id: order.id }, token))
                        .await
                        .expect("cancel");
                }
            }
        })
    };
    let outage = shop.stop_service("reporting").await;
    let mut kills = 0;
    while !shopping.is_finished() || kills < 5 {
        kills += 1;
        let running = outage.restart().await;
        let alive = rand::rng().random_range(0..150);
        tokio::time::sleep(Duration::from_millis(alive)).await;
        running.stop().await;
    }
    shopping.await.expect("shopping");
    let _reporting = outage.restart().await;

    // The recount, straight from the source of truth.
    let db = shop.db().await;
    let recount: Vec<(String, i64, i64, String)> = sqlx::query_as(
        "SELECT l.title, sum(l.quantity)::bigint, count(*), sum(l.unit_price * l.quantity)::text
           FROM orders.order_lines l JOIN orders.orders o ON o.id = l.order_id
          WHERE o.status IN ('PLACED', 'SHIPPED', 'DELIVERED')
          GROUP BY l.title ORDER BY l.title",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let by_title = |rows: Vec<(String, i64, i64, String)>| {
        rows.into_iter().map(|row| (row.0.clone(), row)).collect::<BTreeMap<_, _>>()
    };
    let expected = by_title(recount);
    assert_eq!(expected.len(), 4, "every product sold");
    let settled = report_when(&shop, &admin, GetProductSalesReportRequest::default(), |report| {
        by_title(rows(report)) == expected
    })
    .await;
    assert_eq!(settled.total_count, 4);
}
