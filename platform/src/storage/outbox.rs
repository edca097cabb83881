//! The transactional outbox and the live feed that reads it, the same for
//! every service that publishes an ordered event stream. Each such schema has
//! an `outbox` table and a one-row `outbox_head`, defined here once
//! ([`migrations`]) and added to the schema's own migrations by
//! [`crate::storage::db::connect`].
//!
//! [`Outbox::append`] runs inside the writing transaction, so an event commits
//! with its change or not at all. Numbers come from `outbox_head`, whose row
//! stays locked until commit, so they are gap-free and in commit order (at the
//! price of serializing the writers of one schema from append to commit).
//!
//! [`EventFeed::subscribe`] sends the backlog after a sequence, then live
//! events. Commits are heard through Postgres NOTIFY, so events written by any
//! replica wake every subscriber; a one-second poll is the safety net.
//!
//! Its SQL names no schema: it runs on the one its connection's
//! `search_path` names, and `.ci/sqlx-prepare` checks it against a schema
//! holding the outbox's tables alone.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::time::Duration;

use shop_proto::StreamEvent;
use sqlx::migrate::{Migration, MigrationType};
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::codegen::BoxStream;

use crate::error::Invalid;

const BATCH: i64 = 500;

/// Outbox migrations get versions far above any service's own, so the two
/// sets never collide in a schema's `_sqlx_migrations`.
const FIRST_VERSION: i64 = 1_000_000_001;

/// The outbox's migrations, in order: its tables, then `outbox_append`.
pub fn migrations() -> Vec<Migration> {
    let migration = |offset: i64, description: &'static str, sql: &'static str| {
        Migration::new(
            FIRST_VERSION + offset,
            Cow::Borrowed(description),
            MigrationType::Simple,
            Cow::Borrowed(sql),
            false,
        )
    };
    vec![
        migration(0, "outbox tables", include_str!("../../migrations/outbox.sql")),
        migration(1, "outbox append", include_str!("../../migrations/outbox_append.sql")),
    ]
}
const POLL: Duration = Duration::from_secs(1);

/// One schema's outbox; `channel` is where its commits are announced.
#[derive(Debug, Clone, Copy)]
pub struct Outbox {
    channel: &'static str,
}

impl Outbox {
    pub const fn new(channel: &'static str) -> Self {
        Self { channel }
    }

    pub fn channel(self) -> &'static str {
        self.channel
    }

    /// Appends `event` (its sequence and time are set on reading). Call it
    /// last in the transaction: it holds the head row until commit. A
    /// statement that writes a change can append its event itself, in the
    /// same round trip: `outbox_append(<event>, <channel>)` in SQL.
    pub async fn append<E: StreamEvent>(self, conn: &mut PgConnection, event: &E) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar!(r#"SELECT outbox_append($1, $2) AS "sequence!""#, event.encode_to_vec(), self.channel)
            .fetch_one(conn)
            .await
    }

    /// Appends `events` in one go (COPY), for bulk loads such as `shop
    /// seed`, with the same guarantees as [`Outbox::append`]; returns the
    /// last sequence. Call it last in the transaction.
    pub async fn append_many<E: StreamEvent>(self, conn: &mut PgConnection, events: &[E]) -> Result<i64, sqlx::Error> {
        let count = events.len() as i64;
        let last = sqlx::query_scalar!(
            "UPDATE outbox_head SET last_sequence = last_sequence + $1 RETURNING last_sequence",
            count
        )
        .fetch_one(&mut *conn)
        .await?;
        let mut rows = String::with_capacity(events.len() * 160);
        for (sequence, event) in (last - count + 1..).zip(events) {
            // COPY's text format: bytea as \x + hex, the backslash escaped.
            let _ = write!(rows, "{sequence}\t\\\\x");
            for byte in event.encode_to_vec() {
                let _ = write!(rows, "{byte:02x}");
            }
            rows.push('\n');
        }
        // Dynamic: COPY goes through sqlx's copy API, which no macro checks.
        let mut copy = conn.copy_in_raw("COPY outbox (sequence, payload) FROM STDIN").await?;
        copy.send(rows.into_bytes()).await?;
        copy.finish().await?;
        sqlx::query!("SELECT pg_notify($1, $2)", self.channel, last.to_string()).fetch_one(conn).await?;
        Ok(last)
    }

    /// The last sequence handed out (committed or not yet).
    pub async fn head(self, conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar!("SELECT last_sequence FROM outbox_head").fetch_one(conn).await
    }

    /// Up to `limit` events after `after`, in order, stamped.
    pub async fn after<E: StreamEvent>(
        self,
        conn: &mut PgConnection,
        after: i64,
        limit: i64,
    ) -> Result<Vec<E>, sqlx::Error> {
        let rows = sqlx::query!(
            "SELECT sequence, occurred_at, payload FROM outbox WHERE sequence > $1 ORDER BY sequence LIMIT $2",
            after,
            limit,
        )
        .fetch_all(conn)
        .await?;
        rows.into_iter()
            .map(|row| {
                let mut event =
                    E::decode(row.payload.as_slice()).map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
                event.stamp(row.sequence, crate::kernel::time::timestamp(row.occurred_at));
                Ok(event)
            })
            .collect()
    }
}

