//! Cart-order's one error type and its one way out to `tonic::Status`.

use shop_platform::error::{self as platform_error, InvalidField};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidArgument(#[from] InvalidField),
    #[error("{0} not found")]
    NotFound(String),
    /// A rule of state: empty cart, out of stock, wrong order status.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Work that could not finish now and may on a retry.
    #[error("{0}")]
    Unavailable(String),
    /// Another Shop service refused or failed a call.
    #[error("{service}: {status}")]
    Downstream { service: &'static str, status: Status },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A bug of ours: logged, never shown.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn catalog(status: Status) -> Self {
        Self::Downstream { service: "catalog", status }
    }

    pub fn orders(status: Status) -> Self {
        Self::Downstream { service: "orders", status }
    }

    /// Whether another service was down or slow (worth retrying as it is),
    /// rather than refusing what it was asked.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            Error::Downstream { status, .. }
                if matches!(status.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled)
        ) || matches!(self, Error::Unavailable(_))
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(invalid) => invalid.into(),
            Error::NotFound(what) => Status::not_found(format!("{what} not found")),
            Error::FailedPrecondition(message) => Status::failed_precondition(message),
            Error::Unavailable(message) => Status::unavailable(message),
            Error::Downstream { service, status } => platform_error::downstream(service, status),
            Error::Database(source) => platform_error::database(source),
            Error::Internal(cause) => platform_error::internal(&cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shop_platform::error::{Invalid, NamesFields as _};
    use tonic::Code;

    #[test]
    fn each_error_maps_to_its_contract_code() {
        let cases = [
            (Error::field("quantity")(Invalid::new("bad")), Code::InvalidArgument),
            (Error::NotFound("order 7".into()), Code::NotFound),
            (Error::FailedPrecondition("the cart is empty".into()), Code::FailedPrecondition),
            (Error::Unavailable("try again".into()), Code::Unavailable),
            (Error::catalog(Status::unavailable("connection refused")), Code::Unavailable),
            (Error::catalog(Status::failed_precondition("product 3 is out of stock")), Code::FailedPrecondition),
            (Error::Database(sqlx::Error::RowNotFound), Code::Internal),
        ];
        for (error, code) in cases {
            assert_eq!(Status::from(error).code(), code);
        }
    }
}
