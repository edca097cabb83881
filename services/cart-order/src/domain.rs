//! Cart and order rules, free of SQL and gRPC. The gRPC layer names the field
//! when a value is refused.

use std::collections::HashSet;
use std::fmt;

use shop_platform::error::Invalid;
use shop_proto::order::OrderStatus;

/// Units of one product per cart line or order line.
pub const MAX_LINE_QUANTITY: i32 = 1000;
/// Products in one cart, wishlist or order (what one ReserveStock takes).
pub const MAX_LINES: usize = 100;
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 64;

pub fn parse_id(raw: i64) -> Result<i64, Invalid> {
    if raw <= 0 { Err(Invalid::new("must be a positive id")) } else { Ok(raw) }
}

/// AddCartItem's quantity: 0 means 1, negative is refused. The line's total
/// is checked against stock and [`MAX_LINE_QUANTITY`] as a rule of state.
pub fn quantity_to_add(raw: i32) -> Result<i32, Invalid> {
    match raw {
        ..0 => Err(Invalid::new("must not be negative")),
        0 => Ok(1),
        _ => Ok(raw),
    }
}

/// UpdateCartItem's quantity: 0 removes the line, negative is refused.
pub fn quantity_to_set(raw: i32) -> Result<i32, Invalid> {
    if raw < 0 { Err(Invalid::new("must not be negative")) } else { Ok(raw) }
}

/// Client-chosen idempotency key: empty means none, at most 64 characters.
pub fn idempotency_key(raw: &str) -> Result<Option<String>, Invalid> {
    match raw.chars().count() {
        0 => Ok(None),
        1..=MAX_IDEMPOTENCY_KEY_CHARS => Ok(Some(raw.to_owned())),
        _ => Err(Invalid::new(format!("must be at most {MAX_IDEMPOTENCY_KEY_CHARS} characters"))),
    }
}

/// What an order asks for: 1–100 distinct products, 1–1000 units each, by
/// product id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLines(Vec<(i64, i32)>);

impl OrderLines {
    pub fn parse(lines: impl IntoIterator<Item = (i64, i32)>) -> Result<Self, Invalid> {
        let mut parsed: Vec<(i64, i32)> = Vec::new();
        let mut seen = HashSet::new();
        for (product_id, quantity) in lines {
            if product_id <= 0 {
                return Err(Invalid::new("every product_id must be a positive id"));
            }
            if !(1..=MAX_LINE_QUANTITY).contains(&quantity) {
                return Err(Invalid::new(format!("every quantity must be 1-{MAX_LINE_QUANTITY}")));
            }
            if !seen.insert(product_id) {
                return Err(Invalid::new(format!("product {product_id} is listed twice")));
            }
            parsed.push((product_id, quantity));
        }
        if parsed.is_empty() {
            return Err(Invalid::new("at least one line is required"));
        }
        if parsed.len() > MAX_LINES {
            return Err(Invalid::new(format!("at most {MAX_LINES} lines")));
        }
        parsed.sort_unstable();
        Ok(Self(parsed))
    }

    pub fn lines(&self) -> &[(i64, i32)] {
        &self.0
    }
}

/// An order's place in its life cycle, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Placed,
    Shipped,
    Delivered,
    Cancelled,
    Failed,
}

