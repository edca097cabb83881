//! Cart-order's words: carts, orders, their states and each value's rules,
//! free of SQL, gRPC and I/O. Every room uses it and it uses none of them;
//! the gRPC layer names the field when a value is refused.

use std::fmt;

use chrono::{DateTime, Utc};
use shop_platform::error::Invalid;
use shop_platform::kernel::money::Money;
use shop_platform::kernel::order_lines::{OrderLine, OrderLines};

pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 64;

pub fn parse_id(raw: i64) -> Result<i64, Invalid> {
    if raw <= 0 { Err(Invalid::new("must be a positive id")) } else { Ok(raw) }
}

/// AddCartItem's quantity: 0 means 1, negative is refused. The line's total
/// is checked against stock and [`OrderLines::MAX_QUANTITY`] as a rule of state.
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

/// Client-chosen idempotency key: empty means none, at most 64 characters,
/// no control characters.
pub fn idempotency_key(raw: &str) -> Result<Option<String>, Invalid> {
    match raw.chars().count() {
        0 => Ok(None),
        1..=MAX_IDEMPOTENCY_KEY_CHARS => Ok(Some(shop_platform::kernel::text::single_line(raw)?.to_owned())),
        _ => Err(Invalid::new(format!("must be at most {MAX_IDEMPOTENCY_KEY_CHARS} characters"))),
    }
}

/// A product as catalog lists it now: what carts are priced from and
/// wishlists show.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub price: Money,
    pub stock: i32,
    pub image_url: String,
    pub category: Category,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub sold_count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    pub id: i64,
    pub name: String,
    pub slug: String,
}

/// A cart line as stored: the product's title and price when last added
/// are kept for a product catalog no longer lists.
#[derive(Debug, Clone)]
pub struct CartLine {
    pub product_id: i64,
    pub quantity: i32,
    pub title: String,
    pub unit_price: Money,
}

/// The cart as the customer sees it: current titles and prices.
#[derive(Debug, Clone)]
pub struct Cart {
    pub items: Vec<CartItem>,
    pub total_price: Money,
    pub total_quantity: i32,
}

#[derive(Debug, Clone)]
pub struct CartItem {
    pub product_id: i64,
    pub title: String,
    pub unit_price: Money,
    pub quantity: i32,
    pub line_total: Money,
    pub in_stock: bool,
}

impl Cart {
    /// Prices `lines` from catalog's live `products` where it still lists
    /// them, from what the line remembers (and not in stock) where not.
    pub fn priced(lines: &[CartLine], products: &[Product]) -> Self {
        let items: Vec<CartItem> = lines
            .iter()
            .map(|line| {
                let (title, unit_price, in_stock) = match products.iter().find(|p| p.id == line.product_id) {
                    Some(product) => (product.title.clone(), product.price, product.stock >= line.quantity),
                    None => (line.title.clone(), line.unit_price, false),
                };
                let line_total = unit_price.times(i64::from(line.quantity));
                CartItem {
                    product_id: line.product_id,
                    title,
                    unit_price,
                    quantity: line.quantity,
                    line_total,
                    in_stock,
                }
            })
            .collect();
        Cart {
            total_price: items.iter().map(|item| item.line_total).sum(),
            total_quantity: items.iter().map(|item| item.quantity).sum(),
            items,
        }
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

    /// Whether the order got placed: its lines left the cart and it has a
    /// price snapshot.
    pub fn is_placed(self) -> bool {
        !matches!(self, Status::Pending | Status::Failed)
    }

    /// The one status an order must have to move to `self` (an admin's
    /// moves, and a customer's cancellation).
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

/// A line's price snapshot, taken when its stock was reserved; it never
/// changes when product prices do.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub title: String,
    pub unit_price: Money,
    pub category_name: String,
    pub category_slug: String,
}

/// One line of an order: what was asked for and, once placed, its snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    pub line: OrderLine,
    pub snapshot: Option<Snapshot>,
}

