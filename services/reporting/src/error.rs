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
