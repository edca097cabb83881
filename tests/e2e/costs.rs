//! No call costs the suite more than its caller pays: listings stop at a
//! depth, expensive work has a budget, a value echoed in an error cannot
//! break the connection other calls share, backends answer only the
//! gateway, and stock plus what may come back always fits.

use std::time::Duration;

use shop_proto::catalog::catalog_service_client::CatalogServiceClient;
use shop_proto::catalog::get_category_request::Key;
use shop_proto::catalog::{GetCategoryRequest, GetProductRequest, ListProductsRequest, UpdateProductRequest};
use shop_proto::order::CancelOrderRequest;
use tokio::task::JoinSet;
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::cart::{add, stocked};
use crate::checkout::checkout;
use crate::harness::{TestShop, assert_invalid_field, bearer, connect, internal, product};

fn listing(search: &str, ordering: &str, page: i32, page_size: i32) -> ListProductsRequest {
    ListProductsRequest { search: search.into(), ordering: ordering.into(), page, page_size, ..Default::default() }
}

#[tokio::test]
async fn pages_deeper_than_the_limit_are_out_of_range_and_past_the_end_stays_empty() {
    let shop = TestShop::start_with(|config| config.catalog.max_listing_depth = 20).await;
    let admin = shop.admin("root").await;
    let category = shop.create_category(&admin, "Books").await;
    for n in 0..30 {
        shop.create_product(&admin, product(&format!("Tome {n:02}"), "5.00", 3, category.id)).await;
    }
    // Postgres (plain orderings) and the search index (terms, sold count) alike.
    for (search, ordering) in [("", "title"), ("", "-price"), ("", ""), ("tome", "title"), ("", "-sold_count")] {
        let mut catalog = shop.catalog();
        let within = catalog.list_products(listing(search, ordering, 2, 10)).await.unwrap().into_inner();
        assert_eq!((within.products.len(), within.total_count), (10, 30), "{search:?} {ordering:?}");

        let deep = catalog.list_products(listing(search, ordering, 3, 10)).await.unwrap_err();
        assert_eq!(deep.code(), Code::OutOfRange, "{search:?} {ordering:?}: {deep:?}");
        let bad_request = deep.get_details_bad_request().expect("a BadRequest detail");
        assert_eq!(bad_request.field_violations[0].field, "page");
        assert!(deep.message().contains("20"), "{deep:?}");

        let past_the_end = catalog.list_products(listing(search, ordering, 10, 10)).await.unwrap().into_inner();
        assert!(past_the_end.products.is_empty(), "{search:?} {ordering:?}");
        assert_eq!(past_the_end.total_count, 30);
    }
}

#[tokio::test]
async fn searches_beyond_their_budget_are_resource_exhausted_and_the_rest_answer() {
    let shop = TestShop::start_with(|config| {
        config.catalog.search_concurrency = 1;
        config.catalog.expensive_call_queue = 0;
        config.catalog.search_cache_entries = 0;
    })
    .await;
    let pool = shop_catalog::SCHEMA.connect(&shop.config.database, 2).await.unwrap();
    shop_catalog::seed(&pool, 20_000, 5, |_, _| {}).await.unwrap();
    let catalog = shop.catalog();
    // Every search waits for the index to hold the seed first.
    crate::harness::eventually("the index holds the seed", Duration::from_secs(60), async || {
        let total = catalog.clone().list_products(listing("a", "", 1, 1)).await.map(|r| r.into_inner().total_count);
        match total {
            Ok(total) if total > 0 => Ok(()),
            other => Err(other),
        }
    })
    .await;

    let mut searches = JoinSet::new();
    for n in 0..48 {
        let mut catalog = catalog.clone();
        // Distinct, so no answer comes from another.
        let terms = format!("a e i o u r s t n l {}", ["c", "d", "m", "p", "g", "h"][n % 6]);
        searches.spawn(async move { catalog.list_products(listing(&terms, "title", 1 + n as i32 % 8, 100)).await });
    }
    let codes: Vec<Code> =
        searches.join_all().await.into_iter().map(|answer| answer.map_or_else(|s| s.code(), |_| Code::Ok)).collect();
    assert!(codes.iter().all(|code| matches!(code, Code::Ok | Code::ResourceExhausted)), "{codes:?}");
    assert!(codes.contains(&Code::ResourceExhausted), "one search at a time, none waiting: {codes:?}");
    assert!(codes.contains(&Code::Ok), "{codes:?}");
    // A turn comes free again once the work is done.
    catalog.clone().list_products(listing("tome", "", 1, 10)).await.expect("a search after the burst");
}

