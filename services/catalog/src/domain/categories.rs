//! Categories: every change commits with its outbox event, in one
//! transaction; a category holding live products stays.

use sqlx::PgPool;

use crate::error::Error;
use crate::model::{Category, CategoryName, Event, Slug};
use crate::repo;

/// A category change: the fields to set.
pub struct CategoryFields {
    pub name: CategoryName,
    pub slug: Slug,
}

#[derive(Clone)]
pub struct Categories {
    pool: PgPool,
}

fn category_not_found(id: i64) -> Error {
    Error::NotFound(format!("category {id}"))
}

impl Categories {
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
        // Its row lock keeps products from being added or moved in meanwhile.
        let live = repo::categories::live_count(&mut tx, Some(id)).await?;
        if live > 0 {
            return Err(Error::FailedPrecondition(format!(
                "category {id} holds {live} live product{}; move or archive them first",
                if live == 1 { "" } else { "s" }
            )));
        }
        // Archived products let go of it: orders keep their own snapshot.
        repo::categories::release_archived_products(&mut tx, id).await?;
        repo::categories::delete(&mut tx, id).await?;
        repo::outbox::append(&mut tx, &Event::CategoryDeleted { category_id: id, slug: category.slug }).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn categories(&self) -> Result<Vec<Category>, Error> {
        repo::categories::list(&mut *self.pool.acquire().await?).await
    }

    /// Every category with its live-product count.
    pub async fn categories_with_counts(&self) -> Result<Vec<(Category, i64)>, Error> {
        repo::categories::list_with_counts(&mut *self.pool.acquire().await?).await
    }

    pub async fn category(&self, id: i64) -> Result<Category, Error> {
        repo::categories::find(&mut *self.pool.acquire().await?, id).await?.ok_or_else(|| category_not_found(id))
    }

    pub async fn category_by_slug(&self, slug: &str) -> Result<Category, Error> {
        let not_found = || Error::NotFound(format!("category {}", shop_platform::kernel::text::echo(slug)));
        // What is not a slug names no category; no need to ask.
        let slug = Slug::parse(slug).map_err(|_| not_found())?;
        repo::categories::find_by_slug(&mut *self.pool.acquire().await?, slug.as_str()).await?.ok_or_else(not_found)
    }
}
