//! Stock rows: one narrow row per product (units, units sold, whether it is
//! still sold), changed by reservations and releases.

use rust_decimal::Decimal;
use shop_platform::kernel::money::Money;
use shop_platform::kernel::order_lines::{OrderLine, OrderLines};
use sqlx::PgConnection;

use crate::error::Error;
use crate::model::{ReservedLine, Shortage};

/// What a reservation came to.
#[derive(Debug)]
pub enum Reservation {
    /// Taken now, or earlier by the same order (a replay): the snapshot.
    Reserved(Vec<ReservedLine>),
    /// The order was released before: nothing can be reserved for it.
    Released,
    /// Some lines cannot be had: every one of them, and nothing changed.
    Refused(Vec<Shortage>),
}

/// A row of `reserve_stock`: the outcome, then the line (or the shortage) it is about.
struct Row {
    outcome: String,
    product_id: Option<i64>,
    quantity: Option<i32>,
    title: Option<String>,
    unit_price: Option<Decimal>,
    category_name: Option<String>,
    category_slug: Option<String>,
    available: Option<i32>,
}

/// Reserves `lines` for `order_id` in one round trip (the `reserve_stock`
/// function of the catalog schema), appending `event` with the change.
pub async fn reserve(
    conn: &mut PgConnection,
    order_id: i64,
    lines: &OrderLines,
    event: Vec<u8>,
) -> Result<Reservation, Error> {
    let quantities: Vec<i32> = lines.lines().iter().map(|line| line.quantity).collect();
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT outcome AS "outcome!", product_id, quantity, title, unit_price, category_name, category_slug, available
             FROM reserve_stock($1, $2, $3, $4)"#,
        order_id,
        &lines.product_ids(),
        &quantities,
        event,
    )
    .fetch_all(conn)
    .await?;
    if rows.iter().any(|row| row.outcome == "released") {
        return Ok(Reservation::Released);
    }
    let shortages: Vec<Shortage> = rows
        .iter()
        .filter(|row| row.outcome == "short" || row.outcome == "not_sold")
        .map(|row| Shortage {
            product_id: row.product_id.unwrap_or_default(),
            wanted: row.quantity.unwrap_or_default(),
            available: row.available.unwrap_or_default(),
            title: row.title.clone(),
            is_sold: row.outcome == "short",
        })
        .collect();
    if !shortages.is_empty() {
        return Ok(Reservation::Refused(shortages));
    }
    let snapshot = rows
        .into_iter()
        .map(|row| {
            let missing = || Error::Internal(format!("reserve_stock returned an incomplete line for order {order_id}"));
            Ok(ReservedLine {
                product_id: row.product_id.ok_or_else(missing)?,
                quantity: row.quantity.ok_or_else(missing)?,
                title: row.title.ok_or_else(missing)?,
                unit_price: Money::from(row.unit_price.ok_or_else(missing)?),
                category_name: row.category_name.ok_or_else(missing)?,
                category_slug: row.category_slug.ok_or_else(missing)?,
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(Reservation::Reserved(snapshot))
}

/// Gives released units back (`stock += quantity`, `sold_count -=
/// quantity`), the rows locked in id order as reservations lock them.
pub async fn give_back(conn: &mut PgConnection, lines: &[OrderLine]) -> Result<(), Error> {
    let ids: Vec<i64> = lines.iter().map(|line| line.product_id).collect();
    let quantities: Vec<i32> = lines.iter().map(|line| line.quantity).collect();
    sqlx::query!("SELECT 1 AS locked FROM stock WHERE product_id = ANY($1) ORDER BY product_id FOR UPDATE", &ids)
        .fetch_all(&mut *conn)
        .await?;
    sqlx::query!(
        "UPDATE stock s SET stock = s.stock + m.quantity, sold_count = s.sold_count - m.quantity
           FROM unnest($1::bigint[], $2::int[]) AS m(product_id, quantity)
          WHERE s.product_id = m.product_id",
        &ids,
        &quantities,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Every product's stock and units sold, in one statement (one snapshot).
/// One product's line in the stock ledger.
#[derive(Debug, Clone, Copy)]
pub struct StockLine {
    pub product_id: i64,
    pub stock: i64,
    pub sold_count: i64,
}

pub async fn ledger(conn: &mut PgConnection) -> Result<Vec<StockLine>, Error> {
    Ok(sqlx::query_as!(StockLine, r#"SELECT product_id, stock::bigint AS "stock!", sold_count FROM stock"#)
        .fetch_all(conn)
        .await?)
}
