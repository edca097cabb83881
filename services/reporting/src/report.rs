//! GetProductSalesReport, answered from the read model alone.

use shop_platform::money::Money;
use shop_platform::paging::Page;
use shop_platform::time::timestamp;
use shop_proto::reporting::{GetProductSalesReportResponse, ProductSalesRow};
use sqlx::PgPool;

use crate::error::Error;
use crate::repo;

/// What one report asks for.
#[derive(Debug, Clone)]
pub struct ReportQuery {
    pub most_sold_first: bool,
    /// A category slug, or `None` for every category.
    pub category: Option<String>,
    pub exclude_unsold: bool,
    pub page: Page,
}

#[derive(Clone)]
pub struct Reports {
    pool: PgPool,
}

impl Reports {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn product_sales(&self, query: &ReportQuery) -> Result<GetProductSalesReportResponse, Error> {
        let mut conn = self.pool.acquire().await?;
        if let Some(slug) = &query.category
            && !repo::category_exists(&mut conn, slug).await?
        {
            return Err(Error::NotFound(format!("category {slug:?}")));
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
        Ok(GetProductSalesReportResponse {
            rows: rows
                .into_iter()
                .map(|row| ProductSalesRow {
                    product_id: row.product_id,
                    title: row.title,
                    category_name: row.category_name,
                    category_slug: row.category_slug,
                    units_sold: row.units_sold,
                    order_count: row.order_count,
                    revenue: Money::from_decimal(row.revenue).to_string(),
                })
                .collect(),
            total_count,
            as_of: as_of.map(timestamp),
        })
    }
}
