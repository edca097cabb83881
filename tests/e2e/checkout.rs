//! Checkout, the saga across cart → order → catalog, through the gateway:
//! the happy path, idempotency, failures that leave nothing behind, the
//! concurrency promises, and recovery after a crash or a catalog outage.

use std::time::Duration;

use shop_cart_order::{Faults, SagaStep};
use shop_proto::cart::{CheckoutRequest, GetCartRequest};
use shop_proto::catalog::{
    DeleteProductRequest, GetProductRequest, ListProductsRequest, Product, UpdateProductRequest,
};
use shop_proto::order::{GetOrderRequest, ListAllOrdersRequest, ListOrdersRequest, Order, OrderStatus};
use tokio::task::JoinSet;
use tonic::{Code, Status};

use crate::cart::{add, cart, stocked};
use crate::harness::{TestShop, assert_invalid_field, bearer, eventually};

pub async fn checkout(shop: &TestShop, token: &str, key: &str) -> Result<Order, Status> {
    shop.cart()
        .checkout(bearer(CheckoutRequest { idempotency_key: key.into() }, token))
        .await
        .map(|response| response.into_inner().order.expect("order"))
}

async fn current(shop: &TestShop, id: i64) -> Product {
    shop.catalog().get_product(GetProductRequest { id }).await.expect("get product").into_inner()
}

/// Orders of every status, as an admin sees them.
async fn all_orders(shop: &TestShop, admin: &str, status: OrderStatus) -> Vec<Order> {
    let request = ListAllOrdersRequest { status: status as i32, page_size: 100, ..Default::default() };
    shop.orders().list_all_orders(bearer(request, admin)).await.expect("list all orders").into_inner().orders
}

#[tokio::test]
async fn checkout_places_an_order_with_a_price_snapshot_and_empties_the_cart() {
    let shop = TestShop::start().await;
    let (admin, products) = stocked(&shop, &[("Desk lamp", "19.99", 10), ("Bulb", "0.10", 10)]).await;
    let alice = shop.customer("alice").await;
    add(&shop, &alice, products[1].id, 5).await.unwrap();
    add(&shop, &alice, products[0].id, 2).await.unwrap();

    let order = checkout(&shop, &alice, "").await.expect("checkout");
    assert_eq!(order.status, OrderStatus::Placed as i32);
    assert_eq!(order.total_price, "40.48");
    assert_eq!(order.total_quantity, 7);
    let items: Vec<(i64, &str, &str, i32, &str)> = order
        .items
        .iter()
        .map(|item| {
            (item.product_id, item.title.as_str(), item.unit_price.as_str(), item.quantity, item.line_total.as_str())
        })
        .collect();
    assert_eq!(
        items,
        [(products[0].id, "Desk lamp", "19.99", 2, "39.98"), (products[1].id, "Bulb", "0.10", 5, "0.50")]
    );
    assert_eq!(order.items[0].category_slug, "lamps");
    assert!(cart(&shop, &alice).await.items.is_empty(), "ordered lines leave the cart");
    let lamp = current(&shop, products[0].id).await;
    assert_eq!((lamp.stock, lamp.sold_count), (8, 2));

    // The order keeps its snapshot when prices change and products are archived.
    let reprice = UpdateProductRequest {
        id: products[0].id,
        price: "99.00".into(),
        update_mask: Some(prost_types::FieldMask { paths: vec!["price".into()] }),
        ..Default::default()
    };
    shop.catalog().update_product(bearer(reprice, &admin)).await.unwrap();
    shop.catalog().delete_product(bearer(DeleteProductRequest { id: products[1].id }, &admin)).await.unwrap();
    let again = shop.orders().get_order(bearer(GetOrderRequest { id: order.id }, &alice)).await.unwrap().into_inner();
    assert_eq!((again.total_price.as_str(), again.items.len()), ("40.48", 2));
    assert_eq!(again.items[0].unit_price, "19.99");
    let history = shop.orders().list_orders(bearer(ListOrdersRequest::default(), &alice)).await.unwrap().into_inner();
    assert_eq!((history.total_count, history.orders[0].id), (1, order.id));
}

