//! OrderService through the gateway (history, visibility, cancellation, an
//! admin's status moves) and the internal OrderEventsService feed.

use shop_proto::catalog::GetProductRequest;
use shop_proto::order::order_event::Payload;
use shop_proto::order::order_events_service_client::OrderEventsServiceClient;
use shop_proto::order::{
    CancelOrderRequest, GetOrderRequest, ListAllOrdersRequest, ListOrdersRequest, Order, OrderStatus,
    SubscribeOrderEventsRequest, UpdateOrderStatusRequest,
};
use tokio_stream::StreamExt as _;
use tonic::Code;

use crate::cart::{add, stocked};
use crate::checkout::checkout;
use crate::harness::{TestShop, assert_invalid_field, bearer};

async fn stock_of(shop: &TestShop, id: i64) -> (i32, i64) {
    let product = shop.catalog().get_product(GetProductRequest { id }).await.unwrap().into_inner();
    (product.stock, product.sold_count)
}

/// `count` orders of one unit each for the user, oldest first.
async fn orders_of(shop: &TestShop, token: &str, product_id: i64, count: usize) -> Vec<Order> {
    let mut orders = Vec::new();
    for _ in 0..count {
        add(shop, token, product_id, 1).await.unwrap();
        orders.push(checkout(shop, token, "").await.unwrap());
    }
    orders
}

