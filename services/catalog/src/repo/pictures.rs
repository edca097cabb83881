//! Products' pictures: which one a product has (its file store key), and the
//! deletions of pictures no product points at any more, done by the sweeper.

use sqlx::PgConnection;

use crate::error::Error;

/// The key of the product's current picture, if Shop keeps one.
pub async fn key_of(conn: &mut PgConnection, product_id: i64) -> Result<Option<String>, Error> {
    Ok(sqlx::query_scalar!("SELECT picture_key FROM products WHERE id = $1", product_id)
        .fetch_optional(conn)
        .await?
        .flatten())
}

/// Points the product at a picture (or at none, with the URL it has then).
pub async fn set(conn: &mut PgConnection, product_id: i64, key: Option<&str>, image_url: &str) -> Result<(), Error> {
    sqlx::query!(
        "UPDATE products SET picture_key = $2, image_url = $3, updated_at = now() WHERE id = $1",
        product_id,
        key,
        image_url,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Schedules the deletion of a picture let go of, due now.
pub async fn schedule_deletion(conn: &mut PgConnection, key: &str) -> Result<(), Error> {
    sqlx::query!(
        "INSERT INTO picture_deletions (key, due_at) VALUES ($1, now())
         ON CONFLICT (key) DO UPDATE SET due_at = LEAST(picture_deletions.due_at, now())",
        key,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// An upload's own schedule, ten minutes (`delay_secs`) from now: later
/// than any earlier one, so a picture let go of and uploaded again is not
/// deleted under its new upload.
pub async fn hold_for_upload(conn: &mut PgConnection, key: &str, delay_secs: f64) -> Result<(), Error> {
    sqlx::query!(
        "INSERT INTO picture_deletions (key, due_at) VALUES ($1, now() + make_interval(secs => $2))
         ON CONFLICT (key) DO UPDATE SET due_at = EXCLUDED.due_at, attempts = 0",
        key,
        delay_secs,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The picture is wanted after all (its upload committed).
pub async fn cancel_deletion(conn: &mut PgConnection, key: &str) -> Result<(), Error> {
    sqlx::query!("DELETE FROM picture_deletions WHERE key = $1", key).execute(conn).await?;
    Ok(())
}

/// Up to `limit` deletions that are due, locked for this transaction (other
/// replicas' sweepers skip them).
pub async fn due(conn: &mut PgConnection, limit: i64) -> Result<Vec<String>, Error> {
    Ok(sqlx::query_scalar!(
        "SELECT key FROM picture_deletions WHERE due_at <= now() ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    .fetch_all(conn)
    .await?)
}

/// Done: the picture is gone from the store.
pub async fn forget(conn: &mut PgConnection, key: &str) -> Result<(), Error> {
    cancel_deletion(conn, key).await
}

/// The store refused: try again later, longer after each attempt (at most an hour).
pub async fn retry_later(conn: &mut PgConnection, key: &str) -> Result<(), Error> {
    sqlx::query!(
        "UPDATE picture_deletions
            SET attempts = attempts + 1,
                due_at = now() + make_interval(secs => LEAST(3600, 5 * power(2, LEAST(attempts, 10))))
          WHERE key = $1",
        key,
    )
    .execute(conn)
    .await?;
    Ok(())
}
