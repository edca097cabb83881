//! Stream consumers. Each stream is applied by one replica at a time: the
//! consumer first takes a Postgres advisory lock on its own connection, and
//! applies every batch of events on that same connection, in one transaction
//! with the stream's checkpoint. So a crash at any point rolls back to the
//! last checkpoint (nothing lost, nothing counted twice), and a replica that
//! dies frees the lock with its connection, letting another take over.

use std::future::Future;
use std::time::Duration;

use sqlx::{Connection as _, PgConnection, PgPool};
use tokio::task::JoinHandle;
use tokio_stream::StreamExt as _;

use crate::calls::{Changes, Upstream};
use crate::error::Error;
use crate::model::{CatalogChange, OrderChange};
use crate::repo;

#[derive(Debug, Clone, Copy)]
pub struct ConsumerPolicy {
    pub batch_size: usize,
    pub retry_max: Duration,
}

/// One event stream reporting consumes.
pub trait Source: Send + Sync + 'static {
    type Change: Send + 'static;
    /// The stream's checkpoint row.
    const NAME: &'static str;
    /// The advisory lock that makes its consumer single across replicas.
    const LOCK: i64;

    fn subscribe(&self, after_sequence: i64) -> impl Future<Output = Result<Changes<Self::Change>, Error>> + Send;

    /// Applies a batch of changes, in order, inside the consumer's transaction.
    fn apply(conn: &mut PgConnection, changes: &[Self::Change]) -> impl Future<Output = Result<(), Error>> + Send;

    /// Whether a change touches the read model (most of the catalog stream,
    /// its stock moves, does not).
    fn changes_sales(change: &Self::Change) -> bool;
}

pub struct CatalogStream(pub Upstream);

impl Source for CatalogStream {
    type Change = CatalogChange;
    const NAME: &'static str = "catalog";
    // "rpt-cat" in ASCII: distinct from every other lock this database takes.
    const LOCK: i64 = 0x0072_7074_2d63_6174;

    async fn subscribe(&self, after_sequence: i64) -> Result<Changes<CatalogChange>, Error> {
        self.0.catalog_after(after_sequence).await
    }

    async fn apply(conn: &mut PgConnection, changes: &[CatalogChange]) -> Result<(), Error> {
        repo::apply_catalog_changes(conn, changes).await
    }

    fn changes_sales(change: &CatalogChange) -> bool {
        !matches!(change, CatalogChange::Ignored)
    }
}

pub struct OrderStream(pub Upstream);

impl Source for OrderStream {
    type Change = OrderChange;
    const NAME: &'static str = "orders";
    // "rpt-ord" in ASCII.
    const LOCK: i64 = 0x0072_7074_2d6f_7264;

    async fn subscribe(&self, after_sequence: i64) -> Result<Changes<OrderChange>, Error> {
        self.0.orders_after(after_sequence).await
    }

    async fn apply(conn: &mut PgConnection, changes: &[OrderChange]) -> Result<(), Error> {
        repo::apply_order_changes(conn, changes).await
    }

    fn changes_sales(change: &OrderChange) -> bool {
        !matches!(change, OrderChange::Ignored)
    }
}

/// Consumes `source` forever: takes the lock, resumes from the checkpoint,
/// applies batches; after any failure (stream dropped, database gone, lock
/// held elsewhere) it waits with backoff and starts over.
pub fn spawn<S: Source>(source: S, pool: PgPool, policy: ConsumerPolicy) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut waits = shop_platform::observability::restart::backoff_up_to(policy.retry_max);
        loop {
            match consume(&source, &pool, policy).await {
                Ok(Progress::Applied) => waits = shop_platform::observability::restart::backoff_up_to(policy.retry_max),
                Ok(Progress::LockHeldElsewhere) => {}
                Err(error) => {
                    tracing::warn!(
                        stream = S::NAME,
                        error = shop_platform::error::chain_without_repeats(error.as_ref()),
                        "event stream consumer stopped; retrying"
                    );
                }
            }
            tokio::time::sleep(waits.next().unwrap_or(policy.retry_max)).await;
        }
    })
}

enum Progress {
    Applied,
    LockHeldElsewhere,
}

async fn consume<S: Source>(source: &S, pool: &PgPool, policy: ConsumerPolicy) -> anyhow::Result<Progress> {
    // A connection of its own: the lock lives exactly as long as it does.
    let mut conn = pool.acquire().await?.detach();
    if !repo::try_advisory_lock(&mut conn, S::LOCK).await? {
        return Ok(Progress::LockHeldElsewhere);
    }
    let mut applied = repo::checkpoint(&mut conn, S::NAME).await?;
    let mut stream = source.subscribe(applied).await?;
    let mut progress = Progress::LockHeldElsewhere;
    while let Some(first) = stream.next().await {
        let mut batch = vec![first?];
        // Whatever else has already arrived joins the same transaction.
        while batch.len() < policy.batch_size {
            match tokio::time::timeout(Duration::ZERO, stream.next()).await {
                Ok(Some(event)) => batch.push(event?),
                Ok(None) | Err(_) => break,
            }
        }
        let from = applied;
        for stamped in &batch {
            anyhow::ensure!(
                stamped.sequence == applied + 1,
                "{} stream skipped from {applied} to {}",
                S::NAME,
                stamped.sequence
            );
            applied = stamped.sequence;
        }
        let occurred_at = batch.last().and_then(|stamped| stamped.occurred_at);
        let changes: Vec<S::Change> =
            batch.into_iter().map(|stamped| stamped.change).filter(S::changes_sales).collect();
        let moved = if changes.is_empty() {
            // Only the checkpoint moves: one statement, no write turn needed.
            repo::advance(&mut conn, S::NAME, from, applied, occurred_at).await?
        } else {
            let mut tx = conn.begin().await?;
            repo::take_write_turn(&mut tx).await?;
            S::apply(&mut tx, &changes).await?;
            let moved = repo::advance(&mut tx, S::NAME, from, applied, occurred_at).await?;
            if moved {
                tx.commit().await?;
            }
            moved
        };
        anyhow::ensure!(moved, "{} checkpoint moved under this consumer; starting over", S::NAME);
        progress = Progress::Applied;
        metrics::gauge!("shop_reporting_checkpoint", "stream" => S::NAME).set(applied as f64);
        if let Some(at) = occurred_at {
            let behind = (chrono::Utc::now() - at).num_milliseconds();
            metrics::gauge!("shop_reporting_lag_seconds", "stream" => S::NAME).set(behind.max(0) as f64 / 1000.0);
        }
    }
    Ok(progress)
}
