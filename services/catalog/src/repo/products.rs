use sqlx::PgConnection;

use crate::error::Error;
use crate::model::{Ordering, Product, ProductFields};

/// A product with its category and its stock row, as every read returns it:
/// `select_products!(" WHERE …", arguments…)` is the `query_as!` of the
/// SELECT followed by the rest of the statement. The join with categories
/// leaves no NULL `category_id` (only archived products lose theirs).
macro_rules! select_products {
    ($($rest:literal)+ $(, $argument:expr)* $(,)?) => {
        sqlx::query_as!(
            Product,
            r#"SELECT p.id, p.title, p.description, p.price, s.stock, p.image_url, p.category_id AS "category_id!",
            c.name AS category_name, c.slug AS category_slug, p.created_at, p.updated_at, s.sold_count
       FROM products p JOIN categories c ON c.id = p.category_id JOIN stock s ON s.product_id = p.id"#
                $(+ $rest)+
            $(, $argument)*
        )
    };
}

/// The id the next product will have, taken now (a product's picture is
/// stored under it before the product is written).
pub async fn next_id(conn: &mut PgConnection) -> Result<i64, Error> {
    Ok(sqlx::query_scalar!(r#"SELECT nextval(pg_get_serial_sequence('products', 'id')) AS "id!""#)
        .fetch_one(conn)
        .await?)
}

/// A new product with the id [`next_id`] gave, and its stock row, in one statement.
pub async fn insert(conn: &mut PgConnection, id: i64, fields: &ProductFields) -> Result<(), Error> {
    sqlx::query!(
        "WITH product AS (
             INSERT INTO products (id, title, description, price, category_id, image_url)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id)
         INSERT INTO stock (product_id, stock) SELECT id, $7 FROM product",
        id,
        fields.title.as_str(),
        fields.description,
        fields.price.amount(),
        fields.category_id,
        fields.image_url,
        fields.stock,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets every field an admin sets, the stock included, in one statement.
pub async fn update(conn: &mut PgConnection, id: i64, fields: &ProductFields) -> Result<(), Error> {
    sqlx::query!(
        "WITH product AS (
             UPDATE products SET title = $2, description = $3, price = $4, category_id = $5, image_url = $6,
                    updated_at = now()
              WHERE id = $1)
         UPDATE stock SET stock = $7 WHERE product_id = $1 AND stock <> $7",
        id,
        fields.title.as_str(),
        fields.description,
        fields.price.amount(),
        fields.category_id,
        fields.image_url,
        fields.stock,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A live product.
pub async fn find(conn: &mut PgConnection, id: i64) -> Result<Option<Product>, Error> {
    Ok(select_products!(" WHERE p.id = $1 AND p.archived_at IS NULL", id).fetch_optional(conn).await?)
}

/// A live product, locked until the transaction ends.
pub async fn find_for_update(conn: &mut PgConnection, id: i64) -> Result<Option<Product>, Error> {
    Ok(select_products!(" WHERE p.id = $1 AND p.archived_at IS NULL FOR UPDATE OF p, s", id)
        .fetch_optional(conn)
        .await?)
}

/// Live products among `ids`, each once, in the order ids first appear.
pub async fn find_many(conn: &mut PgConnection, ids: &[i64]) -> Result<Vec<Product>, Error> {
    let found = select_products!(" WHERE p.id = ANY($1) AND p.archived_at IS NULL", ids).fetch_all(conn).await?;
    Ok(in_order_of(ids, found))
}

/// [`find_many`], and the last outbox event committed when the rows were
/// read (in the same snapshot; `None` when no row was found).
pub async fn find_many_at_head(conn: &mut PgConnection, ids: &[i64]) -> Result<(Vec<Product>, Option<i64>), Error> {
    // `select_products!`'s SELECT, written out: this statement wraps it.
    let found = sqlx::query!(
        r#"WITH found AS (
             SELECT p.id, p.title, p.description, p.price, s.stock, p.image_url, p.category_id AS "category_id!",
                    c.name AS category_name, c.slug AS category_slug, p.created_at, p.updated_at, s.sold_count
               FROM products p JOIN categories c ON c.id = p.category_id JOIN stock s ON s.product_id = p.id
              WHERE p.id = ANY($1) AND p.archived_at IS NULL)
         SELECT found.*, head.last_sequence AS outbox_head FROM found, outbox_head head"#,
        ids,
    )
    .fetch_all(conn)
    .await?;
    let head = found.first().map(|row| row.outbox_head);
    let products = found
        .into_iter()
        .map(|row| Product {
            id: row.id,
            title: row.title,
            description: row.description,
            price: row.price.into(),
            stock: row.stock,
            image_url: row.image_url,
            category_id: row.category_id,
            category_name: row.category_name,
            category_slug: row.category_slug,
            created_at: row.created_at,
            updated_at: row.updated_at,
            sold_count: row.sold_count,
        })
        .collect();
    Ok((in_order_of(ids, products), head))
}

fn in_order_of(ids: &[i64], mut found: Vec<Product>) -> Vec<Product> {
    // Ordered here, not by the query: the index's catch-up asks for
    // thousands of ids at a time, and a position lookup per row in SQL
    // would be quadratic.
    let mut first_position = std::collections::HashMap::with_capacity(ids.len());
    for (position, id) in ids.iter().enumerate() {
        first_position.entry(*id).or_insert(position);
    }
    found.sort_by_key(|product| first_position.get(&product.id).copied());
    found
}

/// Archives a live product (its stock row too, under the lock reservations
/// take); returns its category, or `None` if there was none to archive.
pub async fn archive(conn: &mut PgConnection, id: i64) -> Result<Option<i64>, Error> {
    // A live product has a category (`products_live_have_a_category`).
    Ok(sqlx::query_scalar!(
        r#"WITH archived AS (
             UPDATE products SET archived_at = now(), updated_at = now() WHERE id = $1 AND archived_at IS NULL
             RETURNING category_id),
         unsold AS (UPDATE stock SET is_archived = true WHERE product_id = $1 AND EXISTS (SELECT 1 FROM archived))
         SELECT category_id AS "category_id!" FROM archived"#,
        id,
    )
    .fetch_optional(conn)
    .await?)
}

/// One page of live products, of one category or all, in `ordering`
/// (ties by id in the same direction). Titles sort by their bytes (code
/// points), as the search index sorts them, whatever the database's collation.
pub async fn list(
    conn: &mut PgConnection,
    category_id: Option<i64>,
    ordering: Ordering,
    limit: i64,
    offset: i64,
) -> Result<Vec<Product>, Error> {
    // One statement per ordering and filter, each with its own plan (a walk
    // down that ordering's index); every one checked by the compiler.
    macro_rules! page_by {
        ($order:literal) => {
            match category_id {
                None => select_products!(
                    " WHERE p.archived_at IS NULL ORDER BY " $order " LIMIT $1 OFFSET $2",
                    limit,
                    offset
                )
                .fetch_all(conn)
                .await?,
                Some(category) => select_products!(
                    " WHERE p.archived_at IS NULL AND p.category_id = $1 ORDER BY " $order " LIMIT $2 OFFSET $3",
                    category,
                    limit,
                    offset
                )
                .fetch_all(conn)
                .await?,
            }
        };
    }
    Ok(match ordering {
        Ordering::Price => page_by!("p.price ASC, p.id ASC"),
        Ordering::PriceDesc => page_by!("p.price DESC, p.id DESC"),
        Ordering::CreatedAt => page_by!("p.created_at ASC, p.id ASC"),
        Ordering::CreatedAtDesc => page_by!("p.created_at DESC, p.id DESC"),
        Ordering::Title => page_by!(r#"p.title COLLATE "C" ASC, p.id ASC"#),
        Ordering::TitleDesc => page_by!(r#"p.title COLLATE "C" DESC, p.id DESC"#),
        // Units sold live in `stock`, which no listing index covers: the
        // domain lists by them through the search index, never here.
        Ordering::SoldCount | Ordering::SoldCountDesc => {
            return Err(Error::Internal("products are not listed by units sold in SQL".into()));
        }
    })
}

/// Up to `limit` live products with ids above `after_id`, by id: a rebuild
/// of the search index reads the table this way, in its snapshot.
pub async fn live_after(conn: &mut PgConnection, after_id: i64, limit: i64) -> Result<Vec<Product>, Error> {
    Ok(select_products!(" WHERE p.archived_at IS NULL AND p.id > $1 ORDER BY p.id LIMIT $2", after_id, limit)
        .fetch_all(conn)
        .await?)
}

/// Turns a fresh transaction into one snapshot of the catalog for a
/// rebuild, and returns the outbox sequence that snapshot holds.
pub async fn snapshot_for_rebuild(conn: &mut PgConnection) -> Result<i64, Error> {
    // Dynamic: a utility statement, which Postgres checks only when it runs.
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *conn).await?;
    super::outbox::head(conn).await
}

/// For a bulk load (`shop seed`): takes the table for this transaction
/// (readers go on, other writers wait), lifts the per-statement limit that
/// serving calls have, and returns the highest product id.
pub async fn lock_for_bulk_load(conn: &mut PgConnection) -> Result<i64, Error> {
    // Dynamic: utility statements, which Postgres checks only when they run.
    sqlx::query("SET LOCAL statement_timeout = 0").execute(&mut *conn).await?;
    sqlx::query("LOCK TABLE products IN SHARE ROW EXCLUSIVE MODE").execute(&mut *conn).await?;
    Ok(sqlx::query_scalar!(r#"SELECT coalesce(max(id), 0) AS "max_id!" FROM products"#).fetch_one(conn).await?)
}

/// An index dropped for a bulk load, to be created again after it.
pub struct DroppedIndex {
    definition: String,
}

/// Drops every index of `products` but its key, returning their
/// definitions (read from the database, so the migration stays the one source).
pub async fn drop_secondary_indexes(conn: &mut PgConnection) -> Result<Vec<DroppedIndex>, Error> {
    // Dynamic: a utility statement, which Postgres checks only when it runs.
    sqlx::query("SET LOCAL maintenance_work_mem = '512MB'").execute(&mut *conn).await?;
    let indexes = sqlx::query!(
        r#"SELECT indexname::text AS "indexname!", indexdef AS "indexdef!" FROM pg_indexes
          WHERE schemaname = current_schema() AND tablename = 'products' AND indexname <> 'products_pkey'"#,
    )
    .fetch_all(&mut *conn)
    .await?;
    for index in &indexes {
        // Dynamic: DDL naming an index found at run time. Names come from
        // pg_indexes, quoted as identifiers.
        sqlx::query(&format!("DROP INDEX \"{}\"", index.indexname.replace('"', "\"\""))).execute(&mut *conn).await?;
    }
    Ok(indexes.into_iter().map(|index| DroppedIndex { definition: index.indexdef }).collect())
}

pub async fn create_indexes(conn: &mut PgConnection, indexes: &[DroppedIndex]) -> Result<(), Error> {
    for index in indexes {
        // Dynamic: DDL read from pg_indexes.
        sqlx::query(&index.definition).execute(&mut *conn).await?;
    }
    Ok(())
}

/// COPYs rows of `id, title, description, price, category_id, created_at`
/// into products and of `product_id, stock` into stock (COPY's text format).
pub async fn copy_in(conn: &mut PgConnection, products: String, stock: String) -> Result<(), Error> {
    for (statement, rows) in [
        ("COPY products (id, title, description, price, category_id, created_at) FROM STDIN", products),
        ("COPY stock (product_id, stock) FROM STDIN", stock),
    ] {
        // Dynamic: COPY goes through sqlx's copy API, which no macro checks.
        let mut copy = conn.copy_in_raw(statement).await?;
        copy.send(rows.into_bytes()).await?;
        copy.finish().await?;
    }
    Ok(())
}

/// Later inserts take ids after `last_id` (a bulk load assigned ids itself).
pub async fn continue_ids_after(conn: &mut PgConnection, last_id: i64) -> Result<(), Error> {
    sqlx::query!("SELECT setval(pg_get_serial_sequence('products', 'id'), $1)", last_id).fetch_one(conn).await?;
    Ok(())
}

/// Fresh statistics, so the planner picks the listing indexes at once, and a
/// visibility map. Outside any transaction.
pub async fn refresh_statistics(pool: &sqlx::PgPool) -> Result<(), Error> {
    // Dynamic: a utility statement, which Postgres checks only when it runs.
    sqlx::query("VACUUM (ANALYZE) products, stock").execute(pool).await?;
    Ok(())
}
