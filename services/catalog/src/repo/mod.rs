//! Catalog's stores: Postgres, one file per table group (functions take a
//! connection and never begin a transaction: the use cases do), and the
//! search index beside it.

pub mod categories;
pub mod outbox;
pub mod pictures;
pub mod products;
pub mod relevance;
pub mod reservations;
pub mod search_index;
pub mod stock;
