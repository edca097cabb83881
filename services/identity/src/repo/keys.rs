use sqlx::PgConnection;

use crate::error::Error;

/// (kid, PKCS#8 DER), newest first.
pub async fn newest(conn: &mut PgConnection) -> Result<Option<(String, Vec<u8>)>, Error> {
    let newest = sqlx::query!("SELECT kid, private_key_der FROM signing_keys ORDER BY created_at DESC, kid LIMIT 1")
        .fetch_optional(conn)
        .await?;
    Ok(newest.map(|key| (key.kid, key.private_key_der)))
}

pub async fn insert(
    conn: &mut PgConnection,
    kid: &str,
    private_key_der: &[u8],
    public_key_x: &str,
) -> Result<(), Error> {
    sqlx::query!(
        "INSERT INTO signing_keys (kid, private_key_der, public_key_x) VALUES ($1, $2, $3) ON CONFLICT (kid) DO NOTHING",
        kid,
        private_key_der,
        public_key_x,
    )
    .execute(conn)
        .await?;
    Ok(())
}

/// (kid, public x) of every stored key, newest first.
pub async fn public_keys(conn: &mut PgConnection) -> Result<Vec<(String, String)>, Error> {
    let keys = sqlx::query!("SELECT kid, public_key_x FROM signing_keys ORDER BY created_at DESC, kid")
        .fetch_all(conn)
        .await?;
    Ok(keys.into_iter().map(|key| (key.kid, key.public_key_x)).collect())
}
