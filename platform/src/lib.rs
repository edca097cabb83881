//! What every Shop service shares, written once, in four rooms and three
//! files:
//!
//! - [`transport`]: how calls arrive and leave: the server bootstrap
//!   (health, reflection, request spans, graceful shutdown), connection and
//!   call limits, the body budget, TLS, gRPC-Web, work budgets, and the
//!   client side (internal calls, balancing over replicas).
//! - [`storage`]: Postgres: pools with per-schema embedded migrations, the
//!   transactional outbox, and (behind the `testing` feature) test databases.
//! - [`observability`]: logs and traces, metrics, log limits, restart with
//!   backoff.
//! - [`kernel`]: the values services share: money, order lines, pages, text
//!   rules, time.
//! - [`config`] (settings every service shares), [`error`] (field-naming
//!   errors and how a downstream status maps), [`auth`] (caller identity,
//!   the service credential, access-token verification).
//!
//! Only the kernel speaks of the shop (money, order lines); transport and
//! storage know no service's domain. Start with [`transport::server::serve`],
//! then [`auth`] for how a backend decides who is calling.

pub mod auth;
pub mod config;
pub mod error;
pub mod kernel;
pub mod observability;
pub mod storage;
pub mod transport;
