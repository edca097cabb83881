//! gRPC edge, one file per gRPC service: protobuf in, the verified caller
//! and one use-case call, protobuf out. The domain ↔ protobuf conversions
//! every service shares are here.

mod cart;
mod events;
mod orders;
mod placement;
mod wishlist;

pub use events::OrderEventsApi;
pub use orders::OrderApi;
pub use placement::PlacementApi;

use shop_platform::auth::{Caller, ServiceCredentials};
use shop_platform::client::CallContext;
use shop_platform::time::timestamp;
use shop_proto::order::OrderStatus;
use tonic::{Request, Status};

use crate::domain;
use crate::domain::cart::Carts;

/// CartService (`cart.rs`) and WishlistService (`wishlist.rs`): a
/// customer's own cart and wishlist.
#[derive(Clone)]
pub struct CustomerApi {
    carts: Carts,
    credentials: ServiceCredentials,
}

impl CustomerApi {
    pub fn new(carts: Carts, credentials: ServiceCredentials) -> Self {
        Self { carts, credentials }
    }

    fn call<T>(&self, request: &Request<T>) -> Result<(i64, CallContext), Status> {
        let (_, user_id, context) = user_call(&self.credentials, self.carts.call_timeout(), request)?;
        Ok((user_id, context))
    }
}

/// The caller the gateway vouched for (a user is required), and what its
/// calls hand on downstream.
fn user_call<T>(
    credentials: &ServiceCredentials,
    timeout: std::time::Duration,
    request: &Request<T>,
) -> Result<(Caller, i64, CallContext), Status> {
    let caller = credentials.caller(request.metadata())?;
    let user_id = caller.require_user()?;
    Ok((caller, user_id, CallContext::of(request.metadata(), timeout)))
}

pub(crate) fn status_from_proto(raw: i32) -> Option<domain::Status> {
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
