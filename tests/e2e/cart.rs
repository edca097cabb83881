//! CartService and WishlistService through the gateway: each user's own cart,
//! quantities and stock rules, current prices, and the wishlist.

use shop_proto::cart::{
    AddCartItemRequest, AddToWishlistRequest, Cart, GetCartRequest, GetWishlistRequest, RemoveCartItemRequest,
    RemoveFromWishlistRequest, UpdateCartItemRequest,
};
use shop_proto::catalog::{DeleteProductRequest, Product, UpdateProductRequest};
use tonic::Code;

use crate::harness::{TestShop, assert_invalid_field, bearer, product};

/// An admin token and products with the given (title, price, stock).
pub async fn stocked(shop: &TestShop, items: &[(&str, &str, i32)]) -> (String, Vec<Product>) {
    let admin = shop.admin("root").await;
    let category = shop.create_category(&admin, "Lamps").await;
    let mut products = Vec::new();
    for (title, price, stock) in items {
        products.push(shop.create_product(&admin, product(title, price, *stock, category.id)).await);
    }
    (admin, products)
}

pub async fn add(shop: &TestShop, token: &str, product_id: i64, quantity: i32) -> Result<Cart, tonic::Status> {
    shop.cart()
        .add_cart_item(bearer(AddCartItemRequest { product_id, quantity }, token))
        .await
        .map(tonic::Response::into_inner)
}

pub async fn cart(shop: &TestShop, token: &str) -> Cart {
    shop.cart().get_cart(bearer(GetCartRequest {}, token)).await.expect("get cart").into_inner()
}

fn lines(cart: &Cart) -> Vec<(i64, i32)> {
    cart.items.iter().map(|item| (item.product_id, item.quantity)).collect()
}

#[tokio::test]
async fn adding_accumulates_and_totals_are_exact_decimals() {
    let shop = TestShop::start().await;
    let (_, products) = stocked(&shop, &[("Desk lamp", "19.99", 10), ("Bulb", "0.10", 10)]).await;
    let alice = shop.customer("alice").await;

    let empty = cart(&shop, &alice).await;
    assert!(empty.items.is_empty());
    assert_eq!((empty.total_price.as_str(), empty.total_quantity), ("0.00", 0));

    add(&shop, &alice, products[0].id, 0).await.expect("0 means 1");
    add(&shop, &alice, products[0].id, 2).await.expect("adds on top");
    let cart = add(&shop, &alice, products[1].id, 1).await.expect("second product");
    assert_eq!(lines(&cart), [(products[0].id, 3), (products[1].id, 1)], "oldest added first");
    assert_eq!(cart.items[0].title, "Desk lamp");
    assert_eq!(cart.items[0].unit_price, "19.99");
    assert_eq!(cart.items[0].line_total, "59.97");
    assert_eq!(cart.items[1].line_total, "0.10");
    assert_eq!(cart.total_price, "60.07");
    assert_eq!(cart.total_quantity, 4);
    assert!(cart.items.iter().all(|item| item.in_stock));
}

