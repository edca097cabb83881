//! The orders schema's SQL. Rows become domain orders here: an order is
//! its row and its lines, the lines' snapshot columns set once it is placed.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use shop_platform::kernel::money::Money;
use shop_platform::kernel::order_lines::{OrderLine, OrderLines};
use shop_platform::storage::outbox::Outbox;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use crate::error::Error;
use crate::model::OrderBooks;
use crate::model::{Event, Order, OrderFilter, OrderItem, Snapshot, Status};
use crate::wire;

pub const OUTBOX: Outbox = Outbox::new("orders_outbox");

const COLUMNS: &str = "id, user_id, status, total_price, total_quantity, created_at, updated_at";

#[derive(Debug, Clone, sqlx::FromRow)]
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
#[derive(Debug, Clone, sqlx::FromRow)]
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
    let lines: Vec<LineRow> = sqlx::query_as(
        "SELECT order_id, product_id, quantity, title, unit_price, category_name, category_slug
           FROM order_lines WHERE order_id = ANY($1) ORDER BY order_id, product_id",
    )
    .bind(&ids)
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
    Ok(sqlx::query_as(
        "WITH inserted AS (
             INSERT INTO orders (user_id, idempotency_key, status) VALUES ($1, $2, 'PENDING')
             ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL AND status <> 'FAILED'
             DO NOTHING RETURNING id, created_at),
         lines AS (
             INSERT INTO order_lines (order_id, product_id, quantity)
             SELECT inserted.id, line.product_id, line.quantity
               FROM inserted, unnest($3::bigint[], $4::int[]) AS line(product_id, quantity))
         SELECT id, created_at FROM inserted",
    )
    .bind(user_id)
    .bind(idempotency_key)
    .bind(lines.product_ids())
    .bind(lines.lines().iter().map(|line| line.quantity).collect::<Vec<_>>())
    .fetch_optional(conn)
    .await?)
}

/// The user's live (not FAILED) order placed with this key.
pub async fn find_by_key(conn: &mut PgConnection, user_id: i64, idempotency_key: &str) -> Result<Option<Order>, Error> {
    let row = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM orders WHERE user_id = $1 AND idempotency_key = $2 AND status <> 'FAILED'"
    ))
    .bind(user_id)
    .bind(idempotency_key)
    .fetch_optional(&mut *conn)
    .await?;
    one_with_lines(conn, row).await
}

