//! The orders schema's SQL. Rows become domain orders here: an order is
//! its row and its lines, the lines' snapshot columns set once it is placed.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use shop_platform::kernel::money::Money;
use shop_platform::kernel::order_lines::{OrderLine, OrderLines};
use shop_platform::storage::outbox::Outbox;
use sqlx::PgConnection;

use crate::error::Error;
use crate::model::OrderBooks;
use crate::model::{Event, Order, OrderFilter, OrderItem, Snapshot, Status};
use crate::wire;

pub const OUTBOX: Outbox = Outbox::new("orders_outbox");

/// An order's row, as reads select it.
#[derive(Debug, Clone)]
struct OrderRow {
    id: i64,
    user_id: i64,
    status: String,
    total_price: Decimal,
    total_quantity: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A line as asked for; the snapshot columns are set once the order is PLACED.
#[derive(Debug, Clone)]
struct LineRow {
    order_id: i64,
    product_id: i64,
    quantity: i32,
    title: Option<String>,
    unit_price: Option<Decimal>,
    category_name: Option<String>,
    category_slug: Option<String>,
}

impl LineRow {
    fn item(self) -> OrderItem {
        let snapshot = match (self.title, self.unit_price, self.category_name, self.category_slug) {
            (Some(title), Some(unit_price), Some(category_name), Some(category_slug)) => {
                Some(Snapshot { title, unit_price: Money::from(unit_price), category_name, category_slug })
            }
            _ => None,
        };
        OrderItem { line: OrderLine { product_id: self.product_id, quantity: self.quantity }, snapshot }
    }
}

impl OrderRow {
    fn order(self, items: Vec<OrderItem>) -> Order {
        Order {
            id: self.id,
            user_id: self.user_id,
            // The CHECK constraint admits only the six names.
            status: Status::from_db(&self.status).unwrap_or(Status::Failed),
            items,
            total_price: Money::from(self.total_price),
            total_quantity: self.total_quantity,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// The orders of `rows`, in their order, each with its lines.
async fn with_lines(conn: &mut PgConnection, rows: Vec<OrderRow>) -> Result<Vec<Order>, Error> {
    let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
    let lines = sqlx::query_as!(
        LineRow,
        "SELECT order_id, product_id, quantity, title, unit_price, category_name, category_slug
           FROM order_lines WHERE order_id = ANY($1) ORDER BY order_id, product_id",
        &ids,
    )
    .fetch_all(conn)
    .await?;
    let mut by_order: HashMap<i64, Vec<OrderItem>> = HashMap::with_capacity(rows.len());
    for line in lines {
        by_order.entry(line.order_id).or_default().push(line.item());
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let items = by_order.remove(&row.id).unwrap_or_default();
            row.order(items)
        })
        .collect())
}

async fn one_with_lines(conn: &mut PgConnection, row: Option<OrderRow>) -> Result<Option<Order>, Error> {
    match row {
        Some(row) => Ok(with_lines(conn, vec![row]).await?.pop()),
        None => Ok(None),
    }
}

/// Appends an order event as the stream carries it; call it last in the
/// transaction (it serializes writers until commit).
pub async fn append_event(conn: &mut PgConnection, event: &Event) -> Result<i64, Error> {
    Ok(OUTBOX.append(conn, &wire::OrderEvent::from(event)).await?)
}

/// Inserts a PENDING order with its lines, in one statement; its id and
/// creation time, or `None` when the user already has a live (not FAILED)
/// order with this key.
pub async fn insert_pending(
    conn: &mut PgConnection,
    user_id: i64,
    idempotency_key: Option<&str>,
    lines: &OrderLines,
) -> Result<Option<(i64, DateTime<Utc>)>, Error> {
    let product_ids = lines.product_ids();
    let quantities: Vec<i32> = lines.lines().iter().map(|line| line.quantity).collect();
    let inserted = sqlx::query!(
        "WITH inserted AS (
             INSERT INTO orders (user_id, idempotency_key, status) VALUES ($1, $2, 'PENDING')
             ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL AND status <> 'FAILED'
             DO NOTHING RETURNING id, created_at),
         lines AS (
             INSERT INTO order_lines (order_id, product_id, quantity)
             SELECT inserted.id, line.product_id, line.quantity
               FROM inserted, unnest($3::bigint[], $4::int[]) AS line(product_id, quantity))
         SELECT id, created_at FROM inserted",
        user_id,
        idempotency_key,
        &product_ids,
        &quantities,
    )
    .fetch_optional(conn)
    .await?;
    Ok(inserted.map(|order| (order.id, order.created_at)))
}

/// The user's live (not FAILED) order placed with this key.
pub async fn find_by_key(conn: &mut PgConnection, user_id: i64, idempotency_key: &str) -> Result<Option<Order>, Error> {
    let row = sqlx::query_as!(
        OrderRow,
        "SELECT id, user_id, status, total_price, total_quantity, created_at, updated_at
           FROM orders WHERE user_id = $1 AND idempotency_key = $2 AND status <> 'FAILED'",
        user_id,
        idempotency_key,
    )
    .fetch_optional(&mut *conn)
    .await?;
    one_with_lines(conn, row).await
}

pub async fn get(conn: &mut PgConnection, id: i64) -> Result<Option<Order>, Error> {
    let row = sqlx::query_as!(
        OrderRow,
        "SELECT id, user_id, status, total_price, total_quantity, created_at, updated_at FROM orders WHERE id = $1",
        id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    one_with_lines(conn, row).await
}

/// PENDING → PLACED as `order` says (totals, the lines' snapshots, the time)
/// with `event` in the outbox (appended by the statement itself), in one statement and one commit; `false`
/// when the order is no longer PENDING (then nothing changed).
pub async fn place(conn: &mut PgConnection, order: &Order, event: &Event) -> Result<bool, Error> {
    let placed: Vec<(&OrderItem, &Snapshot)> =
        order.items.iter().filter_map(|item| item.snapshot.as_ref().map(|snapshot| (item, snapshot))).collect();
    let text = |f: fn(&Snapshot) -> &str| placed.iter().map(|(_, snapshot)| f(snapshot).to_owned()).collect::<Vec<_>>();
    let product_ids: Vec<i64> = placed.iter().map(|(item, _)| item.line.product_id).collect();
    let unit_prices: Vec<Decimal> = placed.iter().map(|(_, snapshot)| snapshot.unit_price.amount()).collect();
    let placed_id: Option<i64> = sqlx::query_scalar!(
        "WITH placed AS (
             UPDATE orders SET status = 'PLACED', total_price = $2, total_quantity = $3, updated_at = $9
              WHERE id = $1 AND status = 'PENDING' RETURNING id),
         lines AS (
             UPDATE order_lines l SET title = s.title, unit_price = s.unit_price,
                    category_name = s.category_name, category_slug = s.category_slug
               FROM placed, unnest($4::bigint[], $5::text[], $6::numeric[], $7::text[], $8::text[])
                    AS s(product_id, title, unit_price, category_name, category_slug)
              WHERE l.order_id = placed.id AND l.product_id = s.product_id),
         event AS (SELECT outbox_append($10, $11) FROM placed)
         SELECT id FROM placed, event",
        order.id,
        order.total_price.amount(),
        order.total_quantity,
        &product_ids,
        &text(|snapshot| &snapshot.title),
        &unit_prices,
        &text(|snapshot| &snapshot.category_name),
        &text(|snapshot| &snapshot.category_slug),
        order.updated_at,
        wire::encode_event(event),
        OUTBOX.channel(),
    )
    .fetch_optional(conn)
    .await?;
    Ok(placed_id.is_some())
}

/// `from` → `to`, only if the order is in `from` (and, given `owner`, is
/// theirs). Moving to FAILED or CANCELLED marks its stock as owed back.
pub async fn transition(
    conn: &mut PgConnection,
    id: i64,
    from: Status,
    to: Status,
    owner: Option<i64>,
) -> Result<Option<Order>, Error> {
    let row = sqlx::query_as!(
        OrderRow,
        "UPDATE orders SET status = $3, updated_at = now(),
                release_needed = release_needed OR $3 IN ('FAILED', 'CANCELLED')
          WHERE id = $1 AND status = $2 AND ($4::bigint IS NULL OR user_id = $4)
         RETURNING id, user_id, status, total_price, total_quantity, created_at, updated_at",
        id,
        from.as_str(),
        to.as_str(),
        owner,
    )
    .fetch_optional(&mut *conn)
    .await?;
    one_with_lines(conn, row).await
}

/// PENDING → FAILED (its stock owed back); `false` when it was not PENDING.
pub async fn fail_pending(conn: &mut PgConnection, id: i64) -> Result<bool, Error> {
    let failed = sqlx::query!(
        "UPDATE orders SET status = 'FAILED', release_needed = true, updated_at = now()
          WHERE id = $1 AND status = 'PENDING'",
        id,
    )
    .execute(conn)
    .await?;
    Ok(failed.rows_affected() == 1)
}

/// The order's stock is back in catalog.
pub async fn mark_released(conn: &mut PgConnection, id: i64) -> Result<(), Error> {
    sqlx::query!("UPDATE orders SET release_needed = false WHERE id = $1", id).execute(conn).await?;
    Ok(())
}

/// Marks PENDING orders older than `age` FAILED (stock owed back) and
/// returns their ids.
pub async fn fail_abandoned(conn: &mut PgConnection, age: Duration, limit: i64) -> Result<Vec<i64>, Error> {
    Ok(sqlx::query_scalar!(
        "UPDATE orders SET status = 'FAILED', release_needed = true, updated_at = now()
          WHERE id IN (SELECT id FROM orders
                        WHERE status = 'PENDING' AND updated_at < now() - make_interval(secs => $1)
                        ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
            AND status = 'PENDING'
         RETURNING id",
        age.as_secs_f64(),
        limit,
    )
    .fetch_all(conn)
    .await?)
}

/// Orders whose stock is still owed back and that nobody touched for `age`.
pub async fn owing_stock(conn: &mut PgConnection, age: Duration, limit: i64) -> Result<Vec<i64>, Error> {
    Ok(sqlx::query_scalar!(
        "SELECT id FROM orders WHERE release_needed AND updated_at < now() - make_interval(secs => $1)
          ORDER BY updated_at LIMIT $2",
        age.as_secs_f64(),
        limit,
    )
    .fetch_all(conn)
    .await?)
}

/// One page of orders, newest first (ties by id), and how many match.
pub async fn page(
    conn: &mut PgConnection,
    filter: OrderFilter<'_>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Order>, i64), Error> {
    // Each filter is its own pair of statements, in the form whose one
    // (generic) plan is right for every value: any status is no condition at
    // all (newest first is then a walk down `orders_newest_idx`), and one
    // status is an equality (a walk down `orders_status_newest_idx`).
    // `status = ANY(…)` over all of them would be planned as "a few
    // statuses": a scan of every order, sorted.
    macro_rules! page {
        ($filter:literal, $rest:literal $(, $argument:expr)*) => {{
            let total = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM orders WHERE true"# + $filter $(, $argument)*)
                .fetch_one(&mut *conn)
                .await?;
            let rows = sqlx::query_as!(
                OrderRow,
                "SELECT id, user_id, status, total_price, total_quantity, created_at, updated_at FROM orders WHERE true"
                    + $filter
                    + " ORDER BY created_at DESC, id DESC"
                    + $rest
                $(, $argument)*,
                limit,
                offset
            )
            .fetch_all(&mut *conn)
            .await?;
            (rows, total)
        }};
    }
    let names = |statuses: &[Status]| statuses.iter().map(|status| status.as_str().to_owned()).collect::<Vec<_>>();
    let (rows, total) = match (filter.statuses, filter.user_id) {
        (None, None) => page!("", " LIMIT $1 OFFSET $2"),
        (None, Some(user_id)) => page!(" AND user_id = $1", " LIMIT $2 OFFSET $3", user_id),
        (Some([status]), None) => page!(" AND status = $1", " LIMIT $2 OFFSET $3", status.as_str()),
        (Some([status]), Some(user_id)) => {
            page!(" AND status = $1 AND user_id = $2", " LIMIT $3 OFFSET $4", status.as_str(), user_id)
        }
        (Some(statuses), None) => page!(" AND status = ANY($1)", " LIMIT $2 OFFSET $3", &names(statuses)),
        (Some(statuses), Some(user_id)) => {
            page!(" AND status = ANY($1) AND user_id = $2", " LIMIT $3 OFFSET $4", &names(statuses), user_id)
        }
    };
    Ok((with_lines(conn, rows).await?, total))
}

/// Orders not settled yet (PENDING, or owing stock back), orders ever placed
/// with a key that starts with `key_prefix`, and the units in live orders.
pub async fn books(conn: &mut PgConnection, key_prefix: &str) -> Result<OrderBooks, Error> {
    Ok(sqlx::query_as!(
        OrderBooks,
        r#"SELECT (SELECT count(*) FROM orders WHERE status = 'PENDING' OR release_needed) AS "unsettled!",
                (SELECT count(*) FROM orders
                  WHERE status NOT IN ('PENDING', 'FAILED') AND starts_with(idempotency_key, $1)) AS "placed_with_key_prefix!",
                (SELECT coalesce(sum(l.quantity), 0)::bigint FROM order_lines l JOIN orders o ON o.id = l.order_id
                  WHERE o.status IN ('PLACED', 'SHIPPED', 'DELIVERED')) AS "units_in_live_orders!""#,
        key_prefix,
    )
    .fetch_one(conn)
    .await?)
}
