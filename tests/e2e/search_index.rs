//! Listings answered by catalog's search index: the same rules as ever,
//! checked against Postgres itself (a SQL recount of the record), the
//! replica's own writes seen at once, sales within a second, and an index
//! that converges to the record after catalog is killed while indexing.

use std::time::Duration;

use shop_proto::catalog::{DeleteProductRequest, ListProductsRequest, ListProductsResponse, UpdateProductRequest};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::cart::{add, stocked};
use crate::checkout::checkout;
use crate::harness::{TestShop, bearer, connect, eventually, product};

async fn listing(shop: &TestShop, request: ListProductsRequest) -> ListProductsResponse {
    shop.catalog().list_products(request).await.expect("list products").into_inner()
}

fn search(text: &str, ordering: &str) -> ListProductsRequest {
    ListProductsRequest { search: text.into(), ordering: ordering.into(), page_size: 100, ..Default::default() }
}

/// The ids and total Postgres itself gives for a search, by the contract's
/// rule: every term in `lower(title || ' ' || description)`, wildcards
/// literal, the ordering's column then id, both in its direction.
async fn recount(shop: &TestShop, terms: &[&str], ordering: &str, limit: i64, offset: i64) -> (Vec<i64>, i64) {
    let pool = shop.db().await;
    let (column, direction) = match ordering.strip_prefix('-') {
        Some(column) => (column, "DESC"),
        None => (ordering, "ASC"),
    };
    let column = match column {
        "title" => "p.title COLLATE \"C\"",
        "sold_count" => "s.sold_count",
        other => other,
    };
    let patterns: Vec<String> = terms
        .iter()
        .map(|term| format!("%{}%", term.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")))
        .collect();
    let filter = "catalog.products p JOIN catalog.stock s ON s.product_id = p.id
                  WHERE p.archived_at IS NULL
                    AND (SELECT bool_and(lower(p.title || ' ' || p.description) LIKE pattern)
                           FROM unnest($1::text[]) AS pattern)";
    let total: i64 =
        sqlx::query_scalar(&format!("SELECT count(*) FROM {filter}")).bind(&patterns).fetch_one(&pool).await.unwrap();
    let ids: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT p.id FROM {filter} ORDER BY {column} {direction}, p.id {direction} LIMIT $2 OFFSET $3"
    ))
    .bind(&patterns)
    .bind(limit)
    .bind(offset)
    .fetch_all(&pool)
    .await
    .unwrap();
    (ids, total)
}

const ORDERINGS: [&str; 8] =
    ["price", "-price", "created_at", "-created_at", "sold_count", "-sold_count", "title", "-title"];

#[tokio::test]
async fn every_ordering_of_a_search_matches_a_sql_recount_page_by_page() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let category = shop.create_category(&admin, "Things").await;
    // Many equal prices and titles, so ties are broken by id; one commit per
    // product, so the index has many segments.
    for n in 0..40 {
        let title = ["Red lamp", "red Lamp", "Blue mug", "Ärger red"][n % 4];
        let price = ["5", "5.00", "12.50", "0.99"][n % 3];
        let mut request = product(title, price, 3, category.id);
        request.description = format!("item {n}, 100% cotton_{}", n % 5);
        shop.create_product(&admin, request).await;
    }
    for terms in [vec!["red"], vec!["LAMP", "red"], vec!["cotton_3"], vec!["100%"], vec!["ärger"], vec!["zebra"]] {
        for ordering in ORDERINGS {
            for (page, page_size) in [(1, 7), (2, 7), (6, 7), (9, 7)] {
                let request = ListProductsRequest {
                    search: terms.join(" "),
                    ordering: ordering.into(),
                    page,
                    page_size,
                    ..Default::default()
                };
                let answer = listing(&shop, request).await;
                let ids: Vec<i64> = answer.products.iter().map(|product| product.id).collect();
                let offset = i64::from((page - 1) * page_size);
                let expected = recount(&shop, &terms, ordering, i64::from(page_size), offset).await;
                assert_eq!((ids, answer.total_count), expected, "{terms:?} {ordering} page {page}");
            }
        }
    }
    // Non-ASCII letters fold case: "ÄRGER" finds "Ärger".
    assert_eq!(listing(&shop, search("ÄRGER", "")).await.total_count, 10);
}

