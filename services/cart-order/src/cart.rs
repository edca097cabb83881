//! The cart half: carts and wishlists, priced from catalog's current data
//! (one BatchGetProducts per call, never one per line), and Checkout, the
//! saga's first step.

use std::collections::HashMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use shop_platform::money::Money;
use shop_proto::cart::{Cart, CartItem, Wishlist};
use shop_proto::catalog::Product;
use shop_proto::order::{Order, OrderStatus};
use sqlx::PgPool;
use tonic::Code;

use crate::calls::{CallContext, Calls};
use crate::domain::{MAX_LINE_QUANTITY, MAX_LINES};
use crate::error::Error;
use crate::repo;
use crate::repo::cart::ItemRow;

/// How a cart change treats the quantity it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// AddCartItem: on top of what the line holds.
    Add(i32),
    /// UpdateCartItem: the line's new quantity (0 removes it).
    Set(i32),
}

#[derive(Clone)]
pub struct Carts {
    pool: PgPool,
    calls: Calls,
}

fn price_of(product: &Product) -> Result<Decimal, Error> {
    Decimal::from_str(&product.price)
        .map_err(|_| Error::catalog(tonic::Status::internal(format!("product {} has a malformed price", product.id))))
}

/// The cart as the API shows it: current titles and prices where catalog
/// still lists the product, the remembered ones (and not in stock) where not.
fn cart_message(items: &[ItemRow], products: &HashMap<i64, Product>) -> Result<Cart, Error> {
    let mut lines = Vec::with_capacity(items.len());
    let mut total_price = Money::default();
    let mut total_quantity = 0;
    for item in items {
        let (title, unit_price, in_stock) = match products.get(&item.product_id) {
            Some(product) => (product.title.clone(), price_of(product)?, product.stock >= item.quantity),
            None => (item.title.clone(), item.unit_price, false),
        };
        let unit_price = Money::from_decimal(unit_price);
        let line_total = unit_price.times(i64::from(item.quantity));
        total_price = total_price + line_total;
        total_quantity += item.quantity;
        lines.push(CartItem {
            product_id: item.product_id,
            title,
            unit_price: unit_price.to_string(),
            quantity: item.quantity,
            line_total: line_total.to_string(),
            in_stock,
        });
    }
    Ok(Cart { items: lines, total_price: total_price.to_string(), total_quantity })
}

impl Carts {
    pub fn new(pool: PgPool, calls: Calls) -> Self {
        Self { pool, calls }
    }

    pub fn call_timeout(&self) -> std::time::Duration {
        self.calls.timeout()
    }

    /// The live products among `ids`, by id.
    async fn products(&self, context: &CallContext, ids: &[i64]) -> Result<HashMap<i64, Product>, Error> {
        let products = self.calls.products(context, ids).await.map_err(Error::catalog)?;
        Ok(products.into_iter().map(|product| (product.id, product)).collect())
    }

    async fn items(&self, user_id: i64) -> Result<Vec<ItemRow>, Error> {
        let mut conn = self.pool.acquire().await?;
        Ok(repo::cart::items(&mut conn, user_id).await?)
    }

    pub async fn get(&self, context: &CallContext, user_id: i64) -> Result<Cart, Error> {
        let items = self.items(user_id).await?;
        let ids: Vec<i64> = items.iter().map(|item| item.product_id).collect();
        cart_message(&items, &self.products(context, &ids).await?)
    }

    /// AddCartItem / UpdateCartItem.
    pub async fn change(
        &self,
        context: &CallContext,
        user_id: i64,
        product_id: i64,
        change: Change,
    ) -> Result<Cart, Error> {
        if change == Change::Set(0) {
            return self.remove(context, user_id, product_id).await;
        }
        // One catalog call prices the whole cart and checks the product.
        let mut ids: Vec<i64> = self.items(user_id).await?.iter().map(|item| item.product_id).collect();
        if !ids.contains(&product_id) {
            ids.push(product_id);
        }
        let mut products = self.products(context, &ids).await?;
        let product = products.get(&product_id).ok_or_else(|| Error::NotFound(format!("product {product_id}")))?;
        let unit_price = price_of(product)?;

        let mut tx = self.pool.begin().await?;
        repo::cart::lock(&mut tx, user_id).await?;
        let (current, lines) = repo::cart::line_and_count(&mut tx, user_id, product_id).await?;
        let wanted = match change {
            Change::Add(quantity) => i64::from(current.unwrap_or(0)) + i64::from(quantity),
            Change::Set(quantity) => i64::from(quantity),
        };
        if wanted > i64::from(MAX_LINE_QUANTITY) {
            return Err(Error::FailedPrecondition(format!(
                "product {product_id}: a cart line holds at most {MAX_LINE_QUANTITY} units ({wanted} asked)"
            )));
        }
        if wanted > i64::from(product.stock) {
            return Err(Error::FailedPrecondition(format!(
                "product {product_id} ({}) has only {} in stock ({wanted} asked)",
                product.title, product.stock
            )));
        }
        if current.is_none() && lines >= MAX_LINES as i64 {
            return Err(Error::FailedPrecondition(format!("a cart holds at most {MAX_LINES} products")));
        }
        let item = ItemRow { product_id, quantity: wanted as i32, title: product.title.clone(), unit_price };
        repo::cart::set(&mut tx, user_id, &item).await?;
        let items = repo::cart::items(&mut tx, user_id).await?;
        tx.commit().await?;

        // A line added meanwhile by another call of the same user still gets priced.
        let unpriced: Vec<i64> = items.iter().map(|item| item.product_id).filter(|id| !ids.contains(id)).collect();
        products.extend(self.products(context, &unpriced).await?);
        cart_message(&items, &products)
    }

