//! The internal InventoryService, called as the order service calls it:
//! straight to the catalog, with the service credential.

use shop_proto::catalog::inventory_service_client::InventoryServiceClient;
use shop_proto::catalog::{GetProductRequest, Product, ReleaseStockRequest, ReserveLine, ReserveStockRequest};
use tonic::{Code, Request};

use crate::harness::{TestShop, assert_invalid_field, bearer, product};

fn reserve(order_id: i64, lines: &[(i64, i32)]) -> ReserveStockRequest {
    ReserveStockRequest {
        order_id,
        lines: lines
            .iter()
            .map(|(product_id, quantity)| ReserveLine { product_id: *product_id, quantity: *quantity })
            .collect(),
    }
}

async fn current(shop: &TestShop, id: i64) -> Product {
    shop.catalog().get_product(GetProductRequest { id }).await.unwrap().into_inner()
}

/// An admin, a category and one product per stock level given.
async fn products_with_stock(shop: &TestShop, stocks: &[i32]) -> Vec<Product> {
    let admin = shop.admin("root").await;
    let category = shop.create_category(&admin, "Gadgets").await;
    let mut products = Vec::new();
    for (n, stock) in stocks.iter().enumerate() {
        products.push(shop.create_product(&admin, product(&format!("Gadget {n}"), "19.99", *stock, category.id)).await);
    }
    products
}

#[tokio::test]
async fn two_hundred_concurrent_reservations_sell_exactly_the_fifty_in_stock() {
    let shop = TestShop::start().await;
    let widget = products_with_stock(&shop, &[50]).await.remove(0);
    let channel = shop.catalog_internal().await;
    let mut reservations = tokio::task::JoinSet::new();
    for order_id in 1..=200 {
        let mut inventory = InventoryServiceClient::new(channel.clone());
        reservations.spawn(async move { inventory.reserve_stock(reserve(order_id, &[(widget.id, 1)])).await });
    }
    let results = reservations.join_all().await;
    let sold = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(sold, 50);
    for status in results.iter().filter_map(|result| result.as_ref().err()) {
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(status.message().contains(&format!("product {}", widget.id)), "{status:?}");
    }
    let after = current(&shop, widget.id).await;
    assert_eq!((after.stock, after.sold_count), (0, 50));
}

#[tokio::test]
async fn a_reservation_returns_its_snapshot_and_a_replay_changes_nothing() {
    let shop = TestShop::start().await;
    let products = products_with_stock(&shop, &[5, 5]).await;
    let mut inventory = InventoryServiceClient::new(shop.catalog_internal().await);
    // Lines arrive unsorted and split; they are merged per product.
    let request = reserve(7, &[(products[1].id, 1), (products[0].id, 2), (products[1].id, 1)]);
    let first = inventory.reserve_stock(request.clone()).await.unwrap().into_inner();
    let lines: Vec<_> = first.lines.iter().map(|line| (line.product_id, line.quantity)).collect();
    assert_eq!(lines, [(products[0].id, 2), (products[1].id, 2)]);
    assert_eq!(first.lines[0].title, "Gadget 0");
    assert_eq!(first.lines[0].unit_price, "19.99");
    assert_eq!(first.lines[0].category_slug, "gadgets");
    assert_eq!(first.lines[0].category_name, "Gadgets");

    let replay = inventory.reserve_stock(request).await.unwrap().into_inner();
    assert_eq!(replay, first);
    assert_eq!(current(&shop, products[0].id).await.stock, 3);
    assert_eq!(current(&shop, products[1].id).await.stock, 3);
}

