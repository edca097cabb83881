//! Catalog's one error type and its one way out to `tonic::Status`.

use shop_platform::error::{self as platform_error, InvalidField};
use shop_platform::transport::budget::Busy;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::model::Shortage;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidArgument(#[from] InvalidField),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// A rule of state: out of stock, category in use, reservation released.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Lines a reservation cannot have, every one of them.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    OutOfStock(Vec<Shortage>),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A bug of ours: logged, never shown.
    #[error("{0}")]
    Internal(String),
    /// The search index failed (disk, or a bug): logged, never shown.
    #[error("search index: {0}")]
    Index(String),
    /// The index names a file that is gone (a stopping writer's clean-up
    /// ran after its last commit was skipped): the indexer rebuilds it.
    #[error("search index: {0}")]
    IndexTorn(String),
    /// Another process (or a server still stopping) has the index directory.
    #[error("search index: {0}")]
    IndexBusy(String),
    /// Listings from the index wait until it has caught up after a start.
    #[error("the search index is still being built; try again shortly")]
    IndexNotReady,
    /// A page deeper than listings go (and not past the end).
    #[error(
        "pages reach at most {max_depth} products deep (page × page_size); narrow the listing with search, category or a price range"
    )]
    TooDeep { max_depth: i64 },
    /// The budget for one kind of expensive work is spent.
    #[error(transparent)]
    Busy(#[from] Busy),
    /// The picture store failed (disk, network): logged; worth a retry.
    #[error(transparent)]
    Files(#[from] shop_platform::storage::files::FileStoreError),
    /// The caller left before its search finished; nobody hears this.
    #[error("the search was abandoned by its caller")]
    Abandoned,
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(invalid) => invalid.into(),
            Error::NotFound(what) => Status::not_found(format!("{what} not found")),
            Error::AlreadyExists(what) => Status::already_exists(format!("{what} already exists")),
            Error::FailedPrecondition(message) => Status::failed_precondition(message),
            Error::OutOfStock(ref shortages) => {
                // One google.rpc.PreconditionFailure violation per line, with what is left.
                let mut details = ErrorDetails::new();
                for shortage in shortages {
                    let kind = if shortage.is_sold { "OUT_OF_STOCK" } else { "NOT_SOLD" };
                    let description = format!("{} available, {} wanted", shortage.available, shortage.wanted);
                    details.add_precondition_failure_violation(
                        kind,
                        format!("product/{}", shortage.product_id),
                        description,
                    );
                }
                // A product not sold at all is NOT_FOUND, as it has always been for ReserveStock.
                let code = if shortages.iter().all(|shortage| shortage.is_sold) {
                    Code::FailedPrecondition
                } else {
                    Code::NotFound
                };
                Status::with_error_details(code, error.to_string(), details)
            }
            Error::Database(source) => platform_error::database(source),
            Error::Internal(cause) => platform_error::internal(&cause),
            Error::Index(cause) | Error::IndexTorn(cause) => {
                tracing::error!(error = %cause, "search index failed");
                Status::unavailable("the search index is unavailable")
            }
            Error::Files(cause) => {
                tracing::error!(error = %cause, "picture store failed");
                Status::unavailable("the picture store is unavailable; try again")
            }
            error @ (Error::IndexNotReady | Error::IndexBusy(_)) => Status::unavailable(error.to_string()),
            error @ Error::TooDeep { .. } => {
                let mut details = ErrorDetails::new();
                details.add_bad_request_violation("page", error.to_string());
                Status::with_error_details(Code::OutOfRange, format!("page: {error}"), details)
            }
            error @ Error::Busy(_) => Status::resource_exhausted(error.to_string()),
            error @ Error::Abandoned => Status::cancelled(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shop_platform::error::{FieldRefusal as _, Invalid};
    use tonic::Code;

    #[test]
    fn each_error_maps_to_its_contract_code() {
        let cases = [
            (Error::field("price")(Invalid::new("bad")), Code::InvalidArgument),
            (Error::NotFound("product 7".into()), Code::NotFound),
            (Error::AlreadyExists("category slug"), Code::AlreadyExists),
            (Error::FailedPrecondition("out of stock".into()), Code::FailedPrecondition),
            (Error::Database(sqlx::Error::RowNotFound), Code::Internal),
            (Error::TooDeep { max_depth: 10_000 }, Code::OutOfRange),
            (Error::Busy(Busy { kind: "index searches" }), Code::ResourceExhausted),
        ];
        for (error, code) in cases {
            assert_eq!(Status::from(error).code(), code);
        }
    }
}
