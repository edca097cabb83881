//! `shop bench checkout` balances its books after the run, and an audit
//! that finds the books off says where.

use std::time::Duration;

use shop::bench::books::{Answers, Audit};
use shop::bench::{BenchArgs, Scenario};

use crate::harness::TestShop;

async fn seeded_shop() -> TestShop {
    let shop = TestShop::start().await;
    let pool = shop_catalog::SCHEMA.connect(&shop.config.database, 2).await.unwrap();
    shop_catalog::seed(&pool, 40, 3, |_, _| {}).await.unwrap();
    shop
}

fn checkout_args(shop: &TestShop) -> BenchArgs {
    BenchArgs {
        scenario: Scenario::Checkout,
        concurrency: 6,
        duration: Duration::from_secs(2),
        target: shop.suite.gateway_addr.to_string(),
        connections: 2,
        json: false,
        admin: "root".into(),
        lines: 1..=3,
        units: 1..=1,
        skip_books: false,
        retries: 0,
        protocol: shop::bench::Protocol::Grpc,
        judged: Default::default(),
        database: shop.config.database.clone(),
        tls: Default::default(),
    }
}

#[tokio::test]
async fn the_catalog_reads_run_over_every_protocol_without_an_error() {
    use shop::bench::Protocol;
    let shop = seeded_shop().await;
    for protocol in [Protocol::Grpc, Protocol::GrpcWeb, Protocol::ConnectJson, Protocol::ConnectProto] {
        for scenario in [Scenario::GetProduct, Scenario::ListFiltered, Scenario::SearchBox] {
            let args = BenchArgs {
                scenario,
                protocol,
                duration: Duration::from_millis(500),
                skip_books: true,
                retries: 0,
                ..checkout_args(&shop)
            };
            let report = shop::bench::measure(&args).await.expect("a run");
            assert!(report.requests > 0, "{protocol:?} {scenario:?}: no call");
            assert!(report.errors.is_empty(), "{protocol:?} {scenario:?}: {:?}", report.errors);
        }
    }
}

#[tokio::test]
async fn the_old_backends_checkout_flow_is_one_line_of_one_to_three_units() {
    let shop = seeded_shop().await;
    let args = BenchArgs { lines: 1..=1, units: 1..=3, ..checkout_args(&shop) };
    let (_, balance) = shop::bench::measure_and_balance(&args).await.expect("the books balance");
    let balance = balance.expect("audited");
    assert!(balance.checkouts_ok > 0);
    let lines_per_order: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT count(*), max(l.quantity)::bigint FROM orders.order_lines l JOIN orders.orders o ON o.id = l.order_id
          WHERE o.status = 'PLACED' GROUP BY o.id",
    )
    .fetch_all(&shop.db().await)
    .await
    .unwrap();
    assert!(lines_per_order.iter().all(|(lines, _)| *lines == 1), "one line per order: {lines_per_order:?}");
    assert!(lines_per_order.iter().all(|(_, units)| (1..=3).contains(units)), "{lines_per_order:?}");
    assert!(lines_per_order.iter().any(|(_, units)| *units > 1), "more than one unit sometimes");
}

#[tokio::test]
async fn a_checkout_bench_balances_its_books() {
    let shop = seeded_shop().await;
    let args = checkout_args(&shop);
    let (report, balance) = shop::bench::measure_and_balance(&args).await.expect("the books balance");
    let balance = balance.expect("a checkout run is audited");
    let refused = report.errors.get("FailedPrecondition").copied().unwrap_or_default();
    assert_eq!(report.errors.values().sum::<u64>(), refused, "only sold-out refusals: {:?}", report.errors);
    assert!(balance.checkouts_ok > 0, "some checkouts went through");
    assert_eq!(balance.orders_placed, balance.checkouts_ok as i64, "one order per checkout answered OK");
    assert!(balance.units_sold >= balance.orders_placed, "every order holds a unit at least");
    assert_eq!(balance.products_checked, 40);
}

#[tokio::test]
async fn an_audit_names_what_does_not_balance() {
    let shop = seeded_shop().await;
    let audit = Audit::open(&shop.config.database, "nothing-placed-").await.unwrap();
    // A unit marked sold behind the services' back: no order holds it, and
    // the product's stock + sold grew.
    let product_id: i64 = sqlx::query_scalar("UPDATE catalog.stock SET sold_count = sold_count + 1 WHERE product_id = (SELECT min(product_id) FROM catalog.stock) RETURNING product_id")
        .fetch_one(&shop.db().await)
        .await
        .unwrap();
    let error = audit.close(Answers { ok: 1, uncertain: 0 }).await.expect_err("the books are off").to_string();
    assert!(error.contains("1 checkouts answered OK (0 failed uncertainly) but 0 orders were placed"), "{error}");
    assert!(error.contains("0 units in live orders but 1 units sold"), "{error}");
    assert!(error.contains(&format!("product {product_id}: stock + sold")), "{error}");
}

#[tokio::test]
async fn the_search_box_puts_the_product_meant_in_the_first_five() {
    use shop::bench::quality;
    let shop = TestShop::start().await;
    let pool = shop_catalog::SCHEMA.connect(&shop.config.database, 2).await.unwrap();
    shop_catalog::seed(&pool, 3_000, 20, |_, _| {}).await.unwrap();
    let channel = crate::harness::connect(shop.suite.gateway_addr).await;
    // The seed bypasses the service: its products reach the index as its events are applied.
    let catalog = shop_proto::catalog::catalog_service_client::CatalogServiceClient::new(channel.clone());
    crate::harness::eventually("the index holds the seeded products", Duration::from_secs(60), async || {
        let everything = shop_proto::catalog::SearchProductsRequest::default();
        let total = catalog.clone().search_products(everything).await.map(|found| found.into_inner().total_count);
        if matches!(total, Ok(3_000)) { Ok(()) } else { Err(total) }
    })
    .await;
    let products = quality::sample(channel.clone(), 400, 11).await.unwrap();
    let judged = quality::make(&products, 40, 11);
    assert_eq!(judged.len(), 40 * quality::KINDS.len());
    let scores = quality::score(channel, &judged).await.unwrap();
    let share = |kind: &str| scores.iter().find(|score| score.kind == kind).unwrap().top_five_share();
    // The goals: one typo ≥ 95 %, prefixes ≥ 90 % in the first five.
    assert!(share("exact") >= 0.95, "{scores:?}");
    assert!(share("one-typo") >= 0.95, "{scores:?}");
    assert!(share("prefix") >= 0.90, "{scores:?}");
    assert!(share("two-typos") >= 0.80, "{scores:?}");
    assert!(share("words+filters") >= 0.80, "{scores:?}");
}
