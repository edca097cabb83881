//! Reporting's one error type and its one way out to `tonic::Status`.

use shop_platform::error::{self as platform_error, Invalid, InvalidField};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidArgument(#[from] InvalidField),
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl Error {
    /// `Page::parse(..).map_err(Error::field("page"))?`
    pub fn field(field: &'static str) -> impl FnOnce(Invalid) -> Self {
        move |reason| Self::InvalidArgument(InvalidField { field, reason })
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(invalid) => invalid.into(),
            Error::NotFound(what) => Status::not_found(format!("{what} not found")),
            Error::Database(source) => platform_error::database(source),
        }
    }
}
