//! How calls arrive and leave. A server ([`server::serve`]) stacks, from the
//! socket up: connection limits and TLS ([`connection`], [`tls`]), gRPC-Web
//! and Connect ([`web`], [`connect`]), the body budget ([`body_budget`]), request ids, metrics and the
//! call's deadline ([`call_limits`]); reflection serves the contract
//! ([`reflection`]). Work budgets bound expensive kinds of work
//! ([`budget`]). Calls out go through [`client`], spread over replicas by
//! [`balance`].

pub mod balance;
pub mod body_budget;
pub mod budget;
pub mod call_limits;
pub mod client;
pub mod connect;
pub mod connection;
pub mod reflection;
pub mod server;
pub mod tls;
pub mod web;