impl Status {
    pub const ALL: [Status; 6] =
        [Status::Pending, Status::Placed, Status::Shipped, Status::Delivered, Status::Cancelled, Status::Failed];
    /// What a customer sees in their history: orders that got placed.
    pub const VISIBLE_TO_OWNER: [Status; 4] = [Status::Placed, Status::Shipped, Status::Delivered, Status::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Placed => "PLACED",
            Status::Shipped => "SHIPPED",
            Status::Delivered => "DELIVERED",
            Status::Cancelled => "CANCELLED",
            Status::Failed => "FAILED",
        }
    }

    pub fn from_db(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == raw)
    }

    pub fn is_visible_to_owner(self) -> bool {
        Self::VISIBLE_TO_OWNER.contains(&self)
    }

    /// ListAllOrders' filter: unspecified is any status.
    pub fn parse_filter(raw: i32) -> Result<Option<Self>, Invalid> {
        match OrderStatus::try_from(raw) {
            Ok(OrderStatus::Unspecified) => Ok(None),
            Ok(status) => Ok(Some(status.into())),
            Err(_) => Err(Invalid::new("is not an order status")),
        }
    }

    /// UpdateOrderStatus' target: a real status (unset or unknown is
    /// refused). Only SHIPPED, DELIVERED and CANCELLED can be reached; any
    /// other target is a move no order allows, a rule of state.
    pub fn parse_target(raw: i32) -> Result<Self, Invalid> {
        match OrderStatus::try_from(raw) {
            Ok(OrderStatus::Unspecified) | Err(_) => Err(Invalid::new("must be an order status")),
            Ok(status) => Ok(status.into()),
        }
    }

    /// The one status an order must have to move to `self` (an admin's moves).
    pub fn required_before(self) -> Option<Self> {
        match self {
            Status::Shipped | Status::Cancelled => Some(Status::Placed),
            Status::Delivered => Some(Status::Shipped),
            Status::Pending | Status::Placed | Status::Failed => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<OrderStatus> for Status {
    fn from(status: OrderStatus) -> Self {
        match status {
            OrderStatus::Pending | OrderStatus::Unspecified => Status::Pending,
            OrderStatus::Placed => Status::Placed,
            OrderStatus::Shipped => Status::Shipped,
            OrderStatus::Delivered => Status::Delivered,
            OrderStatus::Cancelled => Status::Cancelled,
            OrderStatus::Failed => Status::Failed,
        }
    }
}

impl From<Status> for OrderStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Pending => OrderStatus::Pending,
            Status::Placed => OrderStatus::Placed,
            Status::Shipped => OrderStatus::Shipped,
            Status::Delivered => OrderStatus::Delivered,
            Status::Cancelled => OrderStatus::Cancelled,
            Status::Failed => OrderStatus::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_lines_are_sorted_and_checked() {
        let lines = OrderLines::parse([(9, 1), (3, 1000)]).unwrap();
        assert_eq!(lines.lines(), &[(3, 1000), (9, 1)]);
        assert!(OrderLines::parse([]).is_err());
        assert!(OrderLines::parse([(3, 1), (3, 2)]).is_err());
        assert!(OrderLines::parse([(3, 0)]).is_err());
        assert!(OrderLines::parse([(3, 1001)]).is_err());
        assert!(OrderLines::parse([(0, 1)]).is_err());
        assert!(OrderLines::parse((1..=101).map(|id| (id, 1))).is_err());
    }

    #[test]
    fn quantities_and_keys() {
        assert_eq!(quantity_to_add(0), Ok(1));
        assert!(quantity_to_add(-1).is_err());
        assert_eq!(quantity_to_set(0), Ok(0));
        assert_eq!(idempotency_key(""), Ok(None));
        assert!(idempotency_key(&"k".repeat(64)).unwrap().is_some());
        assert!(idempotency_key(&"k".repeat(65)).is_err());
    }

    #[test]
    fn only_the_contracts_moves_are_allowed() {
        assert_eq!(Status::parse_target(OrderStatus::Shipped as i32), Ok(Status::Shipped));
        assert_eq!(Status::parse_target(OrderStatus::Placed as i32), Ok(Status::Placed));
        assert_eq!(Status::Placed.required_before(), None, "no move leads back to PLACED");
        assert!(Status::parse_target(OrderStatus::Unspecified as i32).is_err());
        assert!(Status::parse_target(99).is_err());
        assert_eq!(Status::Delivered.required_before(), Some(Status::Shipped));
        assert_eq!(Status::Cancelled.required_before(), Some(Status::Placed));
        assert_eq!(Status::parse_filter(0), Ok(None));
        assert!(Status::parse_filter(42).is_err());
        for status in Status::ALL {
            assert_eq!(Status::from_db(status.as_str()), Some(status));
            assert_eq!(Status::from(OrderStatus::from(status)), status);
        }
    }
}