/// Streams one outbox to any number of subscribers.
pub struct EventFeed<E> {
    pool: PgPool,
    outbox: Outbox,
    wake: Arc<Notify>,
    /// The newest sequence a notification announced.
    newest: Arc<AtomicI64>,
    /// Cancelled when the server stops: open streams end, so a graceful
    /// shutdown does not wait forever on subscribers that never hang up.
    closing: CancellationToken,
    _events: PhantomData<fn() -> E>,
}

impl<E> Clone for EventFeed<E> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            outbox: self.outbox,
            wake: self.wake.clone(),
            newest: self.newest.clone(),
            closing: self.closing.clone(),
            _events: PhantomData,
        }
    }
}

impl<E: StreamEvent> EventFeed<E> {
    pub fn new(pool: PgPool, outbox: Outbox) -> Self {
        Self {
            pool,
            outbox,
            wake: Arc::new(Notify::new()),
            newest: Arc::new(AtomicI64::new(0)),
            closing: CancellationToken::new(),
            _events: PhantomData,
        }
    }

    /// Notified whenever events may have been committed (a NOTIFY from any
    /// replica), for readers of the outbox other than subscribers.
    pub fn notifications(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// `shutdown`, which also ends every open subscription when it resolves:
    /// give this to the server in place of `shutdown`.
    pub fn closing_with(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let closing = self.closing.clone();
        async move {
            shutdown.await;
            closing.cancel();
        }
    }

    /// Listens for committed events and wakes subscribers; reconnects with
    /// backoff when the connection drops.
    pub fn spawn_listener(&self) -> JoinHandle<()> {
        let feed = self.clone();
        tokio::spawn(async move {
            crate::observability::restart::keep_running("event listener", || async {
                let lost = feed.listen().await;
                // Whatever was missed meanwhile, subscribers re-read from their cursor.
                feed.wake.notify_waiters();
                lost.map_err(|error| format!("{} lost its connection: {error}", feed.outbox.channel))
            })
            .await;
        })
    }

    /// Wakes subscribers at every notification until the connection drops
    /// (never `Ok`).
    async fn listen(&self) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(self.outbox.channel).await?;
        loop {
            let notification = listener.recv().await?;
            // Each notification carries the sequence committed.
            if let Ok(sequence) = notification.payload().parse::<i64>() {
                self.newest.fetch_max(sequence, AtomicOrdering::Relaxed);
            }
            self.wake.notify_waiters();
        }
    }

    /// `shop_outbox_subscriber_lag_events{outbox}`: how far the last batch
    /// sent is behind the newest event heard of (no query: this runs per batch).
    fn report_lag(&self, sent: i64) {
        let newest = self.newest.load(AtomicOrdering::Relaxed).max(sent);
        metrics::gauge!("shop_outbox_subscriber_lag_events", "outbox" => self.outbox.channel)
            .set((newest - sent) as f64);
    }

    /// A `Subscribe` RPC's answer: events after `after_sequence` (which must
    /// not be negative), backlog then live, until the client goes away.
    pub fn subscription(&self, after_sequence: i64) -> Result<BoxStream<E>, Status> {
        if after_sequence < 0 {
            return Err(crate::error::invalid_argument("after_sequence", &Invalid::new("must not be negative")));
        }
        Ok(Box::pin(ReceiverStream::new(self.subscribe(after_sequence))))
    }

    /// Events after `after_sequence`, backlog then live, until the receiver goes away.
    fn subscribe(&self, after_sequence: i64) -> mpsc::Receiver<Result<E, Status>> {
        let (sender, receiver) = mpsc::channel(BATCH as usize);
        let feed = self.clone();
        tokio::spawn(async move {
            let mut cursor = after_sequence;
            loop {
                // Registered before reading, so an event committed in between still wakes us.
                let woken = feed.wake.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                let batch = match feed.pool.acquire().await {
                    Ok(mut conn) => feed.outbox.after::<E>(&mut conn, cursor, BATCH).await,
                    Err(error) => Err(error),
                };
                let batch = match batch {
                    Ok(batch) => batch,
                    Err(error) => {
                        let _ = sender.send(Err(crate::error::database(error))).await;
                        return;
                    }
                };
                let caught_up = (batch.len() as i64) < BATCH;
                if let Some(last) = batch.last() {
                    feed.report_lag(last.sequence());
                }
                for event in batch {
                    cursor = event.sequence();
                    if sender.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                if feed.closing.is_cancelled() {
                    return;
                }
                if caught_up {
                    tokio::select! {
                        () = &mut woken => {}
                        () = tokio::time::sleep(POLL) => {}
                        () = sender.closed() => return,
                        () = feed.closing.cancelled() => return,
                    }
                }
            }
        });
        receiver
    }
}
