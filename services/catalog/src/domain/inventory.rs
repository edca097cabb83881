//! Stock reservations for the order service. A reservation is keyed by
//! `order_id`: replaying it returns the stored snapshot and changes nothing;
//! releasing it gives the stock back once.

use std::collections::HashMap;

use shop_platform::kernel::order_lines::{OrderLine, OrderLines};
use sqlx::PgPool;

use crate::error::Error;
use crate::model::{Event, ReservedLine};
use crate::repo;
use crate::repo::stock::Reservation;

#[derive(Clone)]
pub struct Inventory {
    pool: PgPool,
}

impl Inventory {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Takes `wanted` out of stock for `order_id`, all or nothing, in one
    /// round trip (lock, check, take, snapshot, event: see `repo::stock`).
    /// Every line that cannot be had is named, and then nothing changed.
    pub async fn reserve(&self, order_id: i64, wanted: &OrderLines) -> Result<Vec<ReservedLine>, Error> {
        let event = repo::outbox::encode(&Event::StockReserved { order_id, lines: wanted.lines().to_vec() });
        match repo::stock::reserve(&mut *self.pool.acquire().await?, order_id, wanted, event).await? {
            Reservation::Reserved(snapshot) => Ok(snapshot),
            Reservation::Released => {
                Err(Error::FailedPrecondition(format!("order {order_id}'s reservation was released")))
            }
            Reservation::Refused(shortages) => Err(Error::OutOfStock(shortages)),
        }
    }

    /// Gives the order's stock back; `false` when there was nothing to give
    /// (already released, or never reserved: then a late reserve is refused).
    pub async fn release(&self, order_id: i64) -> Result<bool, Error> {
        let mut tx = self.pool.begin().await?;
        if !repo::reservations::release(&mut tx, order_id).await? {
            return Ok(false);
        }
        let lines: Vec<OrderLine> = repo::reservations::lines(&mut tx, order_id)
            .await?
            .iter()
            .map(|line| OrderLine { product_id: line.product_id, quantity: line.quantity })
            .collect();
        if lines.is_empty() {
            tx.commit().await?;
            return Ok(false);
        }
        repo::stock::give_back(&mut tx, &lines).await?;
        repo::outbox::append(&mut tx, &Event::StockReleased { order_id, lines }).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Every product's units, read at one moment: what an audit balances the
/// order books against. A sale or a release moves units between stock and
/// sold, so `stock + sold` of a product changes only when an admin restocks.
#[derive(Debug, Clone, Default)]
pub struct StockLedger {
    /// `stock + sold_count` by product id.
    pub units_by_product: HashMap<i64, i64>,
    /// Σ `sold_count` over every product.
    pub sold: i64,
}

pub async fn ledger(pool: &PgPool) -> Result<StockLedger, Error> {
    let rows = repo::stock::ledger(&mut *pool.acquire().await?).await?;
    let mut ledger = StockLedger { units_by_product: HashMap::with_capacity(rows.len()), sold: 0 };
    for line in rows {
        ledger.units_by_product.insert(line.product_id, line.stock + line.sold_count);
        ledger.sold += line.sold_count;
    }
    Ok(ledger)
}
