//! Identity's one error type and its one way out to `tonic::Status`.

use shop_platform::error::{self as platform_error, InvalidField};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidArgument(#[from] InvalidField),
    /// Login failures say the same thing whatever went wrong.
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("{0}")]
    PermissionDenied(&'static str),
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("too many {what} attempts; try again in {} s", retry_after.as_secs().max(1))]
    RateLimited { what: &'static str, retry_after: std::time::Duration },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Internal(String),
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(invalid) => invalid.into(),
            Error::Unauthenticated(message) => Status::unauthenticated(message),
            Error::PermissionDenied(message) => Status::permission_denied(message),
            Error::AlreadyExists(what) => Status::already_exists(format!("{what} already exists")),
            Error::NotFound(what) => Status::not_found(format!("{what} not found")),
            Error::RateLimited { retry_after, .. } => {
                // google.rpc.RetryInfo tells clients when to try again.
                let mut details = ErrorDetails::new();
                details.set_retry_info(Some(retry_after));
                Status::with_error_details(Code::ResourceExhausted, error.to_string(), details)
            }
            Error::Database(source) => platform_error::database(source),
            Error::Internal(cause) => platform_error::internal(&cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use shop_platform::error::{FieldRefusal as _, Invalid};

    #[test]
    fn each_error_maps_to_its_contract_code() {
        let cases = [
            (Error::field("email")(Invalid::new("bad")), Code::InvalidArgument),
            (Error::Unauthenticated("no"), Code::Unauthenticated),
            (Error::PermissionDenied("no"), Code::PermissionDenied),
            (Error::AlreadyExists("username"), Code::AlreadyExists),
            (Error::NotFound("user"), Code::NotFound),
            (Error::RateLimited { what: "login", retry_after: Duration::from_secs(3) }, Code::ResourceExhausted),
            (Error::Database(sqlx::Error::RowNotFound), Code::Internal),
            (Error::Internal("key".into()), Code::Internal),
        ];
        for (error, code) in cases {
            assert_eq!(Status::from(error).code(), code);
        }
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let status = Status::from(Error::Internal("signing key bytes".into()));
        assert_eq!(status.message(), "internal error");
    }
}
