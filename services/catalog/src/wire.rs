//! Catalog's wire format shared by the gRPC edge and the stores: a catalog
//! event as `CatalogEventsService` sends it and the outbox stores it, and
//! what a stored event says about the products it touched.

use shop_platform::kernel::order_lines::OrderLine;
use shop_proto::catalog::catalog_event::Payload;
use shop_proto::catalog::{
    CatalogEvent, CategoryDeleted, CategoryUpserted, ProductArchived, ProductUpserted, StockLine, StockReleased,
    StockReserved,
};

use crate::model::Event;

fn stock_lines(lines: &[OrderLine]) -> Vec<StockLine> {
    lines.iter().map(|line| StockLine { product_id: line.product_id, quantity: line.quantity }).collect()
}

/// The products an event (as stored) changed.
pub fn touched_products(event: &CatalogEvent) -> Vec<i64> {
    match &event.payload {
        Some(Payload::ProductUpserted(product)) => vec![product.product_id],
        Some(Payload::ProductArchived(archived)) => vec![archived.product_id],
        Some(
            Payload::StockReserved(StockReserved { lines, .. }) | Payload::StockReleased(StockReleased { lines, .. }),
        ) => lines.iter().map(|line| line.product_id).collect(),
        Some(Payload::CategoryUpserted(_) | Payload::CategoryDeleted(_)) | None => Vec::new(),
    }
}

/// An event as the outbox stores it, encoded, for a statement that appends
/// it itself.
pub fn encode(event: &Event) -> Vec<u8> {
    use prost::Message as _;
    CatalogEvent::from(event).encode_to_vec()
}

/// An event as the stream carries it (and the outbox stores it): without
/// its sequence and time, which readers stamp on the way out.
impl From<&Event> for CatalogEvent {
    fn from(event: &Event) -> Self {
        let payload = match event {
            Event::ProductUpserted(product) => Payload::ProductUpserted(ProductUpserted {
                product_id: product.id,
                title: product.title.clone(),
                category_id: product.category_id,
                category_name: product.category_name.clone(),
                category_slug: product.category_slug.clone(),
                price: product.price.to_string(),
                stock: product.stock,
                sold_count: product.sold_count,
            }),
            Event::ProductArchived { product_id } => {
                Payload::ProductArchived(ProductArchived { product_id: *product_id })
            }
            Event::CategoryUpserted(category) => Payload::CategoryUpserted(CategoryUpserted {
                category_id: category.id,
                name: category.name.clone(),
                slug: category.slug.clone(),
            }),
            Event::CategoryDeleted { category_id, slug } => {
                Payload::CategoryDeleted(CategoryDeleted { category_id: *category_id, slug: slug.clone() })
            }
            Event::StockReserved { order_id, lines } => {
                Payload::StockReserved(StockReserved { order_id: *order_id, lines: stock_lines(lines) })
            }
            Event::StockReleased { order_id, lines } => {
                Payload::StockReleased(StockReleased { order_id: *order_id, lines: stock_lines(lines) })
            }
        };
        CatalogEvent { sequence: 0, occurred_at: None, payload: Some(payload) }
    }
}
