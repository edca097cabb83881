//! The cart half: carts and wishlists, priced from catalog's current data
//! (one BatchGetProducts per call, never one per line), and Checkout, the
//! saga's first step.

use shop_platform::kernel::order_lines::{OrderLine, OrderLines};
use shop_platform::transport::client::CallContext;
use sqlx::PgPool;

use crate::calls::Calls;
use crate::error::Error;
use crate::model::{Cart, CartLine, Change, Limit, LineLimits, Order, Product, Refusal};
use crate::repo;

#[derive(Clone)]
pub struct Carts {
    pool: PgPool,
    calls: Calls,
}

impl Carts {
    pub fn new(pool: PgPool, calls: Calls) -> Self {
        Self { pool, calls }
    }

    pub fn call_timeout(&self) -> std::time::Duration {
        self.calls.timeout()
    }

    async fn lines(&self, user_id: i64) -> Result<Vec<CartLine>, Error> {
        repo::cart::lines(&mut *self.pool.acquire().await?, user_id).await
    }

    pub async fn get(&self, context: &CallContext, user_id: i64) -> Result<Cart, Error> {
        let lines = self.lines(user_id).await?;
        let ids: Vec<i64> = lines.iter().map(|line| line.product_id).collect();
        Ok(Cart::priced(&lines, &self.calls.products(context, &ids).await?))
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
        let mut ids: Vec<i64> = self.lines(user_id).await?.iter().map(|line| line.product_id).collect();
        if !ids.contains(&product_id) {
            ids.push(product_id);
        }
        let mut products = self.calls.products(context, &ids).await?;
        let product = products
            .iter()
            .find(|product| product.id == product_id)
            .ok_or_else(|| Error::NotFound(format!("product {product_id}")))?;

        // The limits are checked with the change, under the user's cart lock.
        let limits = LineLimits {
            max_quantity: OrderLines::MAX_QUANTITY,
            in_stock: product.stock,
            max_lines: OrderLines::MAX_PRODUCTS,
        };
        let line = CartLine { product_id, quantity: 0, title: product.title.clone(), unit_price: product.price };
        let mut conn = self.pool.acquire().await?;
        let lines = match repo::cart::change_line(&mut conn, user_id, &line, change, limits).await? {
            Ok(lines) => lines,
            Err(Refusal { limit: Limit::MaxQuantity, wanted }) => {
                return Err(Error::FailedPrecondition(format!(
                    "product {product_id}: a cart line holds at most {} units ({wanted} asked)",
                    OrderLines::MAX_QUANTITY
                )));
            }
            Err(Refusal { limit: Limit::InStock, wanted }) => {
                return Err(Error::FailedPrecondition(format!(
                    "product {product_id} ({}) has only {} in stock ({wanted} asked)",
                    product.title, product.stock
                )));
            }
            Err(Refusal { limit: Limit::MaxLines, .. }) => {
                return Err(Error::FailedPrecondition(format!(
                    "a cart holds at most {} products",
                    OrderLines::MAX_PRODUCTS
                )));
            }
        };
        drop(conn);

        // A line added meanwhile by another call of the same user still gets priced.
        let unpriced: Vec<i64> = lines.iter().map(|line| line.product_id).filter(|id| !ids.contains(id)).collect();
        products.extend(self.calls.products(context, &unpriced).await?);
        Ok(Cart::priced(&lines, &products))
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
        let lines = self.lines(user_id).await?;
        if lines.is_empty() {
            if let Some(key) = &key
                && let Some(order) = self.calls.find_order(context, user_id, key).await?
            {
                return self.take_out(order).await;
            }
            return Err(Error::FailedPrecondition("the cart is empty".into()));
        }
        // Without a client key, one of our own still makes retrying PlaceOrder safe.
        let key = key.unwrap_or_else(|| format!("checkout-{}", uuid::Uuid::new_v4().simple()));
        let lines = OrderLines::parse(
            lines.iter().map(|line| OrderLine { product_id: line.product_id, quantity: line.quantity }),
        )
        .map_err(|reason| Error::FailedPrecondition(format!("the cart cannot be ordered: {reason}")))?;
        // A product no longer sold cannot be ordered: a rule of state for the
        // cart. Its details (every line that cannot be had) stay.
        let order =
            self.calls.place_order(context, user_id, &key, &lines).await.map_err(Error::not_found_as_precondition)?;
        self.take_out(order).await
    }

    /// Takes a placed order's lines out of its user's cart, once.
    async fn take_out(&self, order: Order) -> Result<Order, Error> {
        if !order.status.is_placed() {
            return Err(Error::Unavailable(format!("order {} is not placed yet; try again", order.id)));
        }
        let lines: Vec<OrderLine> = order.items.iter().map(|item| item.line).collect();
        let mut conn = self.pool.acquire().await?;
        repo::cart::take_out_order(&mut conn, order.user_id, order.id, &lines).await?;
        Ok(order)
    }

    /// The wishlist's products, newest added first.
    pub async fn wishlist(&self, context: &CallContext, user_id: i64) -> Result<Vec<Product>, Error> {
        let ids = repo::cart::wishlist(&mut *self.pool.acquire().await?, user_id).await?;
        // BatchGetProducts answers in the order of the ids asked.
        self.calls.products(context, &ids).await
    }

    pub async fn wish(&self, context: &CallContext, user_id: i64, product_id: i64) -> Result<Vec<Product>, Error> {
        if self.calls.products(context, &[product_id]).await?.is_empty() {
            return Err(Error::NotFound(format!("product {product_id}")));
        }
        let mut tx = self.pool.begin().await?;
        repo::cart::lock(&mut tx, user_id).await?;
        let ids = repo::cart::wishlist(&mut tx, user_id).await?;
        if !ids.contains(&product_id) {
            if ids.len() >= OrderLines::MAX_PRODUCTS {
                return Err(Error::FailedPrecondition(format!(
                    "a wishlist holds at most {} products",
                    OrderLines::MAX_PRODUCTS
                )));
            }
            repo::cart::wish(&mut tx, user_id, product_id).await?;
        }
        tx.commit().await?;
        self.wishlist(context, user_id).await
    }

    pub async fn unwish(&self, context: &CallContext, user_id: i64, product_id: i64) -> Result<Vec<Product>, Error> {
        repo::cart::unwish(&mut *self.pool.acquire().await?, user_id, product_id).await?;
        self.wishlist(context, user_id).await
    }
}
