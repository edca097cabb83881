//! Cart and order use cases, free of SQL and gRPC: [`cart`] (carts,
//! wishlists, checkout's first step), [`placement`] (the checkout saga's
//! order half and its recovery), [`orders`] (history and status moves).
//! The values they work on, and each value's rules, are in `crate::model`.

pub mod cart;
pub mod orders;
pub mod placement;
