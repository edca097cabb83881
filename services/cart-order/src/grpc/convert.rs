//! Orders and their status between the domain and protobuf, for every
//! service of this server that answers with orders, and for `calls`, which
//! reads the order half's answers.

use shop_platform::time::timestamp;
use shop_proto::order::OrderStatus;

use crate::domain;

pub fn status_from_proto(raw: i32) -> Option<domain::Status> {
    Some(match OrderStatus::try_from(raw).ok()? {
        OrderStatus::Unspecified => return None,
        OrderStatus::Pending => domain::Status::Pending,
        OrderStatus::Placed => domain::Status::Placed,
        OrderStatus::Shipped => domain::Status::Shipped,
        OrderStatus::Delivered => domain::Status::Delivered,
        OrderStatus::Cancelled => domain::Status::Cancelled,
        OrderStatus::Failed => domain::Status::Failed,
    })
}

impl From<domain::Status> for OrderStatus {
    fn from(status: domain::Status) -> Self {
        match status {
            domain::Status::Pending => OrderStatus::Pending,
            domain::Status::Placed => OrderStatus::Placed,
            domain::Status::Shipped => OrderStatus::Shipped,
            domain::Status::Delivered => OrderStatus::Delivered,
            domain::Status::Cancelled => OrderStatus::Cancelled,
            domain::Status::Failed => OrderStatus::Failed,
        }
    }
}

/// An order as the API shows it: only a placed order has items and totals.
impl From<domain::Order> for shop_proto::order::Order {
    fn from(order: domain::Order) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_crosses_the_wire_and_back() {
        for status in domain::Status::ALL {
            assert_eq!(status_from_proto(OrderStatus::from(status) as i32), Some(status));
        }
        assert_eq!(status_from_proto(OrderStatus::Unspecified as i32), None);
        assert_eq!(status_from_proto(99), None);
    }
}
