//! Reporting's SQL: checkpoints, applying events to the read model, and the
//! report's queries. Apply functions run inside the consumer's transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgConnection;

use crate::error::Error;
use crate::model::{CatalogChange, OrderChange, ProductInfo, SalesRow, SoldLine};

/// Both consumers write the same rows (a product's sales, the report's
/// counts): each batch first takes this lock, so their transactions take
/// turns instead of deadlocking. "rpt-wrt" in ASCII.
const WRITER_LOCK: i64 = 0x0072_7074_2d77_7274;

/// Takes the session-level advisory lock `key` if nobody holds it: `true`
/// when this connection now holds it (until it closes).
pub async fn try_advisory_lock(conn: &mut PgConnection, key: i64) -> Result<bool, Error> {
    Ok(sqlx::query_scalar!(r#"SELECT pg_try_advisory_lock($1) AS "locked!""#, key).fetch_one(conn).await?)
}

/// Waits for the read model's write turn; held until the transaction ends.
pub async fn take_write_turn(conn: &mut PgConnection) -> Result<(), Error> {
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", WRITER_LOCK).fetch_one(conn).await?;
    Ok(())
}

/// The last sequence of `stream` applied.
pub async fn checkpoint(conn: &mut PgConnection, stream: &str) -> Result<i64, Error> {
    Ok(sqlx::query_scalar!("SELECT last_sequence FROM checkpoints WHERE stream = $1", stream).fetch_one(conn).await?)
}

/// Moves `stream`'s checkpoint from `from` to `to`. `false` when it was not at
/// `from`: someone else applied those events, and this transaction must not
/// commit (the advisory lock makes that a should-never-happen).
pub async fn advance(
    conn: &mut PgConnection,
    stream: &str,
    from: i64,
    to: i64,
    occurred_at: Option<DateTime<Utc>>,
) -> Result<bool, Error> {
    let moved = sqlx::query!(
        "UPDATE checkpoints SET last_sequence = $3, last_occurred_at = COALESCE($4, last_occurred_at)
          WHERE stream = $1 AND last_sequence = $2",
        stream,
        from,
        to,
        occurred_at,
    )
    .execute(conn)
    .await?;
    Ok(moved.rows_affected() == 1)
}

/// When the last applied event of either stream committed at its source.
pub async fn as_of(conn: &mut PgConnection) -> Result<Option<DateTime<Utc>>, Error> {
    Ok(sqlx::query_scalar!("SELECT max(last_occurred_at) FROM checkpoints").fetch_one(conn).await?)
}

/// Applies catalog changes in order. Runs of product upserts (a seeded
/// catalog sends a million in a row) go in one statement each.
pub async fn apply_catalog_changes(conn: &mut PgConnection, changes: &[CatalogChange]) -> Result<(), Error> {
    let mut run: Vec<&ProductInfo> = Vec::new();
    for change in changes {
        match change {
            CatalogChange::ProductUpserted(product) => run.push(product),
            _ => {
                upsert_products(conn, &mut run).await?;
                apply_catalog_change(conn, change).await?;
            }
        }
    }
    upsert_products(conn, &mut run).await
}

/// Upserts a run of products (emptying it). A product changed twice in the
/// run keeps its last state: one statement may not touch a row twice.
async fn upsert_products(conn: &mut PgConnection, run: &mut Vec<&ProductInfo>) -> Result<(), Error> {
    if run.is_empty() {
        return Ok(());
    }
    let mut latest: HashMap<i64, &ProductInfo> = HashMap::with_capacity(run.len());
    for product in run.drain(..) {
        latest.insert(product.product_id, product);
    }
    let products: Vec<&ProductInfo> = latest.into_values().collect();
    let text = |f: fn(&ProductInfo) -> &str| products.iter().map(|p| f(p).to_owned()).collect::<Vec<_>>();
    sqlx::query!(
        "INSERT INTO product_sales (product_id, title, category_id, category_name, category_slug)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[])
         ON CONFLICT (product_id) DO UPDATE SET title = EXCLUDED.title, category_id = EXCLUDED.category_id,
                category_name = EXCLUDED.category_name, category_slug = EXCLUDED.category_slug,
                archived = false",
        &products.iter().map(|p| p.product_id).collect::<Vec<_>>(),
        &text(|p| &p.title),
        &products.iter().map(|p| p.category_id).collect::<Vec<_>>(),
        &text(|p| &p.category_name),
        &text(|p| &p.category_slug),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// One catalog change other than a product upsert.
async fn apply_catalog_change(conn: &mut PgConnection, change: &CatalogChange) -> Result<(), Error> {
    match change {
        CatalogChange::ProductArchived { product_id } => {
            sqlx::query!("UPDATE product_sales SET archived = true WHERE product_id = $1", product_id)
                .execute(conn)
                .await?;
        }
        CatalogChange::CategoryUpserted { category_id, name, slug } => {
            sqlx::query!(
                "INSERT INTO categories (category_id, name, slug) VALUES ($1, $2, $3)
                 ON CONFLICT (category_id) DO UPDATE SET name = EXCLUDED.name, slug = EXCLUDED.slug",
                category_id,
                name,
                slug,
            )
            .execute(&mut *conn)
            .await?;
            // Products take their category's new name and slug.
            sqlx::query!(
                "UPDATE product_sales SET category_name = $2, category_slug = $3
                  WHERE category_id = $1 AND (category_name, category_slug) IS DISTINCT FROM ($2, $3)",
                category_id,
                name,
                slug,
            )
            .execute(conn)
            .await?;
        }
        CatalogChange::CategoryDeleted { category_id } => {
            sqlx::query!("DELETE FROM categories WHERE category_id = $1", category_id).execute(conn).await?;
        }
        // Upserts are applied in runs by `apply_catalog_changes`.
        CatalogChange::ProductUpserted(_) | CatalogChange::Ignored => {}
    }
    Ok(())
}

/// A product's sales moved by one batch of orders.
struct SalesDelta<'a> {
    line: &'a SoldLine,
    units: i64,
    orders: i64,
    revenue: Decimal,
}

/// Applies order changes in two statements whatever their number: each
/// product's placed and cancelled units, orders and revenue summed first. A product not heard of
/// from catalog yet enters with its snapshot's title and category; a
/// cancellation always finds its row, since its placement came first in the
/// same stream.
pub async fn apply_order_changes(conn: &mut PgConnection, changes: &[OrderChange]) -> Result<(), Error> {
    let mut deltas: HashMap<i64, SalesDelta<'_>> = HashMap::new();
    for change in changes {
        let (lines, sign) = match change {
            OrderChange::Placed(lines) => (lines, 1),
            OrderChange::Cancelled(lines) => (lines, -1),
            OrderChange::Ignored => continue,
        };
        for line in lines {
            let delta = deltas.entry(line.product_id).or_insert(SalesDelta {
                line,
                units: 0,
                orders: 0,
                revenue: Decimal::ZERO,
            });
            delta.units += sign * line.units;
            delta.orders += sign;
            delta.revenue += Decimal::from(sign) * line.revenue.amount();
        }
    }
    if deltas.is_empty() {
        return Ok(());
    }
    let deltas: Vec<SalesDelta<'_>> = deltas.into_values().collect();
    let text = |f: fn(&SoldLine) -> &str| deltas.iter().map(|delta| f(delta.line).to_owned()).collect::<Vec<_>>();
    let ids: Vec<i64> = deltas.iter().map(|delta| delta.line.product_id).collect();
    // Rows first (an upsert would check the counts of its proposed row, and
    // a batch may take back more than it adds), then the sums.
    sqlx::query!(
        "INSERT INTO product_sales (product_id, title, category_name, category_slug)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])
         ON CONFLICT (product_id) DO NOTHING",
        &ids,
        &text(|line| &line.title),
        &text(|line| &line.category_name),
        &text(|line| &line.category_slug),
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "UPDATE product_sales p SET units_sold = p.units_sold + d.units, order_count = p.order_count + d.orders,
                revenue = p.revenue + d.revenue
           FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::numeric[]) AS d(product_id, units, orders, revenue)
          WHERE p.product_id = d.product_id",
        &ids,
        &deltas.iter().map(|delta| delta.units).collect::<Vec<_>>(),
        &deltas.iter().map(|delta| delta.orders).collect::<Vec<_>>(),
        &deltas.iter().map(|delta| delta.revenue).collect::<Vec<_>>(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether a category with this slug is known (from catalog, or from an
/// order snapshot of a product catalog has not told us about yet).
pub async fn category_exists(conn: &mut PgConnection, slug: &str) -> Result<bool, Error> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM categories WHERE slug = $1)
             OR EXISTS (SELECT 1 FROM product_sales WHERE category_slug = $1 AND listed) AS "exists!""#,
        slug,
    )
    .fetch_one(conn)
    .await?)
}

/// Rows the report would list under these filters (`slug` "" = all).
pub async fn count(conn: &mut PgConnection, slug: &str, sold_only: bool) -> Result<i64, Error> {
    let count = if sold_only {
        sqlx::query_scalar!("SELECT sold FROM report_counts WHERE slug = $1", slug).fetch_optional(conn).await?
    } else {
        sqlx::query_scalar!("SELECT listed FROM report_counts WHERE slug = $1", slug).fetch_optional(conn).await?
    };
    Ok(count.unwrap_or(0))
}

/// One page of the report.
pub async fn page(
    conn: &mut PgConnection,
    slug: Option<&str>,
    sold_only: bool,
    most_sold_first: bool,
    limit: i64,
    offset: i64,
) -> Result<Vec<SalesRow>, Error> {
    // One statement per filter and order, each with its own plan.
    macro_rules! page {
        ($rest:literal $(, $argument:expr)*) => {
            sqlx::query_as!(
                SalesRow,
                "SELECT product_id, title, category_name, category_slug, units_sold, order_count, revenue
           FROM product_sales WHERE listed"
                    + $rest
                $(, $argument)*
            )
            .fetch_all(conn)
            .await?
        };
    }
    Ok(match (slug, sold_only, most_sold_first) {
        (None, false, false) => page!(" ORDER BY units_sold, title, product_id LIMIT $1 OFFSET $2", limit, offset),
        (None, false, true) => page!(" ORDER BY units_sold DESC, title, product_id LIMIT $1 OFFSET $2", limit, offset),
        (None, true, false) => {
            page!(" AND units_sold > 0 ORDER BY units_sold, title, product_id LIMIT $1 OFFSET $2", limit, offset)
        }
        (None, true, true) => {
            page!(" AND units_sold > 0 ORDER BY units_sold DESC, title, product_id LIMIT $1 OFFSET $2", limit, offset)
        }
        (Some(slug), false, false) => page!(
            " AND category_slug = $1 ORDER BY units_sold, title, product_id LIMIT $2 OFFSET $3",
            slug,
            limit,
            offset
        ),
        (Some(slug), false, true) => page!(
            " AND category_slug = $1 ORDER BY units_sold DESC, title, product_id LIMIT $2 OFFSET $3",
            slug,
            limit,
            offset
        ),
        (Some(slug), true, false) => page!(
            " AND category_slug = $1 AND units_sold > 0 ORDER BY units_sold, title, product_id LIMIT $2 OFFSET $3",
            slug,
            limit,
            offset
        ),
        (Some(slug), true, true) => page!(
            " AND category_slug = $1 AND units_sold > 0 ORDER BY units_sold DESC, title, product_id LIMIT $2 OFFSET $3",
            slug,
            limit,
            offset
        ),
    })
}
