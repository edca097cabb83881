//! Catalog's SQL, one file per table group. Functions take a connection and
//! never begin a transaction: the use cases in `catalog`/`inventory` do.

pub mod categories;
pub mod outbox;
pub mod products;
pub mod reservations;

/// Escapes `%`, `_` and `\` so user text matches literally inside LIKE.
pub fn like_pattern(term: &str) -> String {
    let escaped = term.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}