#[tokio::test]
async fn a_write_shows_in_search_as_soon_as_it_returns() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let lamps = shop.create_category(&admin, "Lamps").await;
    let mugs = shop.create_category(&admin, "Mugs").await;
    let mut lantern = product("Brass lantern", "30", 2, lamps.id);
    lantern.description = "lights a room".into();
    let created = shop.create_product(&admin, lantern).await;
    assert_eq!(listing(&shop, search("lantern", "")).await.total_count, 1, "create");

    let rename = UpdateProductRequest {
        id: created.id,
        title: "Copper lantern".into(),
        update_mask: Some(prost_types::FieldMask { paths: vec!["title".into()] }),
        ..Default::default()
    };
    shop.catalog().update_product(bearer(rename, &admin)).await.unwrap();
    assert_eq!(listing(&shop, search("brass", "")).await.total_count, 0, "the old title is gone");
    assert_eq!(listing(&shop, search("copper", "")).await.total_count, 1, "update");

    let move_to_mugs = UpdateProductRequest {
        id: created.id,
        category_id: mugs.id,
        update_mask: Some(prost_types::FieldMask { paths: vec!["category_id".into()] }),
        ..Default::default()
    };
    shop.catalog().update_product(bearer(move_to_mugs, &admin)).await.unwrap();
    let in_mugs = ListProductsRequest { category: "mugs".into(), ..search("copper", "") };
    assert_eq!(listing(&shop, in_mugs).await.total_count, 1, "category move");

    shop.catalog().delete_product(bearer(DeleteProductRequest { id: created.id }, &admin)).await.unwrap();
    assert_eq!(listing(&shop, search("copper", "")).await.total_count, 0, "archive");
}

#[tokio::test]
async fn sales_show_in_the_sold_count_ordering_within_a_second() {
    let shop = TestShop::start().await;
    let (_, products) = stocked(&shop, &[("Desk lamp", "19.99", 10), ("Floor lamp", "49.99", 10)]).await;
    let alice = shop.customer("alice").await;
    add(&shop, &alice, products[0].id, 3).await.unwrap();
    checkout(&shop, &alice, "k").await.unwrap();
    let sold = tokio::time::Instant::now();
    let top = eventually("the sale reaches the most-sold ordering", Duration::from_secs(1), async || {
        let answer = listing(&shop, search("lamp", "-sold_count")).await;
        match answer.products.first() {
            Some(top) if top.id == products[0].id && top.sold_count == 3 => Ok(top.clone()),
            other => Err(other.map(|product| (product.id, product.sold_count))),
        }
    })
    .await;
    assert!(sold.elapsed() <= Duration::from_secs(1));
    assert_eq!(top.stock, 7, "rows carry the record's current values");
}

#[tokio::test]
async fn catalog_killed_while_indexing_converges_to_the_record() {
    let mut shop = TestShop::start().await;
    let pool = shop_catalog::SCHEMA.connect(&shop.config.database, 2).await.unwrap();
    // Enough products that indexing is under way when catalog goes down.
    shop_catalog::seed(&pool, 20_000, 5, |_, _| {}).await.unwrap();
    let outage = shop.stop_service("catalog").await;
    let mut running = outage.restart().await;
    for (round, alive_ms) in [30_u64, 200, 5, 600].into_iter().enumerate() {
        // More changes land while it runs (and while it is down).
        shop_catalog::seed(&pool, 20_000 + 500 * (round as u64 + 1), 5, |_, _| {}).await.unwrap();
        tokio::time::sleep(Duration::from_millis(alive_ms)).await;
        running.stop().await;
        if round == 2 {
            // An index lost altogether is rebuilt.
            let _ = std::fs::remove_dir_all(&shop.config.catalog.index_dir);
        }
        running = outage.restart().await;
    }
    // Whenever catalog says SERVING, the index answers.
    let mut health = HealthClient::new(connect(shop.suite.catalog_addr).await);
    eventually("catalog serves again", Duration::from_secs(60), async || {
        let status =
            health.check(HealthCheckRequest { service: String::new() }).await.map(|answer| answer.into_inner().status);
        match status {
            Ok(status) if status == ServingStatus::Serving as i32 => Ok(()),
            other => Err(other.map_err(|error| error.code())),
        }
    })
    .await;
    for (terms, ordering) in
        [(vec!["red"], "-created_at"), (vec!["cotton", "lamp"], "price"), (vec!["e"], "-sold_count")]
    {
        let request = ListProductsRequest {
            search: terms.join(" "),
            ordering: ordering.into(),
            page_size: 50,
            ..Default::default()
        };
        let expected = recount(&shop, &terms, ordering, 50, 0).await;
        eventually("the index matches a SQL recount", Duration::from_secs(30), async || {
            let answer = listing(&shop, request.clone()).await;
            let ids: Vec<i64> = answer.products.iter().map(|product| product.id).collect();
            if (ids.clone(), answer.total_count) == expected { Ok(()) } else { Err((answer.total_count, expected.1)) }
        })
        .await;
    }
    running.stop().await;
}
