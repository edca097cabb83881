//! Pictures Shop keeps for products, in the file store. A picture is
//! decoded off the async threads, a few at a time; stored under a key of
//! its own (product id and digest), with its deletion scheduled before the
//! bytes are written and cancelled by the product write that commits it;
//! and a picture a product lets go of (replaced, removed, the product
//! archived) is scheduled for deletion in that write's transaction. The
//! sweeper deletes what is due, retrying what the store refuses, so the
//! store never keeps a picture nothing points at for long, and a product
//! never points at a picture that is gone.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use shop_platform::error::FieldRefusal as _;
use shop_platform::storage::files::Files;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::model::picture::{Picture, PictureLimits};
use crate::repo;

/// An upload whose product write never committed (a crash, a refusal) is
/// deleted this long after it was stored.
const UNCLAIMED_UPLOAD_SECS: f64 = 600.0;
/// How often the sweeper looks for due deletions when nothing wakes it.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
const SWEEP_BATCH: i64 = 100;

/// What a product write does to its picture.
pub enum PictureChange {
    /// As it is (but a new image_url lets go of a picture Shop keeps).
    Keep,
    Set(Picture),
    Remove,
}

#[derive(Clone)]
pub struct Pictures {
    files: Files,
    /// `http://host:port` of the gateway, for the pictures' addresses.
    public_url: Arc<str>,
    limits: PictureLimits,
    decoding: Arc<Semaphore>,
    sweep_now: Arc<Notify>,
}

impl Pictures {
    pub fn new(files: Files, public_url: &str, limits: PictureLimits, decoding_at_once: usize) -> Self {
        Self {
            files,
            public_url: public_url.trim_end_matches('/').into(),
            limits,
            decoding: Arc::new(Semaphore::new(decoding_at_once.max(1))),
            sweep_now: Arc::new(Notify::new()),
        }
    }

    /// The upload as a picture to keep, or INVALID_ARGUMENT naming `image`.
    pub async fn prepare(&self, raw: Vec<u8>) -> Result<Picture, Error> {
        let _turn = self.decoding.acquire().await.map_err(|_| Error::Internal("picture decoding closed".into()))?;
        let limits = self.limits;
        tokio::task::spawn_blocking(move || Picture::decode(&raw, limits))
            .await
            .map_err(|error| Error::Internal(format!("picture decoding: {error}")))?
            .map_err(Error::field("image"))
    }

    /// The address a kept picture is served at.
    pub fn url(&self, key: &str) -> String {
        format!("{}/images/{key}", self.public_url)
    }

    /// Stores the picture for the product and returns its key; its deletion
    /// stays scheduled until [`Pictures::point`] commits with it. Called
    /// before the product's transaction opens: a call holds one connection
    /// at a time. The product's own picture sent again is not stored twice
    /// (and never scheduled for deletion).
    pub async fn store(&self, pool: &PgPool, product_id: i64, picture: Picture) -> Result<String, Error> {
        let key = picture.key(product_id);
        let mut conn = pool.acquire().await?;
        if repo::pictures::key_of(&mut conn, product_id).await?.as_deref() == Some(key.as_str()) {
            return Ok(key);
        }
        repo::pictures::hold_for_upload(&mut conn, &key, UNCLAIMED_UPLOAD_SECS).await?;
        drop(conn);
        self.files.put(&key, Bytes::from(picture.bytes)).await?;
        Ok(key)
    }

    /// In the write's transaction: the product points at `key` (or at no
    /// kept picture, with `image_url`), and the picture it held before
    /// (`before`, read by [`Pictures::key_of`] in the same transaction) is
    /// scheduled for deletion. Returns whether a deletion is due.
    pub async fn point(
        &self,
        conn: &mut PgConnection,
        product_id: i64,
        before: Option<&str>,
        key: Option<&str>,
        image_url: &str,
    ) -> Result<bool, Error> {
        let url = key.map_or_else(|| image_url.to_owned(), |key| self.url(key));
        repo::pictures::set(conn, product_id, key, &url).await?;
        if let Some(key) = key {
            repo::pictures::cancel_deletion(conn, key).await?;
        }
        match before {
            Some(before) if Some(before) != key => {
                repo::pictures::schedule_deletion(conn, before).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The product's kept picture, if any (in the write's transaction).
    pub async fn key_of(&self, conn: &mut PgConnection, product_id: i64) -> Result<Option<String>, Error> {
        repo::pictures::key_of(conn, product_id).await
    }

    /// After a commit that let a picture go: delete it now, not at the next round.
    pub fn sweep_soon(&self) {
        self.sweep_now.notify_one();
    }

    /// Deletes due pictures from the store until the task is aborted.
    pub fn spawn_sweeper(&self, pool: PgPool) -> JoinHandle<()> {
        let pictures = self.clone();
        tokio::spawn(async move {
            loop {
                match pictures.sweep(&pool).await {
                    Ok(swept) if swept == SWEEP_BATCH as usize => continue,
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "picture deletions will be retried"),
                }
                tokio::select! {
                    () = pictures.sweep_now.notified() => {}
                    () = tokio::time::sleep(SWEEP_EVERY) => {}
                }
            }
        })
    }

    /// One round: the due deletions, each done or put off; how many were due.
    async fn sweep(&self, pool: &PgPool) -> Result<usize, Error> {
        let mut tx = pool.begin().await?;
        let due = repo::pictures::due(&mut tx, SWEEP_BATCH).await?;
        for key in &due {
            match self.files.delete(key).await {
                Ok(()) => repo::pictures::forget(&mut tx, key).await?,
                Err(error) => {
                    tracing::warn!(%error, key, "a picture could not be deleted yet");
                    repo::pictures::retry_later(&mut tx, key).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(due.len())
    }
}
