//! Reporting's one error type and its one way out to `tonic::Status`.

use shop_platform::error::{self as platform_error, InvalidField};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidArgument(#[from] InvalidField),
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// An event stream another service serves could not be opened, broke, or
    /// sent an event that does not decode. Only the stream consumers meet it.
    #[error(transparent)]
    Stream(Status),
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(invalid) => invalid.into(),
            Error::NotFound(what) => Status::not_found(format!("{what} not found")),
            Error::Database(source) => platform_error::database(source),
            Error::Stream(status) => platform_error::downstream("event stream", status),
        }
    }
}

#[cfg(test)]
mod tests {
    use shop_platform::error::{FieldRefusal as _, Invalid};
    use tonic::Code;

    use super::*;

    #[test]
    fn each_error_leaves_as_its_code() {
        let invalid = Status::from(Error::field("page")(Invalid::new("must not be negative")));
        assert_eq!(invalid.code(), Code::InvalidArgument);
        assert!(invalid.message().starts_with("page:"), "{invalid:?}");
        let missing = Status::from(Error::NotFound("category \"lamps\"".into()));
        assert_eq!((missing.code(), missing.message()), (Code::NotFound, "category \"lamps\" not found"));
        let outage = Status::from(Error::Stream(Status::unavailable("catalog is down")));
        assert_eq!(outage.code(), Code::Unavailable);
    }

    #[test]
    fn a_database_error_is_internal_and_says_nothing_of_sql() {
        let status = Status::from(Error::Database(sqlx::Error::Protocol("SELECT secret FROM reporting.sales".into())));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("SELECT"), "{status:?}");
    }
}
