//! Cart-order's one error type and its one way out to `tonic::Status`.

use shop_platform::error::{self as platform_error, InvalidField};
use tonic::{Code, Status};

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
    /// Another Shop service's NOT_FOUND that is, for the use case at hand, a
    /// rule of state (see [`Error::not_found_as_precondition`]): shown as
    /// FAILED_PRECONDITION with the peer's message and details.
    #[error("{service}: {status}")]
    DownstreamPrecondition { service: &'static str, status: Status },
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

    /// Another service's NOT_FOUND becomes a rule of state (its message and
    /// details kept); any other error stays as it is.
    pub fn not_found_as_precondition(self) -> Self {
        match self {
            Error::Downstream { service, status } if status.code() == Code::NotFound => {
                Error::DownstreamPrecondition { service, status }
            }
            other => other,
        }
    }

    /// Whether another service was down or slow (worth retrying as it is),
    /// rather than refusing what it was asked.
    pub fn is_outage(&self) -> bool {
        matches!(self, Error::Downstream { status, .. } if platform_error::peer_unreachable(status))
            || matches!(self, Error::Unavailable(_))
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
            Error::DownstreamPrecondition { service, status } => platform_error::downstream(
                service,
                Status::with_details(
                    Code::FailedPrecondition,
                    status.message(),
                    bytes::Bytes::copy_from_slice(status.details()),
                ),
            ),
            Error::Database(source) => platform_error::database(source),
            Error::Internal(cause) => platform_error::internal(&cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shop_platform::error::{FieldRefusal as _, Invalid};

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

    #[test]
    fn a_peers_not_found_as_a_rule_of_state_keeps_its_message_and_details() {
        let not_found =
            Status::with_details(Code::NotFound, "product 3 is not sold", bytes::Bytes::from_static(b"lines"));
        let status = Status::from(Error::orders(not_found).not_found_as_precondition());
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(status.message(), "product 3 is not sold");
        assert_eq!(status.details(), b"lines");
        let other = Error::orders(Status::unavailable("down")).not_found_as_precondition();
        assert!(matches!(other, Error::Downstream { .. }) && other.is_outage());
    }
}
