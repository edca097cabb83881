//! The order half: placing orders for checkout (the saga's middle step),
//! order history, cancellation and an admin's status moves, each change that
//! matters to others written to the outbox in its own transaction.
//!
//! Placement: insert PENDING (unique per user and key) → ReserveStock (keyed
//! by order id, so repeating it is safe) → PLACED with the price snapshot and
//! an `OrderPlaced` event. A repeat of the same key drives the same order, so
//! concurrent repeats all end on it. Any failure marks the order FAILED and
//! owes its stock back; [`Orders::recover`] pays such debts and fails PENDING
//! orders a crash abandoned.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;
use shop_platform::money::Money;
use shop_platform::paging::Page;
use shop_platform::time::timestamp;
use shop_proto::order::order_event::Payload;
use shop_proto::order::{Order, OrderCancelled, OrderEvent, OrderItem, OrderPlaced, OrderStatus, OrderStatusChanged};
use sqlx::PgPool;
use tokio::task::JoinHandle;

use crate::calls::{CallContext, Calls};
use crate::domain::{OrderLines, Status};
use crate::error::Error;
use crate::faults::{Faults, SagaStep};
use crate::repo;
use crate::repo::orders::{Filter, LineRow, OrderRow, Snapshot};

/// How many orders one recovery pass handles of each kind.
const RECOVERY_BATCH: i64 = 100;

#[derive(Debug, Clone, Copy)]
pub struct RecoveryPolicy {
    pub interval: Duration,
    pub pending_timeout: Duration,
}

/// Who asks for an order: its owner sees only their own placed orders; an
/// admin sees every order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    Owner(i64),
    Admin,
}

#[derive(Clone)]
pub struct Orders {
    pool: PgPool,
    calls: Calls,
    faults: Faults,
}

/// An order as the API shows it: only a placed order has items and totals.
pub fn order_message(row: &OrderRow, lines: &[LineRow]) -> Order {
    let items: Vec<OrderItem> = lines
        .iter()
        .filter(|line| line.order_id == row.id)
        .filter_map(|line| {
            let unit_price = Money::from_decimal(line.unit_price?);
            Some(OrderItem {
                product_id: line.product_id,
                title: line.title.clone()?,
                unit_price: unit_price.to_string(),
                quantity: line.quantity,
                line_total: unit_price.times(i64::from(line.quantity)).to_string(),
                category_name: line.category_name.clone()?,
                category_slug: line.category_slug.clone()?,
            })
        })
        .collect();
    Order {
        id: row.id,
        user_id: row.user_id,
        status: OrderStatus::from(row.status()).into(),
        items,
        total_price: Money::from_decimal(row.total_price).to_string(),
        total_quantity: row.total_quantity,
        created_at: Some(timestamp(row.created_at)),
        updated_at: Some(timestamp(row.updated_at)),
    }
}

fn event(payload: Payload) -> OrderEvent {
    OrderEvent { sequence: 0, occurred_at: None, payload: Some(payload) }
}

impl Orders {
    pub fn new(pool: PgPool, calls: Calls, faults: Faults) -> Self {
        Self { pool, calls, faults }
    }

    pub fn call_timeout(&self) -> Duration {
        self.calls.timeout()
    }

    /// PlaceOrder: see the module doc.
    pub async fn place(
        &self,
        context: &CallContext,
        user_id: i64,
        idempotency_key: Option<&str>,
        lines: &OrderLines,
    ) -> Result<Order, Error> {
        let (id, is_new) = self.claim(user_id, idempotency_key, lines).await?;
        if is_new {
            if self.faults.crashes_at(SagaStep::OrderInserted) {
                return Err(Error::Unavailable("injected crash after inserting the order".into()));
            }
            return self.drive(context, id, lines.lines().to_vec()).await;
        }
        let (row, stored) = self.load(id).await?;
        if row.status() != Status::Pending {
            // A repeat of an order that already got placed (or moved on since).
            return Ok(order_message(&row, &stored));
        }
        // A repeat of an order still being placed (or abandoned by a crash
        // that recovery has not reached yet): finish it with its own lines.
        self.drive(context, id, stored.iter().map(|line| (line.product_id, line.quantity)).collect()).await
    }

    /// The id of the order to drive: a new PENDING one, or the user's live
    /// order with this key. `true` when it is new.
    async fn claim(&self, user_id: i64, key: Option<&str>, lines: &OrderLines) -> Result<(i64, bool), Error> {
        // A live order with the key can turn FAILED between the insert that
        // collides with it and the look-up; then the key is free again.
        for _ in 0..3 {
            let mut conn = self.pool.acquire().await?;
            if let Some(id) = repo::orders::insert_pending(&mut conn, user_id, key, lines.lines()).await? {
                return Ok((id, true));
            }
            if let Some(key) = key
                && let Some(existing) = repo::orders::find_by_key(&mut conn, user_id, key).await?
            {
                return Ok((existing.id, false));
            }
        }
        Err(Error::Unavailable("the order with this idempotency key keeps changing; try again".into()))
    }

