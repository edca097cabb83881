//! What operators see: logs and traces ([`telemetry`]), Prometheus metrics
//! ([`metrics`]), warnings limited in rate ([`log_limit`]), and loops that
//! restart with backoff instead of dying ([`restart`]).

pub mod log_limit;
pub mod metrics;
pub mod restart;
pub mod telemetry;
