//! The catalog event feed: a subscriber first gets the backlog after its
//! sequence, then live events as they commit. Commits are heard through
//! Postgres NOTIFY (so events written by any catalog replica wake every
//! subscriber), with a one-second poll as a safety net.

use std::sync::Arc;
use std::time::Duration;

use shop_proto::catalog::CatalogEvent;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tonic::Status;

use crate::repo;

const BATCH: i64 = 500;
const POLL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct EventFeed {
    pool: PgPool,
    wake: Arc<Notify>,
}

impl EventFeed {
    pub fn new(pool: PgPool) -> Self {
        Self { pool, wake: Arc::new(Notify::new()) }
    }

    /// Listens for committed events and wakes subscribers; reconnects with
    /// backoff when the connection drops.
    pub fn spawn_listener(&self) -> JoinHandle<()> {
        let feed = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                if let Err(error) = feed.listen().await {
                    tracing::warn!(error = %error, "catalog event listener lost its connection; retrying");
                }
                // Whatever was missed meanwhile, subscribers re-read from their cursor.
                feed.wake.notify_waiters();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        })
    }

    async fn listen(&self) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(repo::outbox::CHANNEL).await?;
        loop {
            listener.recv().await?;
            self.wake.notify_waiters();
        }
    }

    /// Events after `after_sequence`, backlog then live, until the receiver goes away.
    pub fn subscribe(&self, after_sequence: i64) -> mpsc::Receiver<Result<CatalogEvent, Status>> {
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
                    Ok(mut conn) => repo::outbox::after(&mut conn, cursor, BATCH).await,
                    Err(error) => Err(error.into()),
                };
                let batch = match batch {
                    Ok(batch) => batch,
                    Err(error) => {
                        let _ = sender.send(Err(error.into())).await;
                        return;
                    }
                };
                let caught_up = (batch.len() as i64) < BATCH;
                for event in batch {
                    cursor = event.sequence;
                    if sender.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                if caught_up {
                    tokio::select! {
                        () = &mut woken => {}
                        () = tokio::time::sleep(POLL) => {}
                        () = sender.closed() => return,
                    }
                }
            }
        });
        receiver
    }
}