    /// Reserves a PENDING order's stock (its `requested` lines) and places it.
    async fn drive(&self, context: &CallContext, id: i64, requested: Vec<(i64, i32)>) -> Result<Order, Error> {
        let reserved = match self.calls.reserve_stock(context, id, &requested).await {
            Ok(reserved) => reserved,
            Err(status) => {
                self.fail(context, id).await?;
                return Err(Error::catalog(status));
            }
        };
        if self.faults.crashes_at(SagaStep::StockReserved) {
            return Err(Error::Unavailable("injected crash after reserving stock".into()));
        }
        let snapshot = reserved
            .into_iter()
            .map(|line| {
                let unit_price = Decimal::from_str(&line.unit_price).map_err(|_| {
                    Error::catalog(tonic::Status::internal(format!("malformed unit_price {:?}", line.unit_price)))
                })?;
                Ok(Snapshot {
                    product_id: line.product_id,
                    title: line.title,
                    unit_price,
                    category_name: line.category_name,
                    category_slug: line.category_slug,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let quantities: HashMap<i64, i32> = requested.iter().copied().collect();
        let total_price: Decimal = snapshot
            .iter()
            .map(|line| line.unit_price * Decimal::from(quantities.get(&line.product_id).copied().unwrap_or(0)))
            .sum();
        let total_quantity: i32 = requested.iter().map(|(_, quantity)| quantity).sum();

        let lines: Vec<LineRow> = snapshot
            .iter()
            .map(|line| LineRow {
                order_id: id,
                product_id: line.product_id,
                quantity: quantities.get(&line.product_id).copied().unwrap_or(0),
                title: Some(line.title.clone()),
                unit_price: Some(line.unit_price),
                category_name: Some(line.category_name.clone()),
                category_slug: Some(line.category_slug.clone()),
            })
            .collect();
        let mut tx = self.pool.begin().await?;
        let Some(row) = repo::orders::place(&mut tx, id, &snapshot, total_price, total_quantity).await? else {
            tx.rollback().await?;
            // Someone else moved it on: a concurrent repeat placed it, or
            // recovery gave up on it (then the stock we hold goes back).
            let (row, _) = self.load(id).await?;
            if row.status() == Status::Failed {
                self.release(context, id).await;
                return Err(Error::Unavailable("the order was abandoned while placing it; try again".into()));
            }
            return self.message(id).await;
        };
        let order = order_message(&row, &lines);
        repo::orders::OUTBOX
            .append(&mut tx, &event(Payload::OrderPlaced(OrderPlaced { order: Some(order.clone()) })))
            .await?;
        tx.commit().await?;
        Ok(order)
    }

    /// PENDING → FAILED, then gives back whatever stock catalog may hold for it.
    async fn fail(&self, context: &CallContext, id: i64) -> Result<(), Error> {
        let mut conn = self.pool.acquire().await?;
        let failed = repo::orders::transition(&mut conn, id, Status::Pending, Status::Failed, None).await?;
        drop(conn);
        if failed.is_some() {
            self.release(context, id).await;
        }
        Ok(())
    }

    /// Asks catalog for the order's stock back; on failure the order keeps
    /// owing it and the recovery loop asks again.
    async fn release(&self, context: &CallContext, id: i64) {
        let context = context.detached(self.calls.timeout());
        match self.calls.release_stock(&context, id).await {
            Ok(_) => {
                let cleared = match self.pool.acquire().await {
                    Ok(mut conn) => repo::orders::released(&mut conn, id).await,
                    Err(error) => Err(error),
                };
                if let Err(error) = cleared {
                    tracing::warn!(order_id = id, error = %error, "stock released but not recorded; will release again");
                }
            }
            Err(status) => {
                tracing::warn!(order_id = id, status = %status, "cannot release stock now; recovery will retry");
            }
        }
    }

    async fn load(&self, id: i64) -> Result<(OrderRow, Vec<LineRow>), Error> {
        let mut conn = self.pool.acquire().await?;
        let row = repo::orders::get(&mut conn, id).await?.ok_or_else(|| Error::NotFound(format!("order {id}")))?;
        let lines = repo::orders::lines(&mut conn, &[id]).await?;
        Ok((row, lines))
    }

    async fn message(&self, id: i64) -> Result<Order, Error> {
        let (row, lines) = self.load(id).await?;
        Ok(order_message(&row, &lines))
    }

    /// FindOrder: the user's live order placed with this key.
    pub async fn find(&self, user_id: i64, idempotency_key: &str) -> Result<Order, Error> {
        let mut conn = self.pool.acquire().await?;
        let row = repo::orders::find_by_key(&mut conn, user_id, idempotency_key)
            .await?
            .ok_or_else(|| Error::NotFound("order with this idempotency key".into()))?;
        let lines = repo::orders::lines(&mut conn, &[row.id]).await?;
        Ok(order_message(&row, &lines))
    }

    /// GetOrder. An owner never sees another's order, nor one that never got
    /// placed.
    pub async fn get(&self, id: i64, viewer: Viewer) -> Result<Order, Error> {
        let (row, lines) = self.load(id).await?;
        if let Viewer::Owner(user_id) = viewer
            && (row.user_id != user_id || !row.status().is_visible_to_owner())
        {
            return Err(Error::NotFound(format!("order {id}")));
        }
        Ok(order_message(&row, &lines))
    }

    /// ListOrders / ListAllOrders.
    pub async fn list(&self, filter: Filter<'_>, page: Page) -> Result<(Vec<Order>, i64), Error> {
        let mut conn = self.pool.acquire().await?;
        let (rows, total) = repo::orders::page(&mut conn, filter, page.limit(), page.offset()).await?;
        let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
        let lines = repo::orders::lines(&mut conn, &ids).await?;
        Ok((rows.iter().map(|row| order_message(row, &lines)).collect(), total))
    }

    /// CancelOrder (owner) or UpdateOrderStatus (admin): moves the order to
    /// `to` from the one status that allows it, with its event. A
    /// cancellation then gives the stock back; when catalog cannot take it
    /// now, the order owes it and recovery pays later, so cancelling never
    /// waits on catalog.
    pub async fn change_status(
        &self,
        context: &CallContext,
        id: i64,
        to: Status,
        viewer: Viewer,
    ) -> Result<Order, Error> {
        let Some(from) = to.required_before() else {
            // Unknown (or hidden) orders stay NOT_FOUND; known ones cannot get there.
            let current = self.get(id, viewer).await?;
            let status = OrderStatus::try_from(current.status).map_or(Status::Failed, Status::from);
            return Err(Error::FailedPrecondition(format!("order {id} is {status}; no order can be moved to {to}")));
        };
        let owner = match viewer {
            Viewer::Owner(user_id) => Some(user_id),
            Viewer::Admin => None,
        };
        let mut tx = self.pool.begin().await?;
        let Some(row) = repo::orders::transition(&mut tx, id, from, to, owner).await? else {
            tx.rollback().await?;
            let current = self.get(id, viewer).await?;
            let status = OrderStatus::try_from(current.status).map_or(Status::Failed, Status::from);
            return Err(Error::FailedPrecondition(format!(
                "order {id} is {status}; only a {from} order can become {to}"
            )));
        };
        let lines = repo::orders::lines(&mut tx, &[id]).await?;
        let order = order_message(&row, &lines);
        let payload = if to == Status::Cancelled {
            Payload::OrderCancelled(OrderCancelled {
                order_id: id,
                old_status: OrderStatus::from(from).into(),
                new_status: OrderStatus::from(to).into(),
                order: Some(order.clone()),
            })
        } else {
            Payload::OrderStatusChanged(OrderStatusChanged {
                order_id: id,
                old_status: OrderStatus::from(from).into(),
                new_status: OrderStatus::from(to).into(),
                order: Some(order.clone()),
            })
        };
        repo::orders::OUTBOX.append(&mut tx, &event(payload)).await?;
        tx.commit().await?;
        if to == Status::Cancelled {
            self.release(context, id).await;
        }
        Ok(order)
    }

    /// One recovery pass: fails PENDING orders older than `pending_timeout`
    /// (their placement died with its process) and gives back the stock of
    /// every order still owing it. Returns how many orders it released.
    pub async fn recover(&self, policy: RecoveryPolicy) -> Result<usize, Error> {
        let mut conn = self.pool.acquire().await?;
        let mut owing = repo::orders::fail_abandoned(&mut conn, policy.pending_timeout, RECOVERY_BATCH).await?;
        for id in &owing {
            tracing::warn!(order_id = id, "failing an order abandoned while PENDING");
        }
        // Orders failed or cancelled just now are being released by their own
        // call; leave them a moment.
        for id in repo::orders::owing_stock(&mut conn, policy.interval, RECOVERY_BATCH).await? {
            if !owing.contains(&id) {
                owing.push(id);
            }
        }
        drop(conn);
        let context = CallContext::background(self.calls.timeout());
        for id in &owing {
            self.release(&context, *id).await;
        }
        Ok(owing.len())
    }

    /// Runs [`Orders::recover`] every `interval`, forever.
    pub fn spawn_recovery(self, policy: RecoveryPolicy) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(policy.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(error) = self.recover(policy).await {
                    tracing::warn!(error = %error, "order recovery pass failed; next pass retries");
                }
            }
        })
    }
}
