//! What every Shop service shares, written once: typed config from the
//! environment, tracing, the Postgres pool with per-schema embedded migrations,
//! field-naming errors, the gRPC server bootstrap (health, reflection, request
//! spans, graceful shutdown, TLS and gRPC-Web), caller identity and service credentials, and
//! access-token verification.
//!
//! It must not know any service's domain. Start with [`server::serve`], then
//! [`auth`] for how a backend decides who is calling.

pub mod auth;
pub mod balance;
pub mod body_budget;
pub mod budget;
pub mod call_limits;
pub mod client;
pub mod config;
pub mod connection;
pub mod db;
pub mod error;
pub mod log_limit;
pub mod metrics;
pub mod money;
pub mod order_lines;
pub mod outbox;
pub mod paging;
pub mod reflection;
pub mod restart;
pub mod server;
pub mod telemetry;
pub mod testing;
pub mod text;
pub mod time;
pub mod tls;
pub mod web;
