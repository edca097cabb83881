//! Identity's use cases, free of SQL and gRPC: [`accounts`] holds them,
//! each in its own transaction; [`backoff`], [`passwords`] and [`tokens`]
//! are the machinery they use. The values are in `crate::model`.

pub mod accounts;
pub mod backoff;
pub mod passwords;
pub mod tokens;
