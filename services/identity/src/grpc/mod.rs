//! gRPC edge: proto in, one use-case call, proto out.

mod identity;
mod keys;

pub use identity::IdentityApi;
pub use keys::SigningKeysApi;

fn timestamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 }
}
