use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use shop_platform::outbox::Outbox;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use crate::domain::Status;

pub const OUTBOX: Outbox = Outbox::new("orders_outbox");

const COLUMNS: &str = "id, user_id, status, total_price, total_quantity, created_at, updated_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderRow {
    pub id: i64,
    pub user_id: i64,
    pub status: String,
    pub total_price: Decimal,
    pub total_quantity: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl OrderRow {
    pub fn status(&self) -> Status {
        // The CHECK constraint admits only the six names.
        Status::from_db(&self.status).unwrap_or(Status::Failed)
    }
}

/// A line as asked for; the snapshot columns are set once the order is PLACED.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LineRow {
    pub order_id: i64,
    pub product_id: i64,
    pub quantity: i32,
    pub title: Option<String>,
    pub unit_price: Option<Decimal>,
    pub category_name: Option<String>,
    pub category_slug: Option<String>,
}

/// A line's snapshot, as catalog reserved it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub product_id: i64,
    pub title: String,
    pub unit_price: Decimal,
    pub category_name: String,
    pub category_slug: String,
}

/// Inserts a PENDING order with its lines, in one statement; `None` when the
/// user already has a live (not FAILED) order with this key.
pub async fn insert_pending(
    conn: &mut PgConnection,
    user_id: i64,
    idempotency_key: Option<&str>,
    lines: &[(i64, i32)],
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH inserted AS (
             INSERT INTO orders (user_id, idempotency_key, status) VALUES ($1, $2, 'PENDING')
             ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL AND status <> 'FAILED'
             DO NOTHING RETURNING id),
         lines AS (
             INSERT INTO order_lines (order_id, product_id, quantity)
             SELECT inserted.id, line.product_id, line.quantity
               FROM inserted, unnest($3::bigint[], $4::int[]) AS line(product_id, quantity))
         SELECT id FROM inserted",
    )
    .bind(user_id)
    .bind(idempotency_key)
    .bind(lines.iter().map(|(product_id, _)| *product_id).collect::<Vec<_>>())
    .bind(lines.iter().map(|(_, quantity)| *quantity).collect::<Vec<_>>())
    .fetch_optional(conn)
    .await
}

/// The user's live (not FAILED) order placed with this key.
pub async fn find_by_key(
    conn: &mut PgConnection,
    user_id: i64,
    idempotency_key: &str,
) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM orders WHERE user_id = $1 AND idempotency_key = $2 AND status <> 'FAILED'"
    ))
    .bind(user_id)
    .bind(idempotency_key)
    .fetch_optional(conn)
    .await
}

pub async fn get(conn: &mut PgConnection, id: i64) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM orders WHERE id = $1")).bind(id).fetch_optional(conn).await
}

/// The lines of these orders, by order then product.
pub async fn lines(conn: &mut PgConnection, order_ids: &[i64]) -> Result<Vec<LineRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT order_id, product_id, quantity, title, unit_price, category_name, category_slug
           FROM order_lines WHERE order_id = ANY($1) ORDER BY order_id, product_id",
    )
    .bind(order_ids)
    .fetch_all(conn)
    .await
}

/// PENDING → PLACED with its totals and line snapshot, in one statement;
/// `None` when the order is no longer PENDING.
pub async fn place(
    conn: &mut PgConnection,
    id: i64,
    snapshot: &[Snapshot],
    total_price: Decimal,
    total_quantity: i32,
) -> Result<Option<OrderRow>, sqlx::Error> {
    let column = |f: fn(&Snapshot) -> String| snapshot.iter().map(f).collect::<Vec<_>>();
    sqlx::query_as(&format!(
        "WITH placed AS (
             UPDATE orders SET status = 'PLACED', total_price = $2, total_quantity = $3, updated_at = now()
              WHERE id = $1 AND status = 'PENDING' RETURNING {COLUMNS}),
         lines AS (
             UPDATE order_lines l SET title = s.title, unit_price = s.unit_price,
                    category_name = s.category_name, category_slug = s.category_slug
               FROM placed, unnest($4::bigint[], $5::text[], $6::numeric[], $7::text[], $8::text[])
                    AS s(product_id, title, unit_price, category_name, category_slug)
              WHERE l.order_id = placed.id AND l.product_id = s.product_id)
         SELECT {COLUMNS} FROM placed"
    ))
    .bind(id)
    .bind(total_price)
    .bind(total_quantity)
    .bind(snapshot.iter().map(|line| line.product_id).collect::<Vec<_>>())
    .bind(column(|line| line.title.clone()))
    .bind(snapshot.iter().map(|line| line.unit_price).collect::<Vec<_>>())
    .bind(column(|line| line.category_name.clone()))
    .bind(column(|line| line.category_slug.clone()))
    .fetch_optional(conn)
    .await
}

/// `from` → `to`, only if the order is in `from` (and, given `owner`, is
/// theirs). Moving to FAILED or CANCELLED marks its stock as owed back.
pub async fn transition(
    conn: &mut PgConnection,
    id: i64,
    from: Status,
    to: Status,
    owner: Option<i64>,
) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE orders SET status = $3, updated_at = now(),
                release_needed = release_needed OR $3 IN ('FAILED', 'CANCELLED')
          WHERE id = $1 AND status = $2 AND ($4::bigint IS NULL OR user_id = $4)
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(owner)
    .fetch_optional(conn)
    .await
}

/// The order's stock is back in catalog.
pub async fn released(conn: &mut PgConnection, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET release_needed = false WHERE id = $1").bind(id).execute(conn).await?;
    Ok(())
}

/// Marks PENDING orders older than `age` FAILED (stock owed back) and
/// returns their ids.
pub async fn fail_abandoned(conn: &mut PgConnection, age: Duration, limit: i64) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
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
    .await
}

/// Orders whose stock is still owed back and that nobody touched for `age`.
pub async fn owing_stock(conn: &mut PgConnection, age: Duration, limit: i64) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM orders WHERE release_needed AND updated_at < now() - make_interval(secs => $1)
          ORDER BY updated_at LIMIT $2",
    )
    .bind(age.as_secs_f64())
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Which orders a listing shows.
#[derive(Debug, Clone, Copy)]
pub struct Filter<'a> {
    pub user_id: Option<i64>,
    pub statuses: &'a [Status],
}

fn push_filter(query: &mut QueryBuilder<'_, Postgres>, filter: Filter<'_>) {
    let statuses: Vec<&'static str> = filter.statuses.iter().map(|status| status.as_str()).collect();
    query.push(" WHERE status = ANY(").push_bind(statuses).push(")");
    if let Some(user_id) = filter.user_id {
        query.push(" AND user_id = ").push_bind(user_id);
    }
}

/// One page of orders, newest first (ties by id), and how many match.
pub async fn page(
    conn: &mut PgConnection,
    filter: Filter<'_>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<OrderRow>, i64), sqlx::Error> {
    let mut count = QueryBuilder::new("SELECT count(*) FROM orders");
    push_filter(&mut count, filter);
    let total: i64 = count.build_query_scalar().fetch_one(&mut *conn).await?;

    let mut select = QueryBuilder::new(format!("SELECT {COLUMNS} FROM orders"));
    push_filter(&mut select, filter);
    select.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
    let rows = select.build_query_as().fetch_all(conn).await?;
    Ok((rows, total))
}
