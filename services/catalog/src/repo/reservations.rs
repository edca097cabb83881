use sqlx::PgConnection;

use crate::error::Error;
use crate::model::ReservedLine;

pub async fn lines(conn: &mut PgConnection, order_id: i64) -> Result<Vec<ReservedLine>, Error> {
    Ok(sqlx::query_as!(
        ReservedLine,
        "SELECT product_id, quantity, title, unit_price, category_name, category_slug
           FROM reservation_lines WHERE order_id = $1 ORDER BY product_id",
        order_id,
    )
    .fetch_all(conn)
    .await?)
}

/// Marks the order released. `false` if it already was. An order never seen is
/// recorded as released, so a reservation that arrives late is refused.
pub async fn release(conn: &mut PgConnection, order_id: i64) -> Result<bool, Error> {
    let released: Option<i64> = sqlx::query_scalar!(
        "INSERT INTO reservations (order_id, status, released_at) VALUES ($1, 'released', now())
         ON CONFLICT (order_id) DO UPDATE SET status = 'released', released_at = now()
          WHERE reservations.status = 'reserved'
         RETURNING order_id",
        order_id,
    )
    .fetch_optional(conn)
    .await?;
    Ok(released.is_some())
}
