//! The catalog's event feed: every change, in one gap-free sequence, backlog
//! first, then live, resumable from any sequence.

use std::time::Duration;

use shop_proto::catalog::catalog_event::Payload;
use shop_proto::catalog::catalog_events_service_client::CatalogEventsServiceClient;
use shop_proto::catalog::inventory_service_client::InventoryServiceClient;
use shop_proto::catalog::{
    CatalogEvent, DeleteProductRequest, ReleaseStockRequest, ReserveLine, ReserveStockRequest,
    SubscribeCatalogEventsRequest, UpdateProductRequest,
};
use tonic::Streaming;

use crate::harness::{TestShop, bearer, product};

async fn next(stream: &mut Streaming<CatalogEvent>) -> CatalogEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event within 10 s")
        .expect("stream open")
        .expect("an event")
}

fn kind(event: &CatalogEvent) -> &'static str {
    match event.payload.as_ref().expect("payload") {
        Payload::ProductUpserted(_) => "product_upserted",
        Payload::ProductArchived(_) => "product_archived",
        Payload::CategoryUpserted(_) => "category_upserted",
        Payload::CategoryDeleted(_) => "category_deleted",
        Payload::StockReserved(_) => "stock_reserved",
        Payload::StockReleased(_) => "stock_released",
    }
}

#[tokio::test]
async fn every_change_is_an_event_in_a_gap_free_sequence_backlog_then_live() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let category = shop.create_category(&admin, "Books").await;
    let book = shop.create_product(&admin, product("Dune", "9.99", 5, category.id)).await;
    let internal = shop.catalog_internal().await;
    let mut inventory = InventoryServiceClient::new(internal.clone());
    let line = ReserveLine { product_id: book.id, quantity: 2 };
    inventory.reserve_stock(ReserveStockRequest { order_id: 1, lines: vec![line] }).await.unwrap();

    let mut events = CatalogEventsServiceClient::new(internal.clone());
    let mut stream = events.subscribe(SubscribeCatalogEventsRequest { after_sequence: 0 }).await.unwrap().into_inner();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next(&mut stream).await);
    }
    assert_eq!(seen.iter().map(|event| event.sequence).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(seen.iter().map(kind).collect::<Vec<_>>(), ["category_upserted", "product_upserted", "stock_reserved"]);
    let Some(Payload::ProductUpserted(upserted)) = &seen[1].payload else { unreachable!() };
    assert_eq!(
        (upserted.title.as_str(), upserted.price.as_str(), upserted.category_slug.as_str()),
        ("Dune", "9.99", "books")
    );
    assert!(seen.iter().all(|event| event.occurred_at.is_some()));

    // Live: changes made after subscribing arrive on the same stream.
    let update = UpdateProductRequest {
        id: book.id,
        title: "Dune (2nd ed.)".into(),
        update_mask: Some(prost_types::FieldMask { paths: vec!["title".into()] }),
        ..Default::default()
    };
    shop.catalog().update_product(bearer(update, &admin)).await.unwrap();
    inventory.release_stock(ReleaseStockRequest { order_id: 1 }).await.unwrap();
    shop.catalog().delete_product(bearer(DeleteProductRequest { id: book.id }, &admin)).await.unwrap();
    let live = [next(&mut stream).await, next(&mut stream).await, next(&mut stream).await];
    assert_eq!(live.iter().map(|event| event.sequence).collect::<Vec<_>>(), [4, 5, 6]);
    assert_eq!(live.iter().map(kind).collect::<Vec<_>>(), ["product_upserted", "stock_released", "product_archived"]);

    // Resuming from any sequence picks up right after it.
    let mut resumed = events.subscribe(SubscribeCatalogEventsRequest { after_sequence: 4 }).await.unwrap().into_inner();
    assert_eq!(next(&mut resumed).await.sequence, 5);
    assert_eq!(next(&mut resumed).await.sequence, 6);
}

#[tokio::test]
async fn a_failed_change_writes_no_event() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let category = shop.create_category(&admin, "Books").await;
    let book = shop.create_product(&admin, product("Dune", "9.99", 1, category.id)).await;
    let internal = shop.catalog_internal().await;
    let mut inventory = InventoryServiceClient::new(internal.clone());
    let too_many = ReserveStockRequest { order_id: 1, lines: vec![ReserveLine { product_id: book.id, quantity: 2 }] };
    inventory.reserve_stock(too_many).await.unwrap_err();
    let duplicate = shop_proto::catalog::CreateCategoryRequest { name: "Books".into(), slug: String::new() };
    shop.catalog().create_category(bearer(duplicate, &admin)).await.unwrap_err();
    shop.create_category(&admin, "Toys").await;

    let mut events = CatalogEventsServiceClient::new(internal);
    let mut stream = events.subscribe(SubscribeCatalogEventsRequest { after_sequence: 2 }).await.unwrap().into_inner();
    let third = next(&mut stream).await;
    assert_eq!((third.sequence, kind(&third)), (3, "category_upserted"));
}
