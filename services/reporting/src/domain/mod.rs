//! Reporting's use cases, free of SQL and gRPC: [`consumer`] (applying
//! each stream exactly once) and [`report`] (the sales report). The values
//! they work on are in `crate::model`.

pub mod consumer;
pub mod report;
