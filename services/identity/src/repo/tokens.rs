use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::Error;

pub async fn insert_family(conn: &mut PgConnection, family_id: Uuid, user_id: i64) -> Result<(), Error> {
    sqlx::query!("INSERT INTO refresh_families (id, user_id) VALUES ($1, $2)", family_id, user_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn insert_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
    family_id: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query!(
        "INSERT INTO refresh_tokens (token_hash, family_id, expires_at) VALUES ($1, $2, $3)",
        token_hash,
        family_id,
        expires_at,
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug)]
pub struct PresentedToken {
    pub family_id: Uuid,
    pub user_id: i64,
    pub expires_at: DateTime<Utc>,
    pub is_used: bool,
    pub is_family_revoked: bool,
}

/// The token and its family, both locked until the transaction ends, so two
/// refreshes of one family take turns.
pub async fn lock_presented(conn: &mut PgConnection, token_hash: &[u8]) -> Result<Option<PresentedToken>, Error> {
    Ok(sqlx::query_as!(
        PresentedToken,
        r#"SELECT t.family_id, f.user_id, t.expires_at, t.used_at IS NOT NULL AS "is_used!",
                f.revoked_at IS NOT NULL AS "is_family_revoked!"
           FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
          WHERE t.token_hash = $1
          FOR UPDATE OF t, f"#,
        token_hash,
    )
    .fetch_optional(conn)
    .await?)
}

pub async fn mark_used(conn: &mut PgConnection, token_hash: &[u8]) -> Result<(), Error> {
    sqlx::query!("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1", token_hash).execute(conn).await?;
    Ok(())
}

pub async fn revoke_family(conn: &mut PgConnection, family_id: Uuid) -> Result<(), Error> {
    sqlx::query!("UPDATE refresh_families SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", family_id)
        .execute(conn)
        .await?;
    Ok(())
}
