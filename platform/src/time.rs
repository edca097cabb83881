//! Times cross the wire as `google.protobuf.Timestamp` (API.md).

use chrono::{DateTime, Utc};

pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    // Subsecond nanos are always below 2·10⁹, within i32.
    prost_types::Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 }
}
