//! The order half of the checkout saga: placing orders for checkout, and
//! the recovery loop that repairs what a crash or an outage leaves behind.
//!
//! Placement: insert PENDING (unique per user and key) → ReserveStock (keyed
//! by order id, so repeating it is safe) → PLACED with the price snapshot and
//! an `OrderPlaced` event. A repeat of the same key drives the same order, so
//! concurrent repeats all end on it. Any failure marks the order FAILED and
//! owes its stock back; [`Placement::recover`] pays such debts and fails
//! PENDING orders a crash abandoned.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use shop_platform::kernel::order_lines::OrderLines;
use shop_platform::transport::client::CallContext;
use sqlx::PgPool;
use tokio::task::JoinHandle;

use crate::calls::Calls;
use crate::error::Error;
use crate::faults::{Faults, SagaStep};
use crate::model::{Event, Order, Status};
use crate::repo;

/// How many orders one recovery pass handles of each kind.
const RECOVERY_BATCH: i64 = 100;

#[derive(Debug, Clone, Copy)]
pub struct RecoveryPolicy {
    pub interval: Duration,
    pub pending_timeout: Duration,
}

/// An order just inserted (or found) PENDING, to drive on.
#[derive(Debug, Clone, Copy)]
struct Pending {
    id: i64,
    user_id: i64,
    created_at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct Placement {
    pool: PgPool,
    calls: Calls,
    faults: Faults,
    /// Orders whose release failed and was logged: the recovery loop retries
    /// them every pass, and says so again only when it finally works.
    failing_releases: Arc<Mutex<HashSet<i64>>>,
}

impl Placement {
    pub fn new(pool: PgPool, calls: Calls, faults: Faults) -> Self {
        Self { pool, calls, faults, failing_releases: Arc::default() }
    }

    /// Whether this is the first failure of `id`'s release since it last worked.
    fn first_release_failure(&self, id: i64) -> bool {
        self.failing_releases.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(id)
    }

    /// Whether `id`'s release had failed before it worked.
    fn release_recovered(&self, id: i64) -> bool {
        self.failing_releases.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&id)
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
        if let Some(created_at) = is_new {
            if self.faults.crashes_at(SagaStep::OrderInserted) {
                return Err(Error::Unavailable("injected crash after inserting the order".into()));
            }
            let pending = Pending { id, user_id, created_at };
            return self.drive(context, pending, lines).await;
        }
        let order = self.load(id).await?;
        if order.status != Status::Pending {
            // A repeat of an order that already got placed (or moved on since).
            return Ok(order);
        }
        // A repeat of an order still being placed (or abandoned by a crash
        // that recovery has not reached yet): finish it with its own lines.
        let stored = order.lines().map_err(|reason| Error::Internal(format!("order {id}'s lines: {reason}")))?;
        let pending = Pending { id, user_id: order.user_id, created_at: order.created_at };
        self.drive(context, pending, &stored).await
    }

    /// The id of the order to drive: a new PENDING one (with when it was
    /// made), or the user's live order with this key.
    async fn claim(
        &self,
        user_id: i64,
        key: Option<&str>,
        lines: &OrderLines,
    ) -> Result<(i64, Option<DateTime<Utc>>), Error> {
        // A live order with the key can turn FAILED between the insert that
        // collides with it and the look-up; then the key is free again.
        for _ in 0..3 {
            let mut conn = self.pool.acquire().await?;
            if let Some((id, created_at)) = repo::orders::insert_pending(&mut conn, user_id, key, lines).await? {
                return Ok((id, Some(created_at)));
            }
            if let Some(key) = key
                && let Some(existing) = repo::orders::find_by_key(&mut conn, user_id, key).await?
            {
                return Ok((existing.id, None));
            }
        }
        Err(Error::Unavailable("the order with this idempotency key keeps changing; try again".into()))
    }

    /// Reserves a PENDING order's stock (its `requested` lines) and places it.
    async fn drive(&self, context: &CallContext, pending: Pending, requested: &OrderLines) -> Result<Order, Error> {
        let id = pending.id;
        let items = match self.calls.reserve_stock(context, id, requested).await {
            Ok(items) => items,
            Err(error) => {
                self.fail(context, id).await?;
                return Err(error);
            }
        };
        if self.faults.crashes_at(SagaStep::StockReserved) {
            return Err(Error::Unavailable("injected crash after reserving stock".into()));
        }
        // The placed order, its event written with it in one statement.
        let order = Order {
            id,
            user_id: pending.user_id,
            status: Status::Placed,
            total_price: items.iter().filter_map(|item| item.line_total()).sum(),
            total_quantity: requested.total_quantity(),
            items,
            created_at: pending.created_at,
            updated_at: Utc::now().max(pending.created_at),
        };
        let event = Event::Placed(order.clone());
        if !repo::orders::place(&mut *self.pool.acquire().await?, &order, &event).await? {
            // Someone else moved it on: a concurrent repeat placed it, or
            // recovery gave up on it (then the stock we hold goes back).
            let order = self.load(id).await?;
            if order.status == Status::Failed {
                self.release(context, id).await;
                return Err(Error::Unavailable("the order was abandoned while placing it; try again".into()));
            }
            return Ok(order);
        }
        Ok(order)
    }

    /// PENDING → FAILED, then gives back whatever stock catalog may hold for it.
    async fn fail(&self, context: &CallContext, id: i64) -> Result<(), Error> {
        let mut conn = self.pool.acquire().await?;
        let failed = repo::orders::fail_pending(&mut conn, id).await?;
        drop(conn);
        if failed {
            self.release(context, id).await;
        }
        Ok(())
    }

    /// Asks catalog for the order's stock back; on failure the order keeps
    /// owing it and the recovery loop asks again.
    pub async fn release(&self, context: &CallContext, id: i64) {
        let context = context.detached(self.calls.timeout());
        match self.calls.release_stock(&context, id).await {
            Ok(_) => {
                let cleared = match self.pool.acquire().await {
                    Ok(mut conn) => repo::orders::mark_released(&mut conn, id).await,
                    Err(error) => Err(error.into()),
                };
                if let Err(error) = cleared {
                    tracing::warn!(order_id = id, error = %error, "stock released but not recorded; will release again");
                } else if self.release_recovered(id) {
                    tracing::info!(order_id = id, "stock released after earlier failures");
                }
            }
            // Once per order, not once per recovery pass: a release that
            // fails for good would otherwise log forever.
            Err(error) if self.first_release_failure(id) => {
                if error.is_outage() {
                    tracing::warn!(order_id = id, error = %error, "cannot release stock now; recovery will retry");
                } else {
                    tracing::error!(
                        order_id = id,
                        error = %error,
                        "stock release refused; recovery retries it every pass (logged once per order)"
                    );
                }
            }
            Err(error) => tracing::debug!(order_id = id, error = %error, "stock release failed again"),
        }
    }

    async fn load(&self, id: i64) -> Result<Order, Error> {
        repo::orders::get(&mut *self.pool.acquire().await?, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("order {id}")))
    }

    /// FindOrder: the user's live order placed with this key.
    pub async fn find(&self, user_id: i64, idempotency_key: &str) -> Result<Order, Error> {
        repo::orders::find_by_key(&mut *self.pool.acquire().await?, user_id, idempotency_key)
            .await?
            .ok_or_else(|| Error::NotFound("order with this idempotency key".into()))
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

    /// Runs [`Placement::recover`] every `interval`, forever.
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
