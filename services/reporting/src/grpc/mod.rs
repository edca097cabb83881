//! gRPC edge, one file per gRPC service: protobuf in, the verified caller
//! and one use-case call, protobuf out.

mod reporting;

pub use reporting::ReportingApi;
