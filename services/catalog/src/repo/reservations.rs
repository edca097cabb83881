use sqlx::PgConnection;

use crate::domain::ReservedLine;
use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Reserved,
    Released,
}

/// Claims `order_id` for a new reservation. `false`: the order already has a
/// row (a replay, or released); the caller reads it with `status`.
pub async fn claim(conn: &mut PgConnection, order_id: i64) -> Result<bool, Error> {
    let claimed: Option<i64> = sqlx::query_scalar(
        "INSERT INTO reservations (order_id, status) VALUES ($1, 'reserved') ON CONFLICT DO NOTHING RETURNING order_id",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    Ok(claimed.is_some())
}

pub async fn status(conn: &mut PgConnection, order_id: i64) -> Result<Option<Status>, Error> {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM reservations WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(conn)
        .await?;
    Ok(status.map(|status| if status == "released" { Status::Released } else { Status::Reserved }))
}

pub async fn insert_lines(conn: &mut PgConnection, order_id: i64, lines: &[ReservedLine]) -> Result<(), Error> {
    let column = |f: fn(&ReservedLine) -> String| lines.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO reservation_lines (order_id, product_id, quantity, title, unit_price, category_name, category_slug)
         SELECT $1, * FROM unnest($2::bigint[], $3::int[], $4::text[], $5::numeric[], $6::text[], $7::text[])",
    )
    .bind(order_id)
    .bind(lines.iter().map(|line| line.product_id).collect::<Vec<_>>())
    .bind(lines.iter().map(|line| line.quantity).collect::<Vec<_>>())
    .bind(column(|line| line.title.clone()))
    .bind(lines.iter().map(|line| line.unit_price.amount()).collect::<Vec<_>>())
    .bind(column(|line| line.category_name.clone()))
    .bind(column(|line| line.category_slug.clone()))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn lines(conn: &mut PgConnection, order_id: i64) -> Result<Vec<ReservedLine>, Error> {
    Ok(sqlx::query_as(
        "SELECT product_id, quantity, title, unit_price, category_name, category_slug
           FROM reservation_lines WHERE order_id = $1 ORDER BY product_id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await?)
}

/// Marks the order released. `false` if it already was. An order never seen is
/// recorded as released, so a reservation that arrives late is refused.
pub async fn release(conn: &mut PgConnection, order_id: i64) -> Result<bool, Error> {
    let released: Option<i64> = sqlx::query_scalar(
        "INSERT INTO reservations (order_id, status, released_at) VALUES ($1, 'released', now())
         ON CONFLICT (order_id) DO UPDATE SET status = 'released', released_at = now()
          WHERE reservations.status = 'reserved'
         RETURNING order_id",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    Ok(released.is_some())
}
