//! Categories and products: every change commits with its outbox event and
//! with the live-product count it affects, in one transaction.

use shop_platform::error::Invalid;
use sqlx::{PgConnection, PgPool};

use crate::domain::{Category, CategoryName, Event, Ordering, Product, ProductFields, ProductFilter, Slug};
use crate::error::Error;
use crate::repo;
use shop_platform::error::NamesFields as _;

/// A category change: the fields to set.
pub struct CategoryFields {
    pub name: CategoryName,
    pub slug: Slug,
}

#[derive(Clone)]
pub struct Catalog {
    pool: PgPool,
}

fn product_not_found(id: i64) -> Error {
    Error::NotFound(format!("product {id}"))
}

fn category_not_found(id: i64) -> Error {
    Error::NotFound(format!("category {id}"))
}

/// The category a product is put in must exist; it stays locked against
/// deletion until the transaction ends.
async fn existing_category(conn: &mut PgConnection, id: i64) -> Result<Category, Error> {
    repo::categories::find_for_share(conn, id)
        .await?
        .ok_or_else(|| Error::field("category_id")(Invalid::new(format!("category {id} does not exist"))))
}

impl Catalog {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn create_category(&self, fields: CategoryFields) -> Result<Category, Error> {
        let mut tx = self.pool.begin().await?;
        let category = repo::categories::insert(&mut tx, fields.name.as_str(), fields.slug.as_str()).await?;
        repo::categories::start_count(&mut tx, category.id).await?;
        repo::outbox::append(&mut tx, &Event::CategoryUpserted(category.clone())).await?;
        tx.commit().await?;
        Ok(category)
    }

    /// `change` gets the current fields and returns the new ones (the mask is applied there).
    pub async fn update_category(
        &self,
        id: i64,
        change: impl FnOnce(&Category) -> Result<CategoryFields, Error>,
    ) -> Result<Category, Error> {
        let mut tx = self.pool.begin().await?;
        let current = repo::categories::find_for_update(&mut tx, id).await?.ok_or_else(|| category_not_found(id))?;
        let fields = change(&current)?;
        let category = repo::categories::update(&mut tx, id, fields.name.as_str(), fields.slug.as_str()).await?;
        repo::outbox::append(&mut tx, &Event::CategoryUpserted(category.clone())).await?;
        tx.commit().await?;
        Ok(category)
    }

    pub async fn delete_category(&self, id: i64) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        let category = repo::categories::find_for_update(&mut tx, id).await?.ok_or_else(|| category_not_found(id))?;
        if repo::categories::holds_products(&mut tx, id).await? {
            return Err(Error::FailedPrecondition(format!(
                "category {id} holds products (archived ones count too); move or keep them"
            )));
        }
        repo::categories::delete(&mut tx, id).await?;
        repo::outbox::append(&mut tx, &Event::CategoryDeleted { category_id: id, slug: category.slug }).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn categories(&self) -> Result<Vec<Category>, Error> {
        repo::categories::list(&mut *self.pool.acquire().await?).await
    }

    pub async fn category(&self, id: i64) -> Result<Category, Error> {
        repo::categories::find(&mut *self.pool.acquire().await?, id).await?.ok_or_else(|| category_not_found(id))
    }

    pub async fn category_by_slug(&self, slug: &str) -> Result<Category, Error> {
        let not_found = || Error::NotFound(format!("category {slug:?}"));
        // What is not a slug names no category; no need to ask.
        let slug = Slug::parse(slug).map_err(|_| not_found())?;
        repo::categories::find_by_slug(&mut *self.pool.acquire().await?, slug.as_str()).await?.ok_or_else(not_found)
    }

    pub async fn create_product(&self, fields: ProductFields) -> Result<Product, Error> {
        let mut tx = self.pool.begin().await?;
        existing_category(&mut tx, fields.category_id).await?;
        let id = repo::products::insert(&mut tx, &fields).await?;
        repo::categories::add_to_count(&mut tx, fields.category_id, 1).await?;
        let product = repo::products::find(&mut tx, id).await?.ok_or_else(|| product_not_found(id))?;
        repo::outbox::append(&mut tx, &Event::ProductUpserted(product.clone())).await?;
        tx.commit().await?;
        Ok(product)
    }

    /// `change` gets the current product and returns its new fields.
    pub async fn update_product(
        &self,
        id: i64,
        change: impl FnOnce(&Product) -> Result<ProductFields, Error>,
    ) -> Result<Product, Error> {
        let mut tx = self.pool.begin().await?;
        let current = repo::products::find_for_update(&mut tx, id).await?.ok_or_else(|| product_not_found(id))?;
        let fields = change(&current)?;
        if fields.category_id != current.category_id {
            existing_category(&mut tx, fields.category_id).await?;
            repo::categories::add_to_count(&mut tx, current.category_id, -1).await?;
            repo::categories::add_to_count(&mut tx, fields.category_id, 1).await?;
        }
        repo::products::update(&mut tx, id, &fields).await?;
        let product = repo::products::find(&mut tx, id).await?.ok_or_else(|| product_not_found(id))?;
        repo::outbox::append(&mut tx, &Event::ProductUpserted(product.clone())).await?;
        tx.commit().await?;
        Ok(product)
    }

    pub async fn archive_product(&self, id: i64) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        let category_id = repo::products::archive(&mut tx, id).await?.ok_or_else(|| product_not_found(id))?;
        repo::categories::add_to_count(&mut tx, category_id, -1).await?;
        repo::outbox::append(&mut tx, &Event::ProductArchived { product_id: id }).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn product(&self, id: i64) -> Result<Product, Error> {
        repo::products::find(&mut *self.pool.acquire().await?, id).await?.ok_or_else(|| product_not_found(id))
    }

    /// Live products among `ids`, in the order ids first appear.
    pub async fn products(&self, ids: &[i64]) -> Result<Vec<Product>, Error> {
        let mut unique = Vec::with_capacity(ids.len());
        for id in ids {
            if !unique.contains(id) {
                unique.push(*id);
            }
        }
        let mut found = repo::products::find_many(&mut *self.pool.acquire().await?, &unique).await?;
        found.sort_by_key(|product| unique.iter().position(|id| *id == product.id));
        Ok(found)
    }

    /// One page and the total over all pages.
    pub async fn list_products(
        &self,
        filter: &ProductFilter,
        ordering: Ordering,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Product>, i64), Error> {
        let mut conn = self.pool.acquire().await?;
        // A minimum above the maximum matches nothing; no need to ask.
        if let (Some(min), Some(max)) = (filter.min_price, filter.max_price)
            && min > max
        {
            return Ok((Vec::new(), 0));
        }
        let total = if filter.total_is_tracked() {
            repo::categories::live_count(&mut conn, filter.category_id).await?
        } else {
            repo::products::count(&mut conn, filter).await?
        };
        let page = if offset >= total {
            Vec::new()
        } else {
            repo::products::list(&mut conn, filter, ordering, limit, offset).await?
        };
        Ok((page, total))
    }
}
