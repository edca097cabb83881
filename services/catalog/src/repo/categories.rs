use shop_platform::storage::db::{OnConstraint as _, constraint};
use sqlx::PgConnection;

use crate::error::Error;
use crate::model::Category;

/// Both unique keys of a category are the caller's to fix.
fn unique_violation(error: sqlx::Error) -> Error {
    match constraint(&error) {
        Some("categories_slug_key") => Error::AlreadyExists("category slug"),
        Some("categories_name_key") => Error::AlreadyExists("category name"),
        _ => error.into(),
    }
}

pub async fn insert(conn: &mut PgConnection, name: &str, slug: &str) -> Result<Category, Error> {
    let row = sqlx::query_as!(
        Category,
        "INSERT INTO categories (name, slug) VALUES ($1, $2) RETURNING id, name, slug",
        name,
        slug
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(unique_violation)?;
    Ok(row)
}

pub async fn update(conn: &mut PgConnection, id: i64, name: &str, slug: &str) -> Result<Category, Error> {
    sqlx::query_as!(
        Category,
        "UPDATE categories SET name = $2, slug = $3 WHERE id = $1 RETURNING id, name, slug",
        id,
        name,
        slug,
    )
    .fetch_one(conn)
    .await
    .map_err(unique_violation)
}

pub async fn find(conn: &mut PgConnection, id: i64) -> Result<Option<Category>, Error> {
    Ok(sqlx::query_as!(Category, "SELECT id, name, slug FROM categories WHERE id = $1", id)
        .fetch_optional(conn)
        .await?)
}

/// The category, locked against deletion until the transaction ends (a
/// product being added to it needs it to stay).
pub async fn find_for_share(conn: &mut PgConnection, id: i64) -> Result<Option<Category>, Error> {
    Ok(sqlx::query_as!(Category, "SELECT id, name, slug FROM categories WHERE id = $1 FOR KEY SHARE", id)
        .fetch_optional(conn)
        .await?)
}

pub async fn find_for_update(conn: &mut PgConnection, id: i64) -> Result<Option<Category>, Error> {
    Ok(sqlx::query_as!(Category, "SELECT id, name, slug FROM categories WHERE id = $1 FOR UPDATE", id)
        .fetch_optional(conn)
        .await?)
}

pub async fn find_by_slug(conn: &mut PgConnection, slug: &str) -> Result<Option<Category>, Error> {
    Ok(sqlx::query_as!(Category, "SELECT id, name, slug FROM categories WHERE slug = $1", slug)
        .fetch_optional(conn)
        .await?)
}

pub async fn list(conn: &mut PgConnection) -> Result<Vec<Category>, Error> {
    Ok(sqlx::query_as!(Category, "SELECT id, name, slug FROM categories ORDER BY lower(name), id")
        .fetch_all(conn)
        .await?)
}

/// Every category by name (ties by id) with its live-product count.
pub async fn list_with_counts(conn: &mut PgConnection) -> Result<Vec<(Category, i64)>, Error> {
    let rows = sqlx::query!(
        r#"SELECT c.id, c.name, c.slug, coalesce(n.live_count, 0)::bigint AS "live_count!"
             FROM categories c LEFT JOIN category_product_counts n ON n.category_id = c.id
            ORDER BY lower(c.name), c.id"#
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|row| (Category { id: row.id, name: row.name, slug: row.slug }, row.live_count)).collect())
}

/// Takes the category away from its archived products (they keep no category).
pub async fn release_archived_products(conn: &mut PgConnection, id: i64) -> Result<(), Error> {
    sqlx::query!("UPDATE products SET category_id = NULL WHERE category_id = $1 AND archived_at IS NOT NULL", id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn delete(conn: &mut PgConnection, id: i64) -> Result<(), Error> {
    sqlx::query!("DELETE FROM categories WHERE id = $1", id)
        .execute(conn)
        .await
        .on_constraint("products_category_fkey", || Error::FailedPrecondition("the category holds products".into()))?;
    Ok(())
}

pub async fn start_count(conn: &mut PgConnection, id: i64) -> Result<(), Error> {
    sqlx::query!(
        "INSERT INTO category_product_counts (category_id, live_count) VALUES ($1, 0) ON CONFLICT DO NOTHING",
        id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds `delta` to the category's live-product count (its row exists from
/// the category's creation on).
pub async fn add_to_count(conn: &mut PgConnection, id: i64, delta: i64) -> Result<(), Error> {
    sqlx::query!("UPDATE category_product_counts SET live_count = live_count + $2 WHERE category_id = $1", id, delta)
        .execute(conn)
        .await?;
    Ok(())
}

/// Live products in one category, or in all.
pub async fn live_count(conn: &mut PgConnection, id: Option<i64>) -> Result<i64, Error> {
    Ok(sqlx::query_scalar!(
        r#"SELECT coalesce(sum(live_count), 0)::bigint AS "live_count!"
             FROM category_product_counts WHERE $1::bigint IS NULL OR category_id = $1"#,
        id,
    )
    .fetch_one(conn)
    .await?)
}
