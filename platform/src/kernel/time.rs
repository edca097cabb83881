//! Times cross the wire as `google.protobuf.Timestamp` (API.md).

use chrono::{DateTime, Utc};

pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    // Subsecond nanos are always below 2·10⁹, within i32.
    prost_types::Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 }
}

/// A peer's timestamp as a time; `None` when unset or out of range.
pub fn from_timestamp(at: Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    at.and_then(|at| DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).unwrap_or(0)))
}