#[tokio::test]
async fn an_empty_cart_or_a_long_key_is_refused() {
    let shop = TestShop::start().await;
    let alice = shop.customer("alice").await;
    let empty = checkout(&shop, &alice, "k1").await.unwrap_err();
    assert_eq!(empty.code(), Code::FailedPrecondition, "{empty:?}");
    assert_invalid_field(&checkout(&shop, &alice, &"k".repeat(65)).await.unwrap_err(), "idempotency_key");
    let anonymous = shop.cart().checkout(CheckoutRequest::default()).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_short_or_archived_line_fails_naming_the_product_and_changes_nothing() {
    let shop = TestShop::start().await;
    let (admin, products) = stocked(&shop, &[("Desk lamp", "19.99", 5), ("Bulb", "1.00", 5)]).await;
    let alice = shop.customer("alice").await;
    add(&shop, &alice, products[0].id, 1).await.unwrap();
    add(&shop, &alice, products[1].id, 4).await.unwrap();
    let restock = UpdateProductRequest {
        id: products[1].id,
        stock: 3,
        update_mask: Some(prost_types::FieldMask { paths: vec!["stock".into()] }),
        ..Default::default()
    };
    shop.catalog().update_product(bearer(restock, &admin)).await.unwrap();

    let short = checkout(&shop, &alice, "try-1").await.unwrap_err();
    assert_eq!(short.code(), Code::FailedPrecondition);
    assert!(short.message().contains(&products[1].id.to_string()), "names the product: {short:?}");
    assert_eq!(cart(&shop, &alice).await.items.len(), 2, "cart untouched");
    assert_eq!(current(&shop, products[0].id).await.stock, 5, "no stock held");
    let history = shop.orders().list_orders(bearer(ListOrdersRequest::default(), &alice)).await.unwrap().into_inner();
    assert_eq!(history.total_count, 0, "a failed checkout is no order for its customer");
    assert_eq!(all_orders(&shop, &admin, OrderStatus::Failed).await.len(), 1, "admins see the failed attempt");

    shop.catalog().delete_product(bearer(DeleteProductRequest { id: products[0].id }, &admin)).await.unwrap();
    let archived = checkout(&shop, &alice, "try-2").await.unwrap_err();
    assert_eq!(archived.code(), Code::FailedPrecondition, "{archived:?}");
    assert!(archived.message().contains(&products[0].id.to_string()), "{archived:?}");

    // The key of a failed attempt may be used again once the cart is fixed.
    for product in &products {
        shop.cart()
            .remove_cart_item(bearer(shop_proto::cart::RemoveCartItemRequest { product_id: product.id }, &alice))
            .await
            .unwrap();
    }
    let other = stocked_more(&shop, &admin).await;
    add(&shop, &alice, other.id, 1).await.unwrap();
    let placed = checkout(&shop, &alice, "try-1").await.expect("a failed key places anew");
    assert_eq!(placed.status, OrderStatus::Placed as i32);
}

async fn stocked_more(shop: &TestShop, admin: &str) -> Product {
    let category = shop.create_category(admin, "Bulbs").await;
    shop.create_product(admin, crate::harness::product("LED", "3.00", 9, category.id)).await
}

#[tokio::test]
async fn the_same_key_returns_the_same_order_and_never_orders_twice() {
    let shop = TestShop::start().await;
    let (_, products) = stocked(&shop, &[("Desk lamp", "19.99", 10), ("Bulb", "1.00", 10)]).await;
    let alice = shop.customer("alice").await;
    add(&shop, &alice, products[0].id, 2).await.unwrap();
    let first = checkout(&shop, &alice, "order-1").await.unwrap();
    let replay = checkout(&shop, &alice, "order-1").await.expect("replay with an empty cart");
    assert_eq!(replay.id, first.id);

    add(&shop, &alice, products[1].id, 1).await.unwrap();
    let replay = checkout(&shop, &alice, "order-1").await.unwrap();
    assert_eq!((replay.id, replay.total_quantity), (first.id, 2), "the first call's lines");
    assert_eq!(cart(&shop, &alice).await.items.len(), 1, "what was added since stays in the cart");
    assert_eq!(current(&shop, products[0].id).await.stock, 8, "charged once");

    let bob = shop.customer("bob").await;
    add(&shop, &bob, products[0].id, 1).await.unwrap();
    let bobs = checkout(&shop, &bob, "order-1").await.unwrap();
    assert_ne!(bobs.id, first.id, "keys are per user");
}

#[tokio::test]
async fn twenty_concurrent_checkouts_with_one_key_place_one_order() {
    let shop = TestShop::start().await;
    let (admin, products) = stocked(&shop, &[("Desk lamp", "19.99", 100)]).await;
    let alice = shop.customer("alice").await;
    add(&shop, &alice, products[0].id, 3).await.unwrap();

    let mut checkouts = JoinSet::new();
    for _ in 0..20 {
        let client = shop.cart();
        let token = alice.clone();
        checkouts.spawn(async move {
            let mut client = client;
            client.checkout(bearer(CheckoutRequest { idempotency_key: "once".into() }, &token)).await
        });
    }
    let mut ids = Vec::new();
    while let Some(result) = checkouts.join_next().await {
        ids.push(result.unwrap().expect("every replay succeeds").into_inner().order.unwrap().id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one order: {ids:?}");
    assert_eq!(current(&shop, products[0].id).await.stock, 97);
    assert_eq!(all_orders(&shop, &admin, OrderStatus::Unspecified).await.len(), 1);
    assert!(cart(&shop, &alice).await.items.is_empty());
}

#[tokio::test]
async fn a_hundred_buyers_of_forty_units_make_exactly_forty_orders() {
    let shop = TestShop::start().await;
    let (admin, products) = stocked(&shop, &[("Desk lamp", "19.99", 40)]).await;
    let lamp = products[0].id;
    let mut buyers = Vec::new();
    for n in 0..100 {
        let token = shop.customer(&format!("buyer{n}")).await;
        add(&shop, &token, lamp, 1).await.unwrap();
        buyers.push(token);
    }

    let mut checkouts = JoinSet::new();
    for token in buyers {
        let mut client = shop.cart();
        checkouts.spawn(async move { client.checkout(bearer(CheckoutRequest::default(), &token)).await });
    }
    let (mut placed, mut refused) = (0, 0);
    while let Some(result) = checkouts.join_next().await {
        match result.unwrap() {
            Ok(_) => placed += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert!(status.message().contains(&lamp.to_string()), "{status:?}");
                refused += 1;
            }
        }
    }
    assert_eq!((placed, refused), (40, 60));
    let after = current(&shop, lamp).await;
    assert_eq!((after.stock, after.sold_count), (0, 40));
    assert_eq!(all_orders(&shop, &admin, OrderStatus::Placed).await.len(), 40);
    assert_eq!(all_orders(&shop, &admin, OrderStatus::Pending).await.len(), 0);
}

/// A suite whose cart-order gives up on PENDING orders after 300 ms and
/// looks every 100 ms, and never retries (so an injected crash is final).
async fn quick_recovery(faults: Faults) -> TestShop {
    TestShop::start_with(|config| {
        config.cart_order.pending_timeout_ms = 300;
        config.cart_order.recovery_interval_ms = 100;
        config.cart_order.call_retries = 0;
        config.cart_order.faults = faults;
    })
    .await
}

async fn crash_then_recover(step: SagaStep) {
    let shop = quick_recovery(Faults::crash_once_at(step)).await;
    let (admin, products) = stocked(&shop, &[("Desk lamp", "19.99", 10)]).await;
    let alice = shop.customer("alice").await;
    add(&shop, &alice, products[0].id, 2).await.unwrap();

    let crashed = checkout(&shop, &alice, "k").await.unwrap_err();
    assert_eq!(crashed.code(), Code::Unavailable, "{crashed:?}");
    assert_eq!(cart(&shop, &alice).await.items.len(), 1, "cart intact");

    eventually("the abandoned order is failed and its stock back", Duration::from_secs(10), async || {
        let pending = all_orders(&shop, &admin, OrderStatus::Pending).await.len();
        let stock = current(&shop, products[0].id).await.stock;
        if pending == 0 && stock == 10 { Ok(()) } else { Err((pending, stock)) }
    })
    .await;
    let failed = all_orders(&shop, &admin, OrderStatus::Failed).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(current(&shop, products[0].id).await.sold_count, 0);

    let placed = checkout(&shop, &alice, "k").await.expect("after recovery the same key places anew");
    assert_eq!(placed.status, OrderStatus::Placed as i32);
    assert_ne!(placed.id, failed[0].id);
    assert_eq!(current(&shop, products[0].id).await.stock, 8);
}

#[tokio::test]
async fn a_crash_after_inserting_the_order_is_repaired_by_recovery() {
    crash_then_recover(SagaStep::OrderInserted).await;
}

#[tokio::test]
async fn a_crash_after_reserving_stock_is_repaired_by_recovery() {
    crash_then_recover(SagaStep::StockReserved).await;
}

#[tokio::test]
async fn catalog_down_during_checkout_is_unavailable_and_leaves_no_pending_order() {
    let mut shop = TestShop::start_with(|config| {
        config.cart_order.recovery_interval_ms = 100;
        config.cart_order.call_retries = 1;
    })
    .await;
    let (admin, products) = stocked(&shop, &[("Desk lamp", "19.99", 10)]).await;
    let alice = shop.customer("alice").await;
    add(&shop, &alice, products[0].id, 2).await.unwrap();

    let outage = shop.stop_service("catalog").await;
    let down = checkout(&shop, &alice, "k").await.unwrap_err();
    assert_eq!(down.code(), Code::Unavailable, "{down:?}");
    assert_eq!(down.message(), "catalog is unavailable", "names the service that is down");
    assert!(all_orders(&shop, &admin, OrderStatus::Pending).await.is_empty(), "nothing left PENDING");
    let _catalog = outage.restart().await;

    assert_eq!(cart(&shop, &alice).await.items.len(), 1, "cart intact");
    let (pool, lamp) = (shop.db().await, products[0].id);
    eventually("the failed attempt owes no stock", Duration::from_secs(10), async || {
        let owing: i64 = sqlx::query_scalar("SELECT count(*) FROM orders.orders WHERE release_needed")
            .fetch_one(&pool)
            .await
            .unwrap();
        if owing == 0 { Ok(()) } else { Err(owing) }
    })
    .await;
    assert_eq!(current(&shop, lamp).await.stock, 10);
    let placed = checkout(&shop, &alice, "k").await.expect("catalog back: the same key places the order");
    assert_eq!(placed.status, OrderStatus::Placed as i32);
    let _ = shop.cart().get_cart(bearer(GetCartRequest {}, &alice)).await.unwrap();
}

/// The books after many buyers raced over a few products, some cancelling:
/// units in live orders equal units sold, stock + sold is the stock each
/// product started with, and no order is left PENDING.
#[tokio::test]
async fn concurrent_checkouts_and_cancels_keep_the_books_balanced() {
    let shop = TestShop::start().await;
    let (_, products) = stocked(&shop, &[("Lamp", "19.99", 30), ("Mug", "4.50", 25), ("Desk", "150", 12)]).await;
    let mut buyers = JoinSet::new();
    for n in 0..24 {
        let token = shop.customer(&format!("buyer{n}")).await;
        let gateway = shop.gateway.clone();
        let ids: Vec<i64> = products.iter().map(|product| product.id).collect();
        buyers.spawn(async move {
            let mut cart = shop_proto::cart::cart_service_client::CartServiceClient::new(gateway.clone());
            let mut orders = shop_proto::order::order_service_client::OrderServiceClient::new(gateway);
            for round in 0..4 {
                for (i, id) in ids.iter().enumerate() {
                    if (n + round + i) % 2 == 0 {
                        let add =
                            shop_proto::cart::AddCartItemRequest { product_id: *id, quantity: 1 + (n % 3) as i32 };
                        let _ = cart.add_cart_item(bearer(add, &token)).await;
                    }
                }
                let key = format!("buyer{n}-round{round}");
                match cart.checkout(bearer(CheckoutRequest { idempotency_key: key }, &token)).await {
                    Ok(placed) if round % 3 == 0 => {
                        let id = placed.into_inner().order.expect("order").id;
                        let _ = orders.cancel_order(bearer(shop_proto::order::CancelOrderRequest { id }, &token)).await;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        // Out of stock: start the next round with an empty cart.
                        for id in &ids {
                            let remove = shop_proto::cart::RemoveCartItemRequest { product_id: *id };
                            let _ = cart.remove_cart_item(bearer(remove, &token)).await;
                        }
                    }
                }
            }
        });
    }
    buyers.join_all().await;

    let pool = shop.db().await;
    let (pending, owing): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'PENDING'), count(*) FILTER (WHERE release_needed) FROM orders.orders",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((pending, owing), (0, 0), "no order left PENDING or owing stock");
    let in_live_orders: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(l.quantity), 0)::bigint FROM orders.order_lines l JOIN orders.orders o ON o.id = l.order_id
          WHERE o.status IN ('PLACED', 'SHIPPED', 'DELIVERED')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let sold: i64 =
        sqlx::query_scalar("SELECT sum(sold_count)::bigint FROM catalog.stock").fetch_one(&pool).await.unwrap();
    assert!(in_live_orders > 0, "some orders were placed");
    assert_eq!(in_live_orders, sold, "units in live orders are the units sold");
    for (product, initial) in products.iter().zip([30, 25, 12]) {
        let now = current(&shop, product.id).await;
        assert_eq!(i64::from(now.stock) + now.sold_count, initial, "{}: stock + sold", product.title);
    }
}

