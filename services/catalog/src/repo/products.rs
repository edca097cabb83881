use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::like_pattern;
use crate::domain::{Ordering, ProductFields, ProductFilter};
use crate::error::Error;

/// A product with its category, as every read returns it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProductRow {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub price: Decimal,
    pub stock: i32,
    pub image_url: String,
    pub category_id: i64,
    pub category_name: String,
    pub category_slug: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sold_count: i64,
}

/// The columns of a `ProductRow`, from `products p JOIN categories c`.
macro_rules! product_columns {
    () => {
        "p.id, p.title, p.description, p.price, p.stock, p.image_url, p.category_id,
         c.name AS category_name, c.slug AS category_slug, p.created_at, p.updated_at, p.sold_count"
    };
}

const SELECT_PRODUCT: &str =
    concat!("SELECT ", product_columns!(), " FROM products p JOIN categories c ON c.id = p.category_id");

pub async fn insert(conn: &mut PgConnection, fields: &ProductFields) -> Result<i64, Error> {
    Ok(sqlx::query_scalar(
        "INSERT INTO products (title, description, price, stock, category_id, image_url)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(fields.title.as_str())
    .bind(&fields.description)
    .bind(fields.price.amount())
    .bind(fields.stock)
    .bind(fields.category_id)
    .bind(&fields.image_url)
    .fetch_one(conn)
    .await?)
}

pub async fn update(conn: &mut PgConnection, id: i64, fields: &ProductFields) -> Result<(), Error> {
    sqlx::query(
        "UPDATE products SET title = $2, description = $3, price = $4, stock = $5, category_id = $6, image_url = $7,
                updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(fields.title.as_str())
    .bind(&fields.description)
    .bind(fields.price.amount())
    .bind(fields.stock)
    .bind(fields.category_id)
    .bind(&fields.image_url)
    .execute(conn)
    .await?;
    Ok(())
}

/// A live product.
pub async fn find(conn: &mut PgConnection, id: i64) -> Result<Option<ProductRow>, Error> {
    Ok(sqlx::query_as(&format!("{SELECT_PRODUCT} WHERE p.id = $1 AND p.archived_at IS NULL"))
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

/// A live product, locked until the transaction ends.
pub async fn find_for_update(conn: &mut PgConnection, id: i64) -> Result<Option<ProductRow>, Error> {
    Ok(sqlx::query_as(&format!("{SELECT_PRODUCT} WHERE p.id = $1 AND p.archived_at IS NULL FOR UPDATE OF p"))
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

/// Live products among `ids`, in no particular order.
pub async fn find_many(conn: &mut PgConnection, ids: &[i64]) -> Result<Vec<ProductRow>, Error> {
    Ok(sqlx::query_as(&format!("{SELECT_PRODUCT} WHERE p.id = ANY($1) AND p.archived_at IS NULL"))
        .bind(ids)
        .fetch_all(conn)
        .await?)
}

/// Archives a live product; returns its category, or `None` if there was none to archive.
pub async fn archive(conn: &mut PgConnection, id: i64) -> Result<Option<i64>, Error> {
    Ok(sqlx::query_scalar(
        "UPDATE products SET archived_at = now(), updated_at = now() WHERE id = $1 AND archived_at IS NULL
         RETURNING category_id",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

fn push_filter(query: &mut QueryBuilder<'_, Postgres>, filter: &ProductFilter) {
    query.push(" WHERE p.archived_at IS NULL");
    if let Some(category_id) = filter.category_id {
        query.push(" AND p.category_id = ").push_bind(category_id);
    }
    if let Some(min) = filter.min_price {
        query.push(" AND p.price >= ").push_bind(min.amount());
    }
    if let Some(max) = filter.max_price {
        query.push(" AND p.price <= ").push_bind(max.amount());
    }
    for term in &filter.terms {
        // Same expression as products_search_idx, so the trigram index applies.
        query.push(" AND lower(p.title || ' ' || p.description) LIKE ").push_bind(like_pattern(term));
    }
}

pub async fn list(
    conn: &mut PgConnection,
    filter: &ProductFilter,
    ordering: Ordering,
    limit: i64,
    offset: i64,
) -> Result<Vec<ProductRow>, Error> {
    let mut query = QueryBuilder::new(SELECT_PRODUCT);
    push_filter(&mut query, filter);
    let (column, descending) = ordering.column();
    let direction = if descending { "DESC" } else { "ASC" };
    // Columns and directions come from the closed `Ordering` enum, never from input.
    query.push(format!(" ORDER BY p.{column} {direction}, p.id {direction} LIMIT "));
    query.push_bind(limit).push(" OFFSET ").push_bind(offset);
    Ok(query.build_query_as().fetch_all(conn).await?)
}

pub async fn count(conn: &mut PgConnection, filter: &ProductFilter) -> Result<i64, Error> {
    let mut query = QueryBuilder::new("SELECT count(*) FROM products p");
    push_filter(&mut query, filter);
    Ok(query.build_query_scalar().fetch_one(conn).await?)
}

/// Locks the live or archived products among `ids` in id order: everyone
/// locks in the same order, so two reservations wait instead of deadlocking.
pub async fn lock_for_stock(conn: &mut PgConnection, ids: &[i64]) -> Result<Vec<(ProductRow, bool)>, Error> {
    #[derive(sqlx::FromRow)]
    struct Locked {
        #[sqlx(flatten)]
        product: ProductRow,
        is_archived: bool,
    }
    let rows: Vec<Locked> = sqlx::query_as(concat!(
        "SELECT ",
        product_columns!(),
        ", p.archived_at IS NOT NULL AS is_archived FROM products p JOIN categories c ON c.id = p.category_id
          WHERE p.id = ANY($1) ORDER BY p.id FOR UPDATE OF p"
    ))
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|row| (row.product, row.is_archived)).collect())
}

/// Moves stock: `stock -= delta` and `sold_count += delta` for each (id, delta);
/// a negative delta gives units back.
pub async fn move_stock(conn: &mut PgConnection, moves: &[(i64, i32)]) -> Result<(), Error> {
    let ids: Vec<i64> = moves.iter().map(|(id, _)| *id).collect();
    let deltas: Vec<i32> = moves.iter().map(|(_, delta)| *delta).collect();
    sqlx::query(
        "UPDATE products p SET stock = p.stock - m.delta, sold_count = p.sold_count + m.delta, updated_at = now()
           FROM unnest($1::bigint[], $2::int[]) AS m(id, delta)
          WHERE p.id = m.id",
    )
    .bind(ids)
    .bind(deltas)
    .execute(conn)
    .await?;
    Ok(())
}
