//! Catalog use cases, free of SQL and gRPC: [`categories`], [`products`]
//! (with [`listing`], the search index's use) and [`inventory`] (stock
//! reservations), [`pictures`] (products' pictures in the file store). The values they work on are in `crate::model`.

pub mod categories;
pub mod inventory;
pub mod listing;
pub mod pictures;
pub mod products;