#[tokio::test]
async fn history_is_own_newest_first_and_paged() {
    let shop = TestShop::start().await;
    let (admin, products) = stocked(&shop, &[("Desk lamp", "19.99", 100)]).await;
    let alice = shop.customer("alice").await;
    let bob = shop.customer("bob").await;
    let alices = orders_of(&shop, &alice, products[0].id, 12).await;
    let bobs = orders_of(&shop, &bob, products[0].id, 1).await;

    let mut client = shop.orders();
    let first = client.list_orders(bearer(ListOrdersRequest::default(), &alice)).await.unwrap().into_inner();
    assert_eq!(first.total_count, 12);
    assert_eq!(first.orders.len(), 10, "default page size");
    assert_eq!((first.page, first.page_size), (1, 10), "the page used comes back");
    assert_eq!(first.orders[0].id, alices[11].id, "newest first");
    let second =
        client.list_orders(bearer(ListOrdersRequest { page: 2, page_size: 10 }, &alice)).await.unwrap().into_inner();
    assert_eq!(second.orders.iter().map(|order| order.id).collect::<Vec<_>>(), [alices[1].id, alices[0].id]);
    let past = client.list_orders(bearer(ListOrdersRequest { page: 9, page_size: 10 }, &alice)).await.unwrap();
    assert!(past.into_inner().orders.is_empty());
    let too_big = client.list_orders(bearer(ListOrdersRequest { page: 1, page_size: 101 }, &alice)).await;
    assert_invalid_field(&too_big.unwrap_err(), "page_size");
    assert_invalid_field(
        &client.list_orders(bearer(ListOrdersRequest { page: -1, page_size: 0 }, &alice)).await.unwrap_err(),
        "page",
    );

    let others = client.get_order(bearer(GetOrderRequest { id: bobs[0].id }, &alice)).await.unwrap_err();
    assert_eq!(others.code(), Code::NotFound, "another user's order");
    assert_eq!(
        client.get_order(bearer(GetOrderRequest { id: 777_777 }, &alice)).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_invalid_field(&client.get_order(bearer(GetOrderRequest { id: 0 }, &alice)).await.unwrap_err(), "id");
    let as_admin = client.get_order(bearer(GetOrderRequest { id: bobs[0].id }, &admin)).await.unwrap().into_inner();
    assert_eq!(as_admin.user_id, bobs[0].user_id, "admins see every order");

    let all = |request: ListAllOrdersRequest| {
        let mut client = shop.orders();
        let admin = admin.clone();
        async move { client.list_all_orders(bearer(request, &admin)).await }
    };
    let everything = all(ListAllOrdersRequest { page_size: 100, ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(everything.total_count, 13);
    assert_eq!((everything.page, everything.page_size), (1, 100));
    let only_bob = ListAllOrdersRequest { user_id: bobs[0].user_id, ..Default::default() };
    assert_eq!(all(only_bob).await.unwrap().into_inner().orders[0].id, bobs[0].id);
    assert_invalid_field(
        &all(ListAllOrdersRequest { user_id: -4, ..Default::default() }).await.unwrap_err(),
        "user_id",
    );
    assert_invalid_field(&all(ListAllOrdersRequest { status: 42, ..Default::default() }).await.unwrap_err(), "status");
    let denied = client.list_all_orders(bearer(ListAllOrdersRequest::default(), &alice)).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn cancelling_returns_the_stock_once_and_only_while_placed() {
    let shop = TestShop::start().await;
    let (admin, products) = stocked(&shop, &[("Desk lamp", "19.99", 10)]).await;
    let alice = shop.customer("alice").await;
    let bob = shop.customer("bob").await;
    let order = orders_of(&shop, &alice, products[0].id, 1).await.remove(0);
    assert_eq!(stock_of(&shop, products[0].id).await, (9, 1));

    let mut client = shop.orders();
    let theirs = client.cancel_order(bearer(CancelOrderRequest { id: order.id }, &bob)).await.unwrap_err();
    assert_eq!(theirs.code(), Code::NotFound);
    let cancelled =
        client.cancel_order(bearer(CancelOrderRequest { id: order.id }, &alice)).await.unwrap().into_inner();
    assert_eq!(cancelled.status, OrderStatus::Cancelled as i32);
    assert_eq!(cancelled.total_price, "19.99", "the snapshot stays");
    assert_eq!(stock_of(&shop, products[0].id).await, (10, 0), "stock and sales go back");
    let again = client.cancel_order(bearer(CancelOrderRequest { id: order.id }, &alice)).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert_eq!(stock_of(&shop, products[0].id).await, (10, 0), "once");

    let shipped = orders_of(&shop, &alice, products[0].id, 1).await.remove(0);
    let ship = UpdateOrderStatusRequest { id: shipped.id, status: OrderStatus::Shipped as i32 };
    client.update_order_status(bearer(ship, &admin)).await.unwrap();
    let late = client.cancel_order(bearer(CancelOrderRequest { id: shipped.id }, &alice)).await.unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition, "a shipped order cannot be cancelled");
}

#[tokio::test]
async fn admins_move_orders_only_along_the_life_cycle() {
    let shop = TestShop::start().await;
    let (admin, products) = stocked(&shop, &[("Desk lamp", "19.99", 10)]).await;
    let alice = shop.customer("alice").await;
    let orders = orders_of(&shop, &alice, products[0].id, 2).await;
    let mut client = shop.orders();
    let mut move_to = async |id: i64, status: OrderStatus| {
        client.update_order_status(bearer(UpdateOrderStatusRequest { id, status: status as i32 }, &admin)).await
    };

    assert_eq!(move_to(orders[0].id, OrderStatus::Delivered).await.unwrap_err().code(), Code::FailedPrecondition);
    let shipped = move_to(orders[0].id, OrderStatus::Shipped).await.unwrap().into_inner();
    assert_eq!(shipped.status, OrderStatus::Shipped as i32);
    assert_eq!(move_to(orders[0].id, OrderStatus::Shipped).await.unwrap_err().code(), Code::FailedPrecondition);
    assert_eq!(move_to(orders[0].id, OrderStatus::Cancelled).await.unwrap_err().code(), Code::FailedPrecondition);
    let delivered = move_to(orders[0].id, OrderStatus::Delivered).await.unwrap().into_inner();
    assert_eq!(delivered.status, OrderStatus::Delivered as i32);

    assert_eq!(move_to(orders[0].id, OrderStatus::Placed).await.unwrap_err().code(), Code::FailedPrecondition);
    assert_eq!(move_to(orders[1].id, OrderStatus::Pending).await.unwrap_err().code(), Code::FailedPrecondition);
    assert_eq!(move_to(999_999, OrderStatus::Placed).await.unwrap_err().code(), Code::NotFound);
    assert_invalid_field(&move_to(orders[1].id, OrderStatus::Unspecified).await.unwrap_err(), "status");
    assert_eq!(move_to(999_999, OrderStatus::Shipped).await.unwrap_err().code(), Code::NotFound);
    let cancelled = move_to(orders[1].id, OrderStatus::Cancelled).await.unwrap().into_inner();
    assert_eq!(cancelled.status, OrderStatus::Cancelled as i32);
    assert_eq!(stock_of(&shop, products[0].id).await, (9, 1), "an admin's cancellation returns stock too");

    let mut as_customer = shop.orders();
    let request = UpdateOrderStatusRequest { id: orders[1].id, status: OrderStatus::Shipped as i32 };
    let denied = as_customer.update_order_status(bearer(request, &alice)).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn order_events_stream_gap_free_and_resume_from_any_sequence() {
    let shop = TestShop::start().await;
    let (admin, products) = stocked(&shop, &[("Desk lamp", "19.99", 1)]).await;
    let alice = shop.customer("alice").await;
    let order = orders_of(&shop, &alice, products[0].id, 1).await.remove(0);
    add(&shop, &alice, products[0].id, 1).await.expect_err("sold out: nothing to add");
    let mut client = shop.orders();
    let ship = UpdateOrderStatusRequest { id: order.id, status: OrderStatus::Shipped as i32 };
    client.update_order_status(bearer(ship, &admin)).await.unwrap();

    let mut events = OrderEventsServiceClient::new(shop.cart_order_internal().await);
    let mut stream = events.subscribe(SubscribeOrderEventsRequest { after_sequence: 0 }).await.unwrap().into_inner();
    let placed = stream.next().await.unwrap().unwrap();
    assert_eq!(placed.sequence, 1);
    let Some(Payload::OrderPlaced(placed)) = placed.payload else { panic!("first event: {placed:?}") };
    assert_eq!(placed.order.unwrap().items.len(), 1, "with the full snapshot");
    let changed = stream.next().await.unwrap().unwrap();
    assert_eq!(changed.sequence, 2);
    assert!(
        matches!(changed.payload, Some(Payload::OrderStatusChanged(ref change)) if change.new_status == OrderStatus::Shipped as i32)
    );

    // Live: a cancellation of a second order arrives on the open stream.
    let restock = shop_proto::catalog::UpdateProductRequest {
        id: products[0].id,
        stock: 5,
        update_mask: Some(prost_types::FieldMask { paths: vec!["stock".into()] }),
        ..Default::default()
    };
    shop.catalog().update_product(bearer(restock, &admin)).await.unwrap();
    let second = orders_of(&shop, &alice, products[0].id, 1).await.remove(0);
    client.cancel_order(bearer(CancelOrderRequest { id: second.id }, &alice)).await.unwrap();
    let sequences: Vec<i64> =
        vec![stream.next().await.unwrap().unwrap().sequence, stream.next().await.unwrap().unwrap().sequence];
    assert_eq!(sequences, [3, 4]);

    let mut resumed = events.subscribe(SubscribeOrderEventsRequest { after_sequence: 3 }).await.unwrap().into_inner();
    let cancelled = resumed.next().await.unwrap().unwrap();
    assert_eq!(cancelled.sequence, 4);
    assert!(matches!(cancelled.payload, Some(Payload::OrderCancelled(ref event)) if event.order_id == second.id));
    let negative = events.subscribe(SubscribeOrderEventsRequest { after_sequence: -1 }).await.unwrap_err();
    assert_invalid_field(&negative, "after_sequence");
}
