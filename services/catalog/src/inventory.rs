//! Stock reservations for the order service. A reservation is keyed by
//! `order_id`: replaying it returns the stored snapshot and changes nothing;
//! releasing it gives the stock back once.

use shop_proto::catalog::catalog_event::Payload;
use shop_proto::catalog::{StockLine, StockReleased, StockReserved};
use sqlx::PgPool;

use crate::domain::ReservationLines;
use crate::error::Error;
use crate::repo;
use crate::repo::reservations::{LineRow, Status};

#[derive(Clone)]
pub struct Inventory {
    pool: PgPool,
}

fn stock_lines(lines: &[LineRow]) -> Vec<StockLine> {
    lines.iter().map(|line| StockLine { product_id: line.product_id, quantity: line.quantity }).collect()
}

impl Inventory {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn reserve(&self, order_id: i64, wanted: &ReservationLines) -> Result<Vec<LineRow>, Error> {
        let mut tx = self.pool.begin().await?;
        // Claiming the order first makes concurrent replays of one order wait
        // for the first, then read what it stored.
        if !repo::reservations::claim(&mut tx, order_id).await? {
            return match repo::reservations::status(&mut tx, order_id).await? {
                Some(Status::Reserved) => repo::reservations::lines(&mut tx, order_id).await,
                _ => Err(Error::FailedPrecondition(format!("order {order_id}'s reservation was released"))),
            };
        }
        let ids: Vec<i64> = wanted.lines().iter().map(|(id, _)| *id).collect();
        let locked = repo::products::lock_for_stock(&mut tx, &ids).await?;
        let mut snapshot = Vec::with_capacity(ids.len());
        for (product_id, quantity) in wanted.lines() {
            let product = locked
                .iter()
                .find(|(product, is_archived)| product.id == *product_id && !is_archived)
                .map(|(product, _)| product)
                .ok_or_else(|| Error::NotFound(format!("product {product_id}")))?;
            if product.stock < *quantity {
                // Returning drops the transaction: nothing changed anywhere.
                return Err(Error::FailedPrecondition(format!(
                    "product {product_id} ({}) is out of stock: {} left, {quantity} wanted",
                    product.title, product.stock
                )));
            }
            snapshot.push(LineRow {
                product_id: *product_id,
                quantity: *quantity,
                title: product.title.clone(),
                unit_price: product.price,
                category_name: product.category_name.clone(),
                category_slug: product.category_slug.clone(),
            });
        }
        repo::products::move_stock(&mut tx, wanted.lines()).await?;
        repo::reservations::insert_lines(&mut tx, order_id, &snapshot).await?;
        repo::outbox::append(
            &mut tx,
            Payload::StockReserved(StockReserved { order_id, lines: stock_lines(&snapshot) }),
        )
        .await?;
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
        let lines = repo::reservations::lines(&mut tx, order_id).await?;
        if lines.is_empty() {
            tx.commit().await?;
            return Ok(false);
        }
        let ids: Vec<i64> = lines.iter().map(|line| line.product_id).collect();
        repo::products::lock_for_stock(&mut tx, &ids).await?;
        let giving_back: Vec<(i64, i32)> = lines.iter().map(|line| (line.product_id, -line.quantity)).collect();
        repo::products::move_stock(&mut tx, &giving_back).await?;
        repo::outbox::append(&mut tx, Payload::StockReleased(StockReleased { order_id, lines: stock_lines(&lines) }))
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}
