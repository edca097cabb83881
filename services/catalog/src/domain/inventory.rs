//! Stock reservations for the order service. A reservation is keyed by
//! `order_id`: replaying it returns the stored snapshot and changes nothing;
//! releasing it gives the stock back once.

use shop_platform::order_lines::{OrderLine, OrderLines};
use sqlx::PgPool;

use crate::domain::{Event, ReservedLine};
use crate::error::Error;
use crate::repo;
use crate::repo::reservations::Status;

#[derive(Clone)]
pub struct Inventory {
    pool: PgPool,
}

fn order_lines(lines: &[ReservedLine]) -> Vec<OrderLine> {
    lines.iter().map(|line| OrderLine { product_id: line.product_id, quantity: line.quantity }).collect()
}

impl Inventory {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn reserve(&self, order_id: i64, wanted: &OrderLines) -> Result<Vec<ReservedLine>, Error> {
        let mut tx = self.pool.begin().await?;
        // Claiming the order first makes concurrent replays of one order wait
        // for the first, then read what it stored.
        if !repo::reservations::claim(&mut tx, order_id).await? {
            return match repo::reservations::status(&mut tx, order_id).await? {
                Some(Status::Reserved) => repo::reservations::lines(&mut tx, order_id).await,
                _ => Err(Error::FailedPrecondition(format!("order {order_id}'s reservation was released"))),
            };
        }
        let locked = repo::products::lock_for_stock(&mut tx, &wanted.product_ids()).await?;
        let mut snapshot = Vec::with_capacity(wanted.lines().len());
        for &OrderLine { product_id, quantity } in wanted.lines() {
            let product = locked
                .iter()
                .find(|(product, is_archived)| product.id == product_id && !is_archived)
                .map(|(product, _)| product)
                .ok_or_else(|| Error::NotFound(format!("product {product_id}")))?;
            if product.stock < quantity {
                // Returning drops the transaction: nothing changed anywhere.
                return Err(Error::FailedPrecondition(format!(
                    "product {product_id} ({}) is out of stock: {} left, {quantity} wanted",
                    product.title, product.stock
                )));
            }
            snapshot.push(ReservedLine {
                product_id,
                quantity,
                title: product.title.clone(),
                unit_price: product.price,
                category_name: product.category_name.clone(),
                category_slug: product.category_slug.clone(),
            });
        }
        repo::products::take_stock(&mut tx, wanted.lines()).await?;
        repo::reservations::insert_lines(&mut tx, order_id, &snapshot).await?;
        repo::outbox::append(&mut tx, &Event::StockReserved { order_id, lines: wanted.lines().to_vec() }).await?;
        tx.commit().await?;
        Ok(snapshot)
    }

    /// Gives the order's stock back; `false` when there was nothing to give
    /// (already released, or never reserved: then a late reserve is refused).
    pub async fn release(&self, order_id: i64) -> Result<bool, Error> {
        let mut tx = self.pool.begin().await?;
        if !repo::reservations::release(&mut tx, order_id).await? {
            return Ok(false);
        }
        let lines = order_lines(&repo::reservations::lines(&mut tx, order_id).await?);
        if lines.is_empty() {
            tx.commit().await?;
            return Ok(false);
        }
        let ids: Vec<i64> = lines.iter().map(|line| line.product_id).collect();
        repo::products::lock_for_stock(&mut tx, &ids).await?;
        repo::products::give_back_stock(&mut tx, &lines).await?;
        repo::outbox::append(&mut tx, &Event::StockReleased { order_id, lines }).await?;
        tx.commit().await?;
        Ok(true)
    }
}