#[tokio::test]
async fn bad_input_names_its_field_and_rules_of_state_change_nothing() {
    let shop = TestShop::start().await;
    let (admin, products) = stocked(&shop, &[("Desk lamp", "19.99", 5), ("Old lamp", "5", 5)]).await;
    let alice = shop.customer("alice").await;
    let lamp = products[0].id;

    assert_invalid_field(&add(&shop, &alice, lamp, -1).await.unwrap_err(), "quantity");
    assert_invalid_field(&add(&shop, &alice, 0, 1).await.unwrap_err(), "product_id");
    assert_eq!(add(&shop, &alice, 999_999, 1).await.unwrap_err().code(), Code::NotFound);
    shop.catalog().delete_product(bearer(DeleteProductRequest { id: products[1].id }, &admin)).await.unwrap();
    assert_eq!(add(&shop, &alice, products[1].id, 1).await.unwrap_err().code(), Code::NotFound, "archived");

    add(&shop, &alice, lamp, 4).await.unwrap();
    let over_stock = add(&shop, &alice, lamp, 2).await.unwrap_err();
    assert_eq!(over_stock.code(), Code::FailedPrecondition);
    assert!(over_stock.message().contains(&lamp.to_string()), "{over_stock:?}");
    let over_limit = add(&shop, &alice, lamp, 1001).await.unwrap_err();
    assert_eq!(over_limit.code(), Code::FailedPrecondition);
    assert_eq!(lines(&cart(&shop, &alice).await), [(lamp, 4)], "nothing changed");

    let update = |product_id, quantity| {
        let mut client = shop.cart();
        let token = alice.clone();
        async move { client.update_cart_item(bearer(UpdateCartItemRequest { product_id, quantity }, &token)).await }
    };
    assert_invalid_field(&update(lamp, -3).await.unwrap_err(), "quantity");
    assert_eq!(update(lamp, 6).await.unwrap_err().code(), Code::FailedPrecondition);
    assert_eq!(lines(&update(lamp, 2).await.unwrap().into_inner()), [(lamp, 2)], "update sets");
    assert!(update(lamp, 0).await.unwrap().into_inner().items.is_empty(), "0 removes");
    assert_eq!(update(999_999, 1).await.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn remove_is_a_no_op_for_absent_lines_and_carts_are_private() {
    let shop = TestShop::start().await;
    let (_, products) = stocked(&shop, &[("Desk lamp", "19.99", 5), ("Bulb", "1", 5)]).await;
    let alice = shop.customer("alice").await;
    let bob = shop.customer("bob").await;
    add(&shop, &alice, products[0].id, 1).await.unwrap();
    add(&shop, &alice, products[1].id, 1).await.unwrap();

    let remove = |product_id| {
        let mut client = shop.cart();
        let token = alice.clone();
        async move { client.remove_cart_item(bearer(RemoveCartItemRequest { product_id }, &token)).await }
    };
    assert_eq!(lines(&remove(products[0].id).await.unwrap().into_inner()), [(products[1].id, 1)]);
    assert_eq!(lines(&remove(products[0].id).await.unwrap().into_inner()), [(products[1].id, 1)], "no-op");
    assert_invalid_field(&remove(-1).await.unwrap_err(), "product_id");

    assert!(cart(&shop, &bob).await.items.is_empty(), "bob sees only his own cart");
    let anonymous = shop.cart().get_cart(GetCartRequest {}).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_cart_shows_current_prices_and_flags_what_cannot_be_bought() {
    let shop = TestShop::start().await;
    let (admin, products) = stocked(&shop, &[("Desk lamp", "19.99", 5), ("Old lamp", "5.00", 5)]).await;
    let alice = shop.customer("alice").await;
    add(&shop, &alice, products[0].id, 3).await.unwrap();
    add(&shop, &alice, products[1].id, 1).await.unwrap();

    let update = |id, price: &str, stock| UpdateProductRequest {
        id,
        price: price.into(),
        stock,
        update_mask: Some(prost_types::FieldMask { paths: vec!["price".into(), "stock".into()] }),
        ..Default::default()
    };
    shop.catalog().update_product(bearer(update(products[0].id, "25.50", 2), &admin)).await.unwrap();
    shop.catalog().delete_product(bearer(DeleteProductRequest { id: products[1].id }, &admin)).await.unwrap();

    let cart = cart(&shop, &alice).await;
    assert_eq!(cart.items[0].unit_price, "25.50", "current price");
    assert_eq!(cart.items[0].line_total, "76.50");
    assert!(!cart.items[0].in_stock, "3 wanted, 2 left");
    assert_eq!(cart.items[1].title, "Old lamp", "an archived product keeps its last known title");
    assert!(!cart.items[1].in_stock, "archived");
    assert_eq!(cart.total_price, "81.50");
}

#[tokio::test]
async fn the_wishlist_is_newest_first_idempotent_and_private() {
    let shop = TestShop::start().await;
    let (admin, products) = stocked(&shop, &[("A", "1", 1), ("B", "2", 1), ("C", "3", 1)]).await;
    let alice = shop.customer("alice").await;
    let wish = |product_id| {
        let mut client = shop.wishlist();
        let token = alice.clone();
        async move { client.add_to_wishlist(bearer(AddToWishlistRequest { product_id }, &token)).await }
    };
    let ids = |products: &[Product]| products.iter().map(|product| product.id).collect::<Vec<_>>();

    wish(products[0].id).await.unwrap();
    wish(products[1].id).await.unwrap();
    let wishlist = wish(products[0].id).await.unwrap().into_inner();
    assert_eq!(ids(&wishlist.products), [products[1].id, products[0].id], "adding twice keeps its place");
    assert_eq!(wishlist.products[0].title, "B", "full products");
    assert_eq!(wish(424_242).await.unwrap_err().code(), Code::NotFound);
    assert_invalid_field(&wish(0).await.unwrap_err(), "product_id");

    wish(products[2].id).await.unwrap();
    shop.catalog().delete_product(bearer(DeleteProductRequest { id: products[1].id }, &admin)).await.unwrap();
    let mut client = shop.wishlist();
    let wishlist = client.get_wishlist(bearer(GetWishlistRequest {}, &alice)).await.unwrap().into_inner();
    assert_eq!(ids(&wishlist.products), [products[2].id, products[0].id], "archived products are left out");

    let removed = client
        .remove_from_wishlist(bearer(RemoveFromWishlistRequest { product_id: products[2].id }, &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&removed.products), [products[0].id]);

    let bob = shop.customer("bob").await;
    let theirs = client.get_wishlist(bearer(GetWishlistRequest {}, &bob)).await.unwrap().into_inner();
    assert!(theirs.products.is_empty());
}