#[tokio::test]
async fn a_huge_value_echoed_in_an_error_is_cut_and_breaks_no_shared_connection() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let category = shop.create_category(&admin, "Books").await;
    let book = shop.create_product(&admin, product("Dune", "9.99", 5, category.id)).await;
    let huge = "a".repeat(70_000);

    // Others' calls in flight on the gateway's one connection to catalog.
    let mut victims = JoinSet::new();
    for _ in 0..20 {
        let mut catalog = shop.catalog();
        victims.spawn(async move {
            let mut codes = Vec::new();
            for _ in 0..10 {
                let answer = catalog.get_product(GetProductRequest { id: book.id }).await;
                codes.push(answer.map_or_else(|status| status.code(), |_| Code::Ok));
            }
            codes
        });
    }
    let mut catalog = shop.catalog();
    for _ in 0..5 {
        let by_category =
            catalog.list_products(ListProductsRequest { category: huge.clone(), ..Default::default() }).await;
        let status = by_category.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert!(status.message().len() < 200, "{} bytes", status.message().len());
        assert!(status.message().contains("70000 characters"), "{}", status.message());

        let ordering = catalog.list_products(listing("", &huge, 1, 10)).await.unwrap_err();
        assert_invalid_field(&ordering, "ordering");
        assert!(ordering.message().len() < 300, "{} bytes", ordering.message().len());

        let slug = catalog.get_category(GetCategoryRequest { key: Some(Key::Slug(huge.clone())) }).await;
        assert_eq!(slug.unwrap_err().code(), Code::NotFound);
    }
    for codes in victims.join_all().await {
        assert!(codes.iter().all(|code| *code == Code::Ok), "another caller's calls failed: {codes:?}");
    }
}

#[tokio::test]
async fn backends_answer_public_calls_only_with_the_service_credential() {
    let shop = TestShop::start().await;
    let direct = connect(shop.suite.catalog_addr).await;
    let status = CatalogServiceClient::new(direct).list_products(ListProductsRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("gateway"), "{status:?}");

    let with_credential = internal(shop.suite.catalog_addr).await;
    CatalogServiceClient::new(with_credential).list_products(ListProductsRequest::default()).await.expect("allowed");
    shop.catalog().list_products(ListProductsRequest::default()).await.expect("through the gateway");
}

#[tokio::test]
async fn stock_that_could_not_take_its_sales_back_is_refused_and_a_cancel_returns_every_unit() {
    let shop = TestShop::start().await;
    let (admin, products) = stocked(&shop, &[("Lamp", "10.00", i32::MAX)]).await;
    let lamp = &products[0];
    let alice = shop.customer("alice").await;
    add(&shop, &alice, lamp.id, 5).await.unwrap();
    let order = checkout(&shop, &alice, "").await.expect("checkout");

    let set_stock = |stock: i32| UpdateProductRequest {
        id: lamp.id,
        stock,
        update_mask: Some(prost_types::FieldMask { paths: vec!["stock".into()] }),
        ..Default::default()
    };
    let refused = shop.catalog().update_product(bearer(set_stock(i32::MAX), &admin)).await.unwrap_err();
    assert_invalid_field(&refused, "stock");
    assert!(refused.message().contains(&(i32::MAX - 5).to_string()), "{refused:?}");
    shop.catalog().update_product(bearer(set_stock(i32::MAX - 5), &admin)).await.expect("what fits");

    shop.orders().cancel_order(bearer(CancelOrderRequest { id: order.id }, &alice)).await.expect("cancel");
    crate::harness::eventually("the units come back", Duration::from_secs(10), async || {
        let now = shop.catalog().get_product(GetProductRequest { id: lamp.id }).await.unwrap().into_inner();
        if (now.stock, now.sold_count) == (i32::MAX, 0) { Ok(()) } else { Err((now.stock, now.sold_count)) }
    })
    .await;
}

#[tokio::test]
async fn titles_refuse_bidi_overrides_and_zero_width_spaces_and_keep_what_languages_need() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let category = shop.create_category(&admin, "Books").await;
    for title in ["Invoice\u{202E}fdp.exe", "Lamp\u{200B}", "\u{2066}Mug\u{2069}"] {
        let status = shop.catalog().create_product(bearer(product(title, "1.00", 1, category.id), &admin)).await;
        assert_invalid_field(&status.unwrap_err(), "title");
    }
    shop.create_product(&admin, product("می\u{200C}خواهم", "1.00", 1, category.id)).await;
}
