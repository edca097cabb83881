//! Logs go to stderr through `tracing`: human-readable by default, JSON lines
//! when `SHOP_LOG_FORMAT=json`; the level filter comes from `RUST_LOG`.

use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global subscriber once; later calls (tests) are no-ops.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("SHOP_LOG_FORMAT").is_ok_and(|format| format == "json");
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _already_set = if json { builder.json().with_current_span(true).try_init() } else { builder.try_init() };
}
