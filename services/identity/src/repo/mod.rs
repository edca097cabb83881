//! Identity's SQL, one file per table group. Functions take a connection and
//! never begin a transaction: the caller decides where one starts and ends.

pub mod keys;
pub mod tokens;
pub mod users;
