//! `shop seed`: reaches its targets, only adds what is missing, and every
//! seeded product is in listings, totals and the event feed.

use shop_proto::catalog::catalog_events_service_client::CatalogEventsServiceClient;
use shop_proto::catalog::{ListCategoriesRequest, ListProductsRequest, SubscribeCatalogEventsRequest};

use std::time::Duration;

use crate::harness::{TestShop, eventually};

#[tokio::test]
async fn seeding_reaches_the_targets_once_with_events_for_everything() {
    let shop = TestShop::start().await;
    let pool = shop_catalog::SCHEMA.connect(&shop.config.database, 2).await.unwrap();
    let mut reported = Vec::new();
    let first = shop_catalog::seed(&pool, 200, 4, |written, missing| reported.push((written, missing))).await.unwrap();
    assert_eq!((first.categories_added, first.products_added), (4, 200));
    assert_eq!(reported.last(), Some(&(200, 200)));
    // Progress counts toward what is missing, not toward the target.
    reported.clear();
    let more = shop_catalog::seed(&pool, 300, 4, |written, missing| reported.push((written, missing))).await.unwrap();
    assert_eq!(more.products_added, 100);
    assert_eq!(reported.last(), Some(&(100, 100)));
    let again = shop_catalog::seed(&pool, 300, 4, |_, _| {}).await.unwrap();
    assert_eq!((again.categories_added, again.products_added), (0, 0));

    let categories = shop.catalog().list_categories(ListCategoriesRequest {}).await.unwrap().into_inner().categories;
    assert_eq!(categories.len(), 4);
    let listed = shop.catalog().list_products(ListProductsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.total_count, 300);
    let mut per_category = 0;
    for category in &categories {
        let request = ListProductsRequest { category: category.slug.clone(), ..Default::default() };
        per_category += shop.catalog().list_products(request).await.unwrap().into_inner().total_count;
    }
    assert_eq!(per_category, 300, "tracked totals add up");
    // The search index takes the seeded products from the outbox: eventually,
    // since `shop seed` writes straight to the database, not through catalog.
    let search = ListProductsRequest { search: listed.products[0].title.clone(), ..Default::default() };
    eventually("the seeded products are searchable", Duration::from_secs(10), async || {
        match shop.catalog().list_products(search.clone()).await.unwrap().into_inner().total_count {
            0 => Err(0),
            found => Ok(found),
        }
    })
    .await;

    // 4 category events, then 300 product events, numbered without gaps.
    let mut events = CatalogEventsServiceClient::new(shop.catalog_internal().await);
    let mut stream =
        events.subscribe(SubscribeCatalogEventsRequest { after_sequence: 303 }).await.unwrap().into_inner();
    assert_eq!(stream.message().await.unwrap().unwrap().sequence, 304);

    // A product created after seeding gets the next id and the next sequence.
    let admin = shop.admin("root").await;
    let created = shop.create_product(&admin, crate::harness::product("After", "1", 1, categories[0].id)).await;
    assert!(created.id > listed.products.iter().map(|p| p.id).max().unwrap());
    assert_eq!(stream.message().await.unwrap().unwrap().sequence, 305);
}

#[tokio::test]
async fn seeding_a_database_that_holds_categories_already_passes_over_taken_names() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    // Names the seed would pick, taken first (as the README walkthrough does).
    shop.create_category(&admin, "Men's Fashion").await;
    shop.create_category(&admin, "Books").await;
    shop.create_category(&admin, "Garden").await;
    let pool = shop_catalog::SCHEMA.connect(&shop.config.database, 2).await.unwrap();
    let seeded = shop_catalog::seed(&pool, 50, 10, |_, _| {}).await.expect("seeding a used database works");
    assert_eq!(seeded.categories_added, 7);
    assert!(seeded.categories_passed_over >= 2, "{}", seeded.categories_passed_over);
    let again = shop_catalog::seed(&pool, 50, 12, |_, _| {}).await.expect("and again");
    assert_eq!(again.categories_added, 2);
    let categories = shop.catalog().list_categories(ListCategoriesRequest {}).await.unwrap().into_inner().categories;
    assert_eq!(categories.len(), 12);
}
