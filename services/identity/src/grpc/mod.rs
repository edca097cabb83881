//! gRPC edge: proto in, one use-case call, proto out.

mod identity;
mod keys;

pub use identity::IdentityApi;
pub use keys::SigningKeysApi;
