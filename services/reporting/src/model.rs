//! Reporting's read model in the shop's words, free of SQL, gRPC and I/O:
//! the changes the two event streams bring (decoded at the edge, in `calls`),
//! and the report's rows. Every room uses it and it uses none of them.

use chrono::{DateTime, Utc};
use shop_platform::kernel::money::Money;
use shop_platform::kernel::paging::Page;

/// A change from one of the streams, with its place in the stream.
#[derive(Debug, Clone)]
pub struct Stamped<C> {
    pub sequence: i64,
    /// When it committed at its source.
    pub occurred_at: Option<DateTime<Utc>>,
    pub change: C,
}

/// What the catalog stream tells reporting.
#[derive(Debug, Clone, PartialEq)]
pub enum CatalogChange {
    ProductUpserted(ProductInfo),
    ProductArchived {
        product_id: i64,
    },
    CategoryUpserted {
        category_id: i64,
        name: String,
        slug: String,
    },
    CategoryDeleted {
        category_id: i64,
    },
    /// Stock moves: sales come from order snapshots, not from these.
    Ignored,
}

/// A product's name and place, as the report shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductInfo {
    pub product_id: i64,
    pub title: String,
    pub category_id: i64,
    pub category_name: String,
    pub category_slug: String,
}

/// What the order stream tells reporting.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderChange {
    Placed(Vec<SoldLine>),
    Cancelled(Vec<SoldLine>),
    /// Shipped and delivered orders still count as they did.
    Ignored,
}

/// One line of an order's snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct SoldLine {
    pub product_id: i64,
    pub title: String,
    pub category_name: String,
    pub category_slug: String,
    pub units: i64,
    pub revenue: Money,
}

/// What one report asks for.
#[derive(Debug, Clone)]
pub struct ReportQuery {
    pub most_sold_first: bool,
    /// A category slug, or `None` for every category.
    pub category: Option<String>,
    pub exclude_unsold: bool,
    pub page: Page,
}

#[derive(Debug, Clone)]
pub struct SalesRow {
    pub product_id: i64,
    pub title: String,
    pub category_name: String,
    pub category_slug: String,
    pub units_sold: i64,
    pub order_count: i64,
    pub revenue: Money,
}

#[derive(Debug, Clone)]
pub struct SalesReport {
    pub rows: Vec<SalesRow>,
    pub total_count: i64,
    /// When the last applied event committed at its source.
    pub as_of: Option<DateTime<Utc>>,
}
