//! Products: every change commits with its outbox event and with the
//! live-product count it affects, in one transaction, and returns once the
//! search index holds it.

use shop_platform::error::Invalid;
use shop_platform::kernel::paging::Page;
use sqlx::{PgConnection, PgPool};

use crate::domain::listing::Listings;
use crate::domain::pictures::{PictureChange, Pictures};
use crate::error::Error;
use crate::model::picture::Picture;
use crate::model::search_box::{SearchFilter, SearchPage};
use crate::model::{Category, Event, Ordering, Product, ProductFields, ProductFilter};
use crate::repo;
use shop_platform::error::FieldRefusal as _;

#[derive(Clone)]
pub struct Products {
    pool: PgPool,
    /// Product writes return once listings show them.
    listings: Listings,
    pictures: Pictures,
}

fn product_not_found(id: i64) -> Error {
    Error::NotFound(format!("product {id}"))
}

/// The category a product is put in must exist; it stays locked against
/// deletion until the transaction ends.
async fn existing_category(conn: &mut PgConnection, id: i64) -> Result<Category, Error> {
    repo::categories::find_for_share(conn, id)
        .await?
        .ok_or_else(|| Error::field("category_id")(Invalid::new(format!("category {id} does not exist"))))
}

/// Cancelled orders give their units back to stock, so stock and the units
/// in live orders must fit one stock column together: a stock that could not
/// take its sales back is refused when it is set, not when an order is
/// cancelled.
fn stock_fits_with_sales(stock: i32, sold_count: i64) -> Result<(), Error> {
    let room = i64::from(i32::MAX) - sold_count.max(0);
    if i64::from(stock) > room {
        let reason = format!("at most {room} while {sold_count} units are in live orders (their units may come back)");
        return Err(Error::field("stock")(Invalid::new(reason)));
    }
    Ok(())
}

impl Products {
    pub fn new(pool: PgPool, listings: Listings, pictures: Pictures) -> Self {
        Self { pool, listings, pictures }
    }

    pub fn pictures(&self) -> &Pictures {
        &self.pictures
    }

    /// A new product, with the picture if one came (stored before the
    /// product commits: a refused write leaves nothing behind).
    pub async fn create_product(&self, fields: ProductFields, picture: Option<Picture>) -> Result<Product, Error> {
        let id = repo::products::next_id(&mut *self.pool.acquire().await?).await?;
        let stored = match picture {
            Some(picture) => Some(self.pictures.store(&self.pool, id, picture).await?),
            None => None,
        };
        let mut tx = self.pool.begin().await?;
        existing_category(&mut tx, fields.category_id).await?;
        repo::products::insert(&mut tx, id, &fields).await?;
        repo::categories::add_to_count(&mut tx, fields.category_id, 1).await?;
        if let Some(key) = &stored {
            // A new product holds no picture yet.
            self.pictures.point(&mut tx, id, None, Some(key), "").await?;
        }
        let product = repo::products::find(&mut tx, id).await?.ok_or_else(|| product_not_found(id))?;
        let sequence = repo::outbox::append(&mut tx, &Event::ProductUpserted(product.clone())).await?;
        tx.commit().await?;
        self.listings.wait_applied(sequence).await;
        Ok(product)
    }

    /// `change` gets the current product and returns its new fields.
    pub async fn update_product(
        &self,
        id: i64,
        change: impl FnOnce(&Product) -> Result<ProductFields, Error>,
        picture: PictureChange,
    ) -> Result<Product, Error> {
        // A new picture is stored before the transaction opens (see Pictures::store).
        let removes = matches!(picture, PictureChange::Remove);
        let stored = match picture {
            PictureChange::Set(picture) => Some(self.pictures.store(&self.pool, id, picture).await?),
            PictureChange::Keep | PictureChange::Remove => None,
        };
        let mut tx = self.pool.begin().await?;
        let current = repo::products::find_for_update(&mut tx, id).await?.ok_or_else(|| product_not_found(id))?;
        let fields = change(&current)?;
        if fields.stock != current.stock {
            stock_fits_with_sales(fields.stock, current.sold_count)?;
        }
        if fields.category_id != current.category_id {
            existing_category(&mut tx, fields.category_id).await?;
            repo::categories::add_to_count(&mut tx, current.category_id, -1).await?;
            repo::categories::add_to_count(&mut tx, fields.category_id, 1).await?;
        }
        repo::products::update(&mut tx, id, &fields).await?;
        let kept = self.pictures.key_of(&mut tx, id).await?;
        let url_changed = fields.image_url != current.image_url;
        let deletion_due = match (&stored, removes) {
            (Some(key), _) => self.pictures.point(&mut tx, id, kept.as_deref(), Some(key), "").await?,
            (None, true) if kept.is_some() => {
                let url = if url_changed { fields.image_url.as_str() } else { "" };
                self.pictures.point(&mut tx, id, kept.as_deref(), None, url).await?
            }
            // An address of the admin's own replaces the picture Shop kept.
            (None, false) if kept.is_some() && url_changed => {
                self.pictures.point(&mut tx, id, kept.as_deref(), None, &fields.image_url).await?
            }
            (None, _) => false,
        };
        let product = repo::products::find(&mut tx, id).await?.ok_or_else(|| product_not_found(id))?;
        let sequence = repo::outbox::append(&mut tx, &Event::ProductUpserted(product.clone())).await?;
        tx.commit().await?;
        if deletion_due {
            self.pictures.sweep_soon();
        }
        self.listings.wait_applied(sequence).await;
        Ok(product)
    }

    pub async fn archive_product(&self, id: i64) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        let category_id = repo::products::archive(&mut tx, id).await?.ok_or_else(|| product_not_found(id))?;
        repo::categories::add_to_count(&mut tx, category_id, -1).await?;
        // Nothing shows an archived product's picture: it goes with it.
        let deletion_due = match self.pictures.key_of(&mut tx, id).await? {
            Some(kept) => self.pictures.point(&mut tx, id, Some(&kept), None, "").await?,
            None => false,
        };
        let sequence = repo::outbox::append(&mut tx, &Event::ProductArchived { product_id: id }).await?;
        tx.commit().await?;
        if deletion_due {
            self.pictures.sweep_soon();
        }
        self.listings.wait_applied(sequence).await;
        Ok(())
    }

    pub async fn product(&self, id: i64) -> Result<Product, Error> {
        repo::products::find(&mut *self.pool.acquire().await?, id).await?.ok_or_else(|| product_not_found(id))
    }

    /// Live products among `ids`, in the order ids first appear.
    pub async fn products(&self, ids: &[i64]) -> Result<Vec<Product>, Error> {
        repo::products::find_many(&mut *self.pool.acquire().await?, ids).await
    }

    /// SearchProducts: one page of the search box's answer.
    pub async fn search_products(&self, filter: &SearchFilter, page: Page) -> Result<SearchPage, Error> {
        self.listings.search_box(filter, page).await
    }

    /// ListProducts: one page and the total over all pages.
    pub async fn list_products(
        &self,
        filter: &ProductFilter,
        ordering: Ordering,
        page: Page,
    ) -> Result<(Vec<Product>, i64), Error> {
        self.listings.list(filter, ordering, page).await
    }
}
