//! GetProductSalesReport, answered from the read model alone.

use sqlx::PgPool;

use crate::error::Error;
use crate::model::{ReportQuery, SalesReport};
use crate::repo;

#[derive(Clone)]
pub struct Reports {
    pool: PgPool,
}

impl Reports {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn product_sales(&self, query: &ReportQuery) -> Result<SalesReport, Error> {
        let mut conn = self.pool.acquire().await?;
        // A slug with control characters can name no category (and could
        // not even be looked up: Postgres stores no NUL).
        if let Some(slug) = &query.category
            && (shop_platform::kernel::text::single_line(slug).is_err()
                || !repo::category_exists(&mut conn, slug).await?)
        {
            return Err(Error::NotFound(format!("category {}", shop_platform::kernel::text::echo(slug))));
        }
        let slug = query.category.as_deref();
        let total_count = repo::count(&mut conn, slug.unwrap_or(""), query.exclude_unsold).await?;
        let rows = repo::page(
            &mut conn,
            slug,
            query.exclude_unsold,
            query.most_sold_first,
            query.page.limit(),
            query.page.offset(),
        )
        .await?;
        let as_of = repo::as_of(&mut conn).await?;
        Ok(SalesReport { rows, total_count, as_of })
    }
}