#[tokio::test]
async fn a_checkout_names_every_line_it_cannot_have_with_what_is_left() {
    use tonic_types::StatusExt as _;
    let shop = TestShop::start().await;
    let (admin, products) =
        stocked(&shop, &[("Desk lamp", "19.99", 5), ("Bulb", "1.00", 5), ("Shade", "7.00", 5), ("Cord", "2.00", 5)])
            .await;
    let alice = shop.customer("alice").await;
    for (product, quantity) in products.iter().zip([4, 5, 2, 1]) {
        add(&shop, &alice, product.id, quantity).await.unwrap();
    }
    // Two lines go short, one product is archived; the cord is fine.
    for (product, stock) in [(&products[0], 1), (&products[1], 3)] {
        let restock = UpdateProductRequest {
            id: product.id,
            stock,
            update_mask: Some(prost_types::FieldMask { paths: vec!["stock".into()] }),
            ..Default::default()
        };
        shop.catalog().update_product(bearer(restock, &admin)).await.unwrap();
    }
    shop.catalog().delete_product(bearer(DeleteProductRequest { id: products[2].id }, &admin)).await.unwrap();

    let refused = checkout(&shop, &alice, "").await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("no longer sold"), "an archived line says so: {refused:?}");
    let failure = refused.get_details_precondition_failure().expect("google.rpc.PreconditionFailure");
    let violations: Vec<(String, String, String)> =
        failure.violations.iter().map(|v| (v.r#type.clone(), v.subject.clone(), v.description.clone())).collect();
    assert_eq!(
        violations,
        [
            ("OUT_OF_STOCK".into(), format!("product/{}", products[0].id), "1 available, 4 wanted".into()),
            ("OUT_OF_STOCK".into(), format!("product/{}", products[1].id), "3 available, 5 wanted".into()),
            ("NOT_SOLD".into(), format!("product/{}", products[2].id), "0 available, 2 wanted".into()),
        ]
    );
    assert_eq!(current(&shop, products[3].id).await.stock, 5, "nothing was taken");
}

/// The ids and units sold of a whole sold-count listing, read right away.
async fn by_sold_count(shop: &TestShop, ordering: &str) -> Vec<(i64, i64)> {
    let request = ListProductsRequest { ordering: ordering.into(), page_size: 100, ..Default::default() };
    let page = shop.catalog().list_products(request).await.expect("list products").into_inner();
    page.products.iter().map(|product| (product.id, product.sold_count)).collect()
}

#[tokio::test]
async fn a_sale_reorders_sold_count_listings_as_soon_as_checkout_answers() {
    let shop = TestShop::start().await;
    let (_, products) = stocked(&shop, &[("Lamp", "10.00", 100), ("Bulb", "1.00", 100), ("Shade", "5.00", 100)]).await;
    let alice = shop.customer("alice").await;
    let ids: Vec<i64> = products.iter().map(|product| product.id).collect();
    // Each round makes another product the best seller; the listing right
    // after the checkout must already rank by the new counts.
    let mut sold = [0_i64; 3];
    for (round, (best, units)) in [(2, 3), (1, 5), (0, 7), (2, 6)].into_iter().enumerate() {
        add(&shop, &alice, ids[best], units).await.unwrap();
        checkout(&shop, &alice, &format!("round-{round}")).await.expect("checkout");
        sold[best] += i64::from(units);
        let mut expected: Vec<(i64, i64)> = ids.iter().copied().zip(sold).collect();
        // Most sold first, ties by id in the ordering's direction (newest first).
        expected.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
        assert_eq!(by_sold_count(&shop, "-sold_count").await, expected, "most sold after round {round}");
        expected.reverse();
        assert_eq!(by_sold_count(&shop, "sold_count").await, expected, "least sold after round {round}");
    }
}