pub async fn get(conn: &mut PgConnection, id: i64) -> Result<Option<Order>, Error> {
    let row = sqlx::query_as(&format!("SELECT {COLUMNS} FROM orders WHERE id = $1"))
        .bind(id)
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
    let placed_id: Option<i64> = sqlx::query_scalar(
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
    )
    .bind(order.id)
    .bind(order.total_price.amount())
    .bind(order.total_quantity)
    .bind(placed.iter().map(|(item, _)| item.line.product_id).collect::<Vec<_>>())
    .bind(text(|snapshot| &snapshot.title))
    .bind(placed.iter().map(|(_, snapshot)| snapshot.unit_price.amount()).collect::<Vec<_>>())
    .bind(text(|snapshot| &snapshot.category_name))
    .bind(text(|snapshot| &snapshot.category_slug))
    .bind(order.updated_at)
    .bind(wire::encode_event(event))
    .bind(OUTBOX.channel())
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
    let row = sqlx::query_as(&format!(
        "UPDATE orders SET status = $3, updated_at = now(),
                release_needed = release_needed OR $3 IN ('FAILED', 'CANCELLED')
          WHERE id = $1 AND status = $2 AND ($4::bigint IS NULL OR user_id = $4)
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(owner)
    .fetch_optional(&mut *conn)
    .await?;
    one_with_lines(conn, row).await
}

/// PENDING → FAILED (its stock owed back); `false` when it was not PENDING.
pub async fn fail_pending(conn: &mut PgConnection, id: i64) -> Result<bool, Error> {
    let failed = sqlx::query(
        "UPDATE orders SET status = 'FAILED', release_needed = true, updated_at = now()
          WHERE id = $1 AND status = 'PENDING'",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(failed.rows_affected() == 1)
}

/// The order's stock is back in catalog.
pub async fn mark_released(conn: &mut PgConnection, id: i64) -> Result<(), Error> {
    sqlx::query("UPDATE orders SET release_needed = false WHERE id = $1").bind(id).execute(conn).await?;
    Ok(())
}

/// Marks PENDING orders older than `age` FAILED (stock owed back) and
/// returns their ids.
pub async fn fail_abandoned(conn: &mut PgConnection, age: Duration, limit: i64) -> Result<Vec<i64>, Error> {
    Ok(sqlx::query_scalar(
        "UPDATE orders SET status = 'FAILED', release_needed = true, updated_at = now()
          WHERE id IN (SELECT id FROM orders
                        WHERE status = 'PENDING' AND updated_at < now() - make_interval(secs => $1)
                        ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
            AND status = 'PENDING'
         RETURNING id",
    )
    .bind(age.as_secs_f64())
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Orders whose stock is still owed back and that nobody touched for `age`.
pub async fn owing_stock(conn: &mut PgConnection, age: Duration, limit: i64) -> Result<Vec<i64>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM orders WHERE release_needed AND updated_at < now() - make_interval(secs => $1)
          ORDER BY updated_at LIMIT $2",
    )
    .bind(age.as_secs_f64())
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// The filter's conditions, each in the form whose one (generic) plan is
/// right for every value: any status is no condition at all (newest first
/// is then a walk down `orders_newest_idx`), and one status is an equality
/// (a walk down `orders_status_newest_idx`). `status = ANY(…)` over all of
/// them would be planned as "a few statuses": a scan of every order, sorted.
fn push_filter(query: &mut QueryBuilder<'_, Postgres>, filter: OrderFilter<'_>) {
    query.push(" WHERE true");
    match filter.statuses {
        None => {}
        Some([status]) => {
            query.push(" AND status = ").push_bind(status.as_str());
        }
        Some(statuses) => {
            let statuses: Vec<&'static str> = statuses.iter().map(|status| status.as_str()).collect();
            query.push(" AND status = ANY(").push_bind(statuses).push(")");
        }
    }
    if let Some(user_id) = filter.user_id {
        query.push(" AND user_id = ").push_bind(user_id);
    }
}

/// One page of orders, newest first (ties by id), and how many match.
pub async fn page(
    conn: &mut PgConnection,
    filter: OrderFilter<'_>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Order>, i64), Error> {
    let mut count = QueryBuilder::new("SELECT count(*) FROM orders");
    push_filter(&mut count, filter);
    let total: i64 = count.build_query_scalar().fetch_one(&mut *conn).await?;

    let mut select = QueryBuilder::new(format!("SELECT {COLUMNS} FROM orders"));
    push_filter(&mut select, filter);
    select.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
    let rows = select.build_query_as().fetch_all(&mut *conn).await?;
    Ok((with_lines(conn, rows).await?, total))
}

/// Orders not settled yet (PENDING, or owing stock back), orders ever placed
/// with a key that starts with `key_prefix`, and the units in live orders.
pub async fn books(conn: &mut PgConnection, key_prefix: &str) -> Result<OrderBooks, Error> {
    let (unsettled, placed_with_key_prefix, units_in_live_orders) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM orders WHERE status = 'PENDING' OR release_needed),
                (SELECT count(*) FROM orders
                  WHERE status NOT IN ('PENDING', 'FAILED') AND starts_with(idempotency_key, $1)),
                (SELECT coalesce(sum(l.quantity), 0)::bigint FROM order_lines l JOIN orders o ON o.id = l.order_id
                  WHERE o.status IN ('PLACED', 'SHIPPED', 'DELIVERED'))",
    )
    .bind(key_prefix)
    .fetch_one(conn)
    .await?;
    Ok(OrderBooks { unsettled, placed_with_key_prefix, units_in_live_orders })
}