    /// RemoveCartItem (and UpdateCartItem to 0): a product not in the cart is a no-op.
    pub async fn remove(&self, context: &CallContext, user_id: i64, product_id: i64) -> Result<Cart, Error> {
        let mut tx = self.pool.begin().await?;
        repo::cart::lock(&mut tx, user_id).await?;
        repo::cart::remove(&mut tx, user_id, product_id).await?;
        tx.commit().await?;
        self.get(context, user_id).await
    }

    /// Checkout: the cart's lines become an order through PlaceOrder, then
    /// leave the cart. The same key returns the same order, also once the
    /// cart is empty because that order took its lines.
    pub async fn checkout(&self, context: &CallContext, user_id: i64, key: Option<String>) -> Result<Order, Error> {
        let items = self.items(user_id).await?;
        if items.is_empty() {
            if let Some(key) = &key {
                match self.calls.find_order(context, user_id, key).await {
                    Ok(order) => return self.take_out(order).await,
                    Err(status) if status.code() == Code::NotFound => {}
                    Err(status) => return Err(Error::orders(status)),
                }
            }
            return Err(Error::FailedPrecondition("the cart is empty".into()));
        }
        // Without a client key, one of our own still makes retrying PlaceOrder safe.
        let key = key.unwrap_or_else(|| format!("checkout-{}", uuid::Uuid::new_v4().simple()));
        let lines: Vec<(i64, i32)> = items.iter().map(|item| (item.product_id, item.quantity)).collect();
        let order = self.calls.place_order(context, user_id, &key, &lines).await.map_err(|status| {
            match status.code() {
                // An archived product cannot be ordered: a rule of state for the cart.
                Code::NotFound => Error::FailedPrecondition(status.message().to_owned()),
                _ => Error::orders(status),
            }
        })?;
        self.take_out(order).await
    }

    /// Takes a placed order's lines out of its user's cart, once.
    async fn take_out(&self, order: Order) -> Result<Order, Error> {
        if order.status == OrderStatus::Pending as i32 || order.status == OrderStatus::Failed as i32 {
            return Err(Error::Unavailable(format!("order {} is not placed yet; try again", order.id)));
        }
        let lines: Vec<(i64, i32)> = order.items.iter().map(|item| (item.product_id, item.quantity)).collect();
        let mut conn = self.pool.acquire().await?;
        repo::cart::take_out_order(&mut conn, order.user_id, order.id, &lines).await?;
        Ok(order)
    }

    pub async fn wishlist(&self, context: &CallContext, user_id: i64) -> Result<Wishlist, Error> {
        let ids = {
            let mut conn = self.pool.acquire().await?;
            repo::cart::wishlist(&mut conn, user_id).await?
        };
        let mut products = self.products(context, &ids).await?;
        Ok(Wishlist { products: ids.iter().filter_map(|id| products.remove(id)).collect() })
    }

    pub async fn wish(&self, context: &CallContext, user_id: i64, product_id: i64) -> Result<Wishlist, Error> {
        let products = self.products(context, &[product_id]).await?;
        if !products.contains_key(&product_id) {
            return Err(Error::NotFound(format!("product {product_id}")));
        }
        let mut tx = self.pool.begin().await?;
        repo::cart::lock(&mut tx, user_id).await?;
        let ids = repo::cart::wishlist(&mut tx, user_id).await?;
        if !ids.contains(&product_id) {
            if ids.len() >= MAX_LINES {
                return Err(Error::FailedPrecondition(format!("a wishlist holds at most {MAX_LINES} products")));
            }
            repo::cart::wish(&mut tx, user_id, product_id).await?;
        }
        tx.commit().await?;
        self.wishlist(context, user_id).await
    }

    pub async fn unwish(&self, context: &CallContext, user_id: i64, product_id: i64) -> Result<Wishlist, Error> {
        let mut conn = self.pool.acquire().await?;
        repo::cart::unwish(&mut conn, user_id, product_id).await?;
        drop(conn);
        self.wishlist(context, user_id).await
    }
}