impl OrderItem {
    /// `unit_price × quantity`, once there is a snapshot.
    pub fn line_total(&self) -> Option<Money> {
        self.snapshot.as_ref().map(|snapshot| snapshot.unit_price.times(i64::from(self.line.quantity)))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub id: i64,
    pub user_id: i64,
    pub status: Status,
    pub items: Vec<OrderItem>,
    pub total_price: Money,
    pub total_quantity: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Order {
    /// The lines asked for (to drive a PENDING order on).
    pub fn lines(&self) -> Result<OrderLines, Invalid> {
        OrderLines::parse(self.items.iter().map(|item| item.line))
    }
}

/// Who asks for an order: its owner sees only their own placed orders; an
/// admin sees every order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    Owner(i64),
    Admin,
}

/// Which orders a listing shows.
#[derive(Debug, Clone, Copy)]
pub struct OrderFilter<'a> {
    pub user_id: Option<i64>,
    /// `None`: every status.
    pub statuses: Option<&'a [Status]>,
}

/// What the order stream tells its readers, in commit order.
#[derive(Debug, Clone)]
pub enum Event {
    Placed(Order),
    /// `order` is as it is after the move.
    StatusChanged {
        from: Status,
        order: Order,
    },
}

/// How a cart change treats the quantity it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// AddCartItem: on top of what the line holds.
    Add(i32),
    /// UpdateCartItem: the line's new quantity (0 removes it).
    Set(i32),
}

/// What a cart line may hold: a change that would break a limit is refused
/// (checked by the store, with the change, under the user's cart lock).
#[derive(Debug, Clone, Copy)]
pub struct LineLimits {
    pub max_quantity: i32,
    pub in_stock: i32,
    pub max_lines: usize,
}

/// The limit a change would break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    MaxQuantity,
    InStock,
    MaxLines,
}

/// A change refused, and why.
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    pub limit: Limit,
    /// The units the line would have held.
    pub wanted: i64,
}

/// The order side of an audit, read at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderBooks {
    /// Orders still PENDING or still owing their stock back: while any is
    /// left, units held and units sold may differ for a moment.
    pub unsettled: i64,
    /// Orders ever placed (PLACED or moved on from it) whose idempotency key
    /// starts with the prefix asked for.
    pub placed_with_key_prefix: i64,
    /// Units in PLACED, SHIPPED and DELIVERED orders: once every order is
    /// settled, catalog's units sold.
    pub units_in_live_orders: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(Status::Placed.required_before(), None, "no move leads back to PLACED");
        assert_eq!(Status::Shipped.required_before(), Some(Status::Placed));
        assert_eq!(Status::Delivered.required_before(), Some(Status::Shipped));
        assert_eq!(Status::Cancelled.required_before(), Some(Status::Placed));
        for status in Status::ALL {
            assert_eq!(Status::from_db(status.as_str()), Some(status));
        }
    }

    #[test]
    fn a_cart_is_priced_from_catalog_and_falls_back_to_what_it_remembers() {
        let money = |raw| Money::parse(raw).unwrap();
        let lines = [
            CartLine { product_id: 1, quantity: 2, title: "Old".into(), unit_price: money("1.00") },
            CartLine { product_id: 2, quantity: 3, title: "Gone".into(), unit_price: money("0.10") },
        ];
        let live = Product {
            id: 1,
            title: "New".into(),
            description: String::new(),
            price: money("2.50"),
            stock: 1,
            image_url: String::new(),
            category: Category { id: 1, name: "C".into(), slug: "c".into() },
            created_at: None,
            updated_at: None,
            sold_count: 0,
        };
        let cart = Cart::priced(&lines, &[live]);
        assert_eq!((cart.items[0].title.as_str(), cart.items[0].line_total), ("New", money("5.00")));
        assert!(!cart.items[0].in_stock, "2 wanted, 1 left");
        assert_eq!((cart.items[1].title.as_str(), cart.items[1].in_stock), ("Gone", false));
        assert_eq!((cart.total_price, cart.total_quantity), (money("5.30"), 5));
    }
}
