//! The service's wire format, shared by the edges that speak it: orders and
//! their status between the domain and protobuf (for `grpc`, which answers
//! with them, and `calls`, which reads the order half's answers), and order
//! events as the stream carries them and the outbox stores them (for `grpc`
//! and `repo`). The domain never sees any of it.

use prost::Message as _;
use shop_platform::kernel::time::timestamp;
use shop_proto::order::order_event::Payload;
use shop_proto::order::{OrderCancelled, OrderPlaced, OrderStatus, OrderStatusChanged};

/// An order event as the stream carries it and the outbox stores it.
pub use shop_proto::order::OrderEvent;

use crate::model::{self, Event};

pub fn status_from_proto(raw: i32) -> Option<model::Status> {
    Some(match OrderStatus::try_from(raw).ok()? {
        OrderStatus::Unspecified => return None,
        OrderStatus::Pending => model::Status::Pending,
        OrderStatus::Placed => model::Status::Placed,
        OrderStatus::Shipped => model::Status::Shipped,
        OrderStatus::Delivered => model::Status::Delivered,
        OrderStatus::Cancelled => model::Status::Cancelled,
        OrderStatus::Failed => model::Status::Failed,
    })
}

impl From<model::Status> for OrderStatus {
    fn from(status: model::Status) -> Self {
        match status {
            model::Status::Pending => OrderStatus::Pending,
            model::Status::Placed => OrderStatus::Placed,
            model::Status::Shipped => OrderStatus::Shipped,
            model::Status::Delivered => OrderStatus::Delivered,
            model::Status::Cancelled => OrderStatus::Cancelled,
            model::Status::Failed => OrderStatus::Failed,
        }
    }
}

/// An order as the API shows it: only a placed order has items and totals.
impl From<model::Order> for shop_proto::order::Order {
    fn from(order: model::Order) -> Self {
        let items = order
            .items
            .iter()
            .filter_map(|item| {
                let snapshot = item.snapshot.clone()?;
                Some(shop_proto::order::OrderItem {
                    product_id: item.line.product_id,
                    line_total: item.line_total()?.to_string(),
                    title: snapshot.title,
                    unit_price: snapshot.unit_price.to_string(),
                    quantity: item.line.quantity,
                    category_name: snapshot.category_name,
                    category_slug: snapshot.category_slug,
                })
            })
            .collect();
        shop_proto::order::Order {
            id: order.id,
            user_id: order.user_id,
            status: OrderStatus::from(order.status).into(),
            items,
            total_price: order.total_price.to_string(),
            total_quantity: order.total_quantity,
            created_at: Some(timestamp(order.created_at)),
            updated_at: Some(timestamp(order.updated_at)),
        }
    }
}

/// An event as the stream carries it (and the outbox stores it): without
/// its sequence and time, which readers stamp on the way out.
impl From<&Event> for OrderEvent {
    fn from(event: &Event) -> Self {
        let payload = match event {
            Event::Placed(order) => Payload::OrderPlaced(OrderPlaced { order: Some(order.clone().into()) }),
            Event::StatusChanged { from, order } => {
                let (order_id, old_status, new_status) =
                    (order.id, OrderStatus::from(*from).into(), OrderStatus::from(order.status).into());
                let order = Some(order.clone().into());
                if new_status == OrderStatus::Cancelled as i32 {
                    Payload::OrderCancelled(OrderCancelled { order_id, old_status, new_status, order })
                } else {
                    Payload::OrderStatusChanged(OrderStatusChanged { order_id, old_status, new_status, order })
                }
            }
        };
        OrderEvent { sequence: 0, occurred_at: None, payload: Some(payload) }
    }
}

/// An event as the outbox stores it, for a statement that appends it itself.
pub fn encode_event(event: &Event) -> Vec<u8> {
    OrderEvent::from(event).encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_crosses_the_wire_and_back() {
        for status in model::Status::ALL {
            assert_eq!(status_from_proto(OrderStatus::from(status) as i32), Some(status));
        }
        assert_eq!(status_from_proto(OrderStatus::Unspecified as i32), None);
        assert_eq!(status_from_proto(99), None);
    }
}
