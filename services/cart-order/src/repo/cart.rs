//! The cart schema's SQL: carts, wishlists, and which orders' lines left their cart.

use shop_platform::kernel::order_lines::OrderLine;
use sqlx::PgConnection;

use crate::error::Error;
use crate::model::CartLine;
use crate::model::{Change, Limit, LineLimits, Refusal};

/// Locks the user's cart row (creating it), so one user's cart and wishlist
/// changes apply one after another.
pub async fn lock(conn: &mut PgConnection, user_id: i64) -> Result<(), Error> {
    sqlx::query!(
        "INSERT INTO carts (user_id) VALUES ($1) ON CONFLICT (user_id) DO UPDATE SET updated_at = now()",
        user_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The cart's lines, oldest added first.
pub async fn lines(conn: &mut PgConnection, user_id: i64) -> Result<Vec<CartLine>, Error> {
    Ok(sqlx::query_as!(
        CartLine,
        "SELECT product_id, quantity, title, unit_price FROM cart_items WHERE user_id = $1 ORDER BY position",
        user_id,
    )
    .fetch_all(conn)
    .await?)
}

/// Adds to or sets a line (`line`'s product, title and price; the quantity
/// comes from `change`) within `limits`, in one round trip under the user's
/// cart lock; the cart's lines after it, oldest first.
pub async fn change_line(
    conn: &mut PgConnection,
    user_id: i64,
    line: &CartLine,
    change: Change,
    limits: LineLimits,
) -> Result<Result<Vec<CartLine>, Refusal>, Error> {
    /// A row of `change_cart_line`: the refusal, or one of the cart's lines.
    struct Row {
        refusal: Option<String>,
        wanted: i64,
        product_id: Option<i64>,
        quantity: Option<i32>,
        title: Option<String>,
        unit_price: Option<rust_decimal::Decimal>,
    }
    let (add, quantity) = match change {
        Change::Add(quantity) => (true, quantity),
        Change::Set(quantity) => (false, quantity),
    };
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT refusal, wanted AS "wanted!", product_id, quantity, title, unit_price
             FROM change_cart_line($1, $2, $3, $4, $5, $6, $7, $8, $9)"#,
        user_id,
        line.product_id,
        add,
        quantity,
        line.title,
        line.unit_price.amount(),
        limits.max_quantity,
        limits.in_stock,
        i32::try_from(limits.max_lines).unwrap_or(i32::MAX),
    )
    .fetch_all(conn)
    .await?;
    if let Some(refused) = rows.iter().find(|row| row.refusal.is_some()) {
        let limit = match refused.refusal.as_deref() {
            Some("max_quantity") => Limit::MaxQuantity,
            Some("in_stock") => Limit::InStock,
            _ => Limit::MaxLines,
        };
        return Ok(Err(Refusal { limit, wanted: refused.wanted }));
    }
    Ok(Ok(rows
        .into_iter()
        .filter_map(|row| {
            Some(CartLine {
                product_id: row.product_id?,
                quantity: row.quantity?,
                title: row.title?,
                unit_price: row.unit_price?.into(),
            })
        })
        .collect()))
}

pub async fn remove(conn: &mut PgConnection, user_id: i64, product_id: i64) -> Result<(), Error> {
    sqlx::query!("DELETE FROM cart_items WHERE user_id = $1 AND product_id = $2", user_id, product_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Takes an order's lines out of the cart, once per order, in one statement:
/// `false` when this order's lines were already taken out. Units added since
/// checkout stay.
pub async fn take_out_order(
    conn: &mut PgConnection,
    user_id: i64,
    order_id: i64,
    lines: &[OrderLine],
) -> Result<bool, Error> {
    let product_ids: Vec<i64> = lines.iter().map(|line| line.product_id).collect();
    let quantities: Vec<i32> = lines.iter().map(|line| line.quantity).collect();
    let first: Option<i64> = sqlx::query_scalar!(
        "WITH first AS (
             INSERT INTO checkouts (order_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING order_id),
         ordered AS (SELECT * FROM unnest($3::bigint[], $4::int[]) AS o(product_id, quantity)
                      WHERE EXISTS (SELECT 1 FROM first)),
         emptied AS (
             DELETE FROM cart_items c USING ordered o
              WHERE c.user_id = $2 AND c.product_id = o.product_id AND c.quantity <= o.quantity),
         reduced AS (
             UPDATE cart_items c SET quantity = c.quantity - o.quantity FROM ordered o
              WHERE c.user_id = $2 AND c.product_id = o.product_id AND c.quantity > o.quantity)
         SELECT order_id FROM first",
        order_id,
        user_id,
        &product_ids,
        &quantities,
    )
    .fetch_optional(conn)
    .await?;
    Ok(first.is_some())
}

/// The wishlist's product ids, newest added first.
pub async fn wishlist(conn: &mut PgConnection, user_id: i64) -> Result<Vec<i64>, Error> {
    Ok(sqlx::query_scalar!("SELECT product_id FROM wishlist_items WHERE user_id = $1 ORDER BY position DESC", user_id)
        .fetch_all(conn)
        .await?)
}

/// Adds a product to the wishlist; one already there keeps its place.
pub async fn wish(conn: &mut PgConnection, user_id: i64, product_id: i64) -> Result<(), Error> {
    sqlx::query!(
        "INSERT INTO wishlist_items (user_id, product_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        user_id,
        product_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn unwish(conn: &mut PgConnection, user_id: i64, product_id: i64) -> Result<(), Error> {
    sqlx::query!("DELETE FROM wishlist_items WHERE user_id = $1 AND product_id = $2", user_id, product_id)
        .execute(conn)
        .await?;
    Ok(())
}
