//! Cart-order's SQL: `cart` for the cart and wishlist schema, `orders` for the
//! orders schema (each used only with its own pool). Functions take a
//! connection and never begin a transaction: the use cases do.

pub mod cart;
pub mod orders;
