//! gRPC edge: proto in, one use-case call, proto out.

mod catalog;
mod events;
mod inventory;

pub use catalog::CatalogApi;
pub use events::CatalogEventsApi;
pub use inventory::InventoryApi;

use shop_platform::money::Money;
use shop_platform::time::timestamp;
use shop_proto::catalog::{Category, Product, ReservedLine};

use crate::repo::categories::CategoryRow;
use crate::repo::products::ProductRow;
use crate::repo::reservations::LineRow;

impl From<CategoryRow> for Category {
    fn from(row: CategoryRow) -> Self {
        Category { id: row.id, name: row.name, slug: row.slug }
    }
}

impl From<ProductRow> for Product {
    fn from(row: ProductRow) -> Self {
        Product {
            id: row.id,
            title: row.title,
            description: row.description,
            price: Money::from_decimal(row.price).to_string(),
            stock: row.stock,
            image_url: row.image_url,
            category: Some(Category { id: row.category_id, name: row.category_name, slug: row.category_slug }),
            created_at: Some(timestamp(row.created_at)),
            updated_at: Some(timestamp(row.updated_at)),
            sold_count: row.sold_count,
        }
    }
}

impl From<LineRow> for ReservedLine {
    fn from(line: LineRow) -> Self {
        ReservedLine {
            product_id: line.product_id,
            title: line.title,
            unit_price: Money::from_decimal(line.unit_price).to_string(),
            category_name: line.category_name,
            category_slug: line.category_slug,
            quantity: line.quantity,
        }
    }
}