#[tokio::test]
async fn one_short_line_changes_nothing_and_names_the_product() {
    let shop = TestShop::start().await;
    let products = products_with_stock(&shop, &[5, 1]).await;
    let mut inventory = InventoryServiceClient::new(shop.catalog_internal().await);
    let status = inventory.reserve_stock(reserve(1, &[(products[0].id, 2), (products[1].id, 2)])).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains(&format!("product {}", products[1].id)), "{status:?}");
    assert!(status.message().contains("Gadget 1"), "{status:?}");
    let first = current(&shop, products[0].id).await;
    assert_eq!((first.stock, first.sold_count), (5, 0));
    // The order id was not used up: a smaller order under it succeeds.
    inventory.reserve_stock(reserve(1, &[(products[0].id, 2)])).await.unwrap();
}

#[tokio::test]
async fn release_gives_stock_back_once() {
    let shop = TestShop::start().await;
    let widget = products_with_stock(&shop, &[5]).await.remove(0);
    let mut inventory = InventoryServiceClient::new(shop.catalog_internal().await);
    inventory.reserve_stock(reserve(3, &[(widget.id, 4)])).await.unwrap();
    assert_eq!((current(&shop, widget.id).await.stock, current(&shop, widget.id).await.sold_count), (1, 4));
    assert!(inventory.release_stock(ReleaseStockRequest { order_id: 3 }).await.unwrap().into_inner().released);
    assert!(!inventory.release_stock(ReleaseStockRequest { order_id: 3 }).await.unwrap().into_inner().released);
    let after = current(&shop, widget.id).await;
    assert_eq!((after.stock, after.sold_count), (5, 0));
    // A released order cannot reserve again.
    let late = inventory.reserve_stock(reserve(3, &[(widget.id, 1)])).await.unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn releasing_an_unknown_order_makes_its_late_reservation_fail() {
    let shop = TestShop::start().await;
    let widget = products_with_stock(&shop, &[5]).await.remove(0);
    let mut inventory = InventoryServiceClient::new(shop.catalog_internal().await);
    assert!(!inventory.release_stock(ReleaseStockRequest { order_id: 42 }).await.unwrap().into_inner().released);
    let late = inventory.reserve_stock(reserve(42, &[(widget.id, 1)])).await.unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition);
    assert_eq!(current(&shop, widget.id).await.stock, 5);
}

#[tokio::test]
async fn archived_or_unknown_products_cannot_be_reserved() {
    let shop = TestShop::start().await;
    let products = products_with_stock(&shop, &[5]).await;
    let admin = shop.login("root").await.access_token;
    let request = shop_proto::catalog::DeleteProductRequest { id: products[0].id };
    shop.catalog().delete_product(bearer(request, &admin)).await.unwrap();
    let mut inventory = InventoryServiceClient::new(shop.catalog_internal().await);
    let archived = inventory.reserve_stock(reserve(1, &[(products[0].id, 1)])).await.unwrap_err();
    assert_eq!(archived.code(), Code::NotFound);
    let unknown = inventory.reserve_stock(reserve(2, &[(9999, 1)])).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn bad_reservation_requests_are_named() {
    let shop = TestShop::start().await;
    let mut inventory = InventoryServiceClient::new(shop.catalog_internal().await);
    assert_invalid_field(&inventory.reserve_stock(reserve(0, &[(1, 1)])).await.unwrap_err(), "order_id");
    assert_invalid_field(&inventory.reserve_stock(reserve(1, &[])).await.unwrap_err(), "lines");
    assert_invalid_field(&inventory.reserve_stock(reserve(1, &[(1, 0)])).await.unwrap_err(), "lines");
    assert_invalid_field(&inventory.reserve_stock(reserve(1, &[(1, 1001)])).await.unwrap_err(), "lines");
    assert_invalid_field(&inventory.release_stock(ReleaseStockRequest { order_id: -1 }).await.unwrap_err(), "order_id");
}

#[tokio::test]
async fn inventory_refuses_calls_without_the_service_credential() {
    let shop = TestShop::start().await;
    let mut inventory = InventoryServiceClient::new(crate::harness::connect(shop.suite.catalog_addr).await);
    let status = inventory.reserve_stock(Request::new(reserve(1, &[(1, 1)]))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}
