//! gRPC edge: proto in, one use-case call, proto out.

mod catalog;
mod events;
mod inventory;

pub use catalog::CatalogApi;
pub use events::CatalogEventsApi;
pub use inventory::InventoryApi;

use shop_platform::kernel::time::timestamp;
use shop_proto::catalog::{Category, Product, ReservedLine};

use crate::model;

impl From<model::Category> for Category {
    fn from(category: model::Category) -> Self {
        Category { id: category.id, name: category.name, slug: category.slug }
    }
}

impl From<model::Product> for Product {
    fn from(product: model::Product) -> Self {
        Product {
            id: product.id,
            title: product.title,
            description: product.description,
            price: product.price.to_string(),
            stock: product.stock,
            image_url: product.image_url,
            category: Some(Category {
                id: product.category_id,
                name: product.category_name,
                slug: product.category_slug,
            }),
            created_at: Some(timestamp(product.created_at)),
            updated_at: Some(timestamp(product.updated_at)),
            sold_count: product.sold_count,
        }
    }
}

impl From<model::ReservedLine> for ReservedLine {
    fn from(line: model::ReservedLine) -> Self {
        ReservedLine {
            product_id: line.product_id,
            title: line.title,
            unit_price: line.unit_price.to_string(),
            category_name: line.category_name,
            category_slug: line.category_slug,
            quantity: line.quantity,
        }
    }
}
