//! Shop's gRPC contract, generated from `proto/shop/**` (see API.md).
//!
//! Modules nest like the protobuf packages (`packages.rs`, made by the
//! build) because prost refers across packages with `super::super::…`
//! paths. `FILE_DESCRIPTOR_SET` feeds server reflection; [`contract`] reads
//! from it what the gateway exposes and how.
#![allow(clippy::all, clippy::pedantic)]

pub mod codec;
pub mod contract;

include!(concat!(env!("OUT_DIR"), "/packages.rs"));

pub use self::shop::{cart::v1 as cart, catalog::v1 as catalog, identity::v1 as identity};
pub use self::shop::{order::v1 as order, reporting::v1 as reporting};

/// Every message and service of the contract, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("shop_descriptor");

/// The OpenAPI 3.1 document of the Connect face, made from the protos when
/// this crate was built; the gateway serves it at `GET /openapi.json`, and
/// docs/openapi.json is a copy that must match it.
pub const OPENAPI_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// A message of one of the ordered event streams (catalog, orders). The
/// outbox stores it without its position; readers stamp it on the way out.
pub trait StreamEvent: prost::Message + Default + Send + 'static {
    fn stamp(&mut self, sequence: i64, occurred_at: prost_types::Timestamp);
    fn sequence(&self) -> i64;
    fn occurred_at(&self) -> Option<prost_types::Timestamp>;
}

/// Both streams' events carry their position the same way.
macro_rules! stream_event {
    ($($event:ty),+) => {$(
        impl StreamEvent for $event {
            fn stamp(&mut self, sequence: i64, occurred_at: prost_types::Timestamp) {
                self.sequence = sequence;
                self.occurred_at = Some(occurred_at);
            }

            fn sequence(&self) -> i64 {
                self.sequence
            }

            fn occurred_at(&self) -> Option<prost_types::Timestamp> {
                self.occurred_at
            }
        }
    )+};
}

stream_event!(catalog::CatalogEvent, order::OrderEvent);
