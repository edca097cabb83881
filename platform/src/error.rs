//! The pieces of error mapping every service's own `Error` uses: a reason a
//! value was refused ([`Invalid`]), the `INVALID_ARGUMENT` status that names the
//! field, and the rule that `INTERNAL` never carries SQL or stack text.

use std::borrow::Cow;
use std::fmt;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Why a value was refused, without the field name (the gRPC layer adds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub Cow<'static, str>);

impl Invalid {
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Self(reason.into())
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// A refused request field: what every service's `Error::InvalidArgument`
/// carries, and its one way out (`INVALID_ARGUMENT` naming the field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidField {
    pub field: &'static str,
    pub reason: Invalid,
}

impl fmt::Display for InvalidField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for InvalidField {}

/// A value refused, turned into the service's error naming its field:
/// `Money::parse(&req.price).map_err(Error::field("price"))?`.
pub trait FieldRefusal: From<InvalidField> {
    fn field(field: &'static str) -> impl FnOnce(Invalid) -> Self {
        move |reason| Self::from(InvalidField { field, reason })
    }
}

impl<E: From<InvalidField>> FieldRefusal for E {}

impl From<InvalidField> for Status {
    fn from(invalid: InvalidField) -> Self {
        invalid_argument(invalid.field, &invalid.reason)
    }
}

/// `INVALID_ARGUMENT` with a `google.rpc.BadRequest` detail naming `field`.
pub fn invalid_argument(field: &str, reason: &Invalid) -> Status {
    let mut details = ErrorDetails::new();
    details.add_bad_request_violation(field, reason.to_string());
    Status::with_error_details(Code::InvalidArgument, format!("{field}: {reason}"), details)
}

/// An error and its causes on one line, each said once: many errors repeat
/// their source's text in their own (`role "x" does not exist: role "x"
/// does not exist`), so a cause already said is left out.
pub fn chain_without_repeats(error: &(dyn std::error::Error + 'static)) -> String {
    let mut said: Vec<String> = Vec::new();
    let mut cause = Some(error);
    while let Some(error) = cause {
        let text = error.to_string();
        if !said.iter().any(|earlier| earlier.contains(&text)) {
            said.push(text);
        }
        cause = error.source();
    }
    said.join(": ")
}

/// The only road to `INTERNAL`: the cause is logged inside the RPC's span and
/// the client sees a fixed message.
pub fn internal(cause: &dyn fmt::Debug) -> Status {
    tracing::error!(error = ?cause, "internal error");
    Status::internal("internal error")
}

/// Maps a database failure, saying what happened: a statement that ran out
/// of time is `DEADLINE_EXCEEDED`; no free connection in time means the
/// service is busy, and the database being unreachable, overloaded or
/// restarting means it is down (both `UNAVAILABLE`, worth a retry); a
/// serialization failure or deadlock is `ABORTED`; anything else is a bug.
pub fn database(error: sqlx::Error) -> Status {
    let sqlstate = error.as_database_error().and_then(|db| db.code()).map(|code| code.into_owned());
    if sqlstate.as_deref() == Some("57014") {
        tracing::warn!(error = %error, "statement cancelled (statement timeout)");
        return Status::deadline_exceeded(
            "a database statement took longer than allowed (SHOP_DB_STATEMENT_TIMEOUT_MS); try a narrower request",
        );
    }
    if matches!(error, sqlx::Error::PoolTimedOut) {
        tracing::warn!("no database connection free in time");
        return Status::unavailable("the service is busy (no database connection came free in time); retry shortly");
    }
    let unavailable = matches!(error, sqlx::Error::PoolClosed | sqlx::Error::Io(_))
        // 08: connection exception, 53: insufficient resources,
        // 57: operator intervention (shutdown, restart).
        || sqlstate.as_deref().is_some_and(|code| ["08", "53", "57"].iter().any(|class| code.starts_with(class)));
    if unavailable {
        tracing::warn!(error = %error, "database unavailable");
        return Status::unavailable("database is unavailable");
    }
    // 22021/22P05: a value Postgres cannot store (NUL in text). Field rules
    // refuse those first; this keeps one that slips through from looking
    // like our bug.
    if matches!(sqlstate.as_deref(), Some("22021" | "22P05")) {
        return invalid_argument("request", &Invalid::new("contains a character that cannot be stored (such as NUL)"));
    }
    if matches!(sqlstate.as_deref(), Some("40001" | "40P01")) {
        tracing::warn!(error = %error, "transaction aborted by a conflict");
        return Status::aborted("conflicting concurrent update; retry");
    }
    internal(&error)
}

/// Whether a failed call never got its answer: the peer was down, slow, or
/// its connection broke mid-call. tonic reports a broken HTTP/2 stream or
/// connection (a peer that stops resets its calls, often with NO_ERROR) as
/// INTERNAL, like a bug the peer answered; only that one carries the h2
/// error it came from.
pub fn peer_unreachable(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => true,
        Code::Internal => {
            std::error::Error::source(status).is_some_and(|source| source.downcast_ref::<h2::Error>().is_some())
        }
        _ => false,
    }
}

/// Maps a failed call to another Shop service: it being down, slow or cut
/// off mid-call is `UNAVAILABLE` naming it; its own client errors pass
/// through as they are.
pub fn downstream(service: &str, status: Status) -> Status {
    match status.code() {
        // The called service already said which service further down is
        // unavailable (this function's own wording): keep its word.
        Code::Unavailable if status.message().ends_with(" is unavailable") => Status::unavailable(status.message()),
        _ if peer_unreachable(&status) => Status::unavailable(format!("{service} is unavailable")),
        Code::Internal => Status::internal("internal error"),
        _ => status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_names_the_field_in_the_message_and_in_bad_request() {
        let status = invalid_argument("price", &Invalid::new("at most two fraction digits"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "price: at most two fraction digits");
        let bad_request = status.get_details_bad_request().expect("BadRequest detail");
        assert_eq!(bad_request.field_violations.len(), 1);
        assert_eq!(bad_request.field_violations[0].field, "price");
    }

    #[test]
    fn a_peer_cut_off_mid_call_is_unavailable_but_its_own_internal_answer_is_not() {
        // What tonic makes of a stream the peer reset while stopping.
        let cut_off = Status::from_error(Box::new(h2::Error::from(h2::Reason::NO_ERROR)));
        assert_eq!(cut_off.code(), Code::Internal);
        assert!(peer_unreachable(&cut_off));
        let status = downstream("catalog", cut_off);
        assert_eq!((status.code(), status.message()), (Code::Unavailable, "catalog is unavailable"));

        let answered = Status::internal("internal error");
        assert!(!peer_unreachable(&answered));
        assert_eq!(downstream("catalog", answered).code(), Code::Internal);
        assert!(!peer_unreachable(&Status::failed_precondition("out of stock")));
    }

    #[test]
    fn an_error_chain_says_each_cause_once() {
        #[derive(Debug)]
        struct Wrapped(std::io::Error);
        impl fmt::Display for Wrapped {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "tcp connect error: {}", self.0)
            }
        }
        impl std::error::Error for Wrapped {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let error = Wrapped(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused"));
        assert_eq!(chain_without_repeats(&error), "tcp connect error: Connection refused");
    }

    #[test]
    fn a_database_bug_is_internal_without_sql_text() {
        let status = database(sqlx::Error::Protocol("SELECT secret FROM t".into()));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("SELECT"));
    }

    #[tokio::test]
    async fn a_statement_that_runs_out_of_time_is_deadline_exceeded_not_an_outage() {
        use sqlx::Connection as _;
        let mut conn =
            sqlx::PgConnection::connect(&crate::storage::testing::server_url()).await.expect("test Postgres");
        sqlx::query("SET statement_timeout = 10").execute(&mut conn).await.unwrap();
        let error = sqlx::query("SELECT pg_sleep(1)").execute(&mut conn).await.unwrap_err();
        let status = database(error);
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
        assert!(status.message().contains("SHOP_DB_STATEMENT_TIMEOUT_MS"), "{status:?}");
    }

    #[test]
    fn an_exhausted_pool_is_unavailable_and_says_the_service_is_busy() {
        let status = database(sqlx::Error::PoolTimedOut);
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("busy"), "{status:?}");
    }

    #[test]
    fn a_downstream_outage_stays_unavailable_and_client_errors_pass() {
        let down = downstream("catalog", Status::unavailable("connection refused"));
        assert_eq!(down.code(), Code::Unavailable);
        assert_eq!(down.message(), "catalog is unavailable");
        let not_found = downstream("catalog", Status::not_found("product not found"));
        assert_eq!(not_found.code(), Code::NotFound);
        let relayed = downstream("orders", downstream("catalog", Status::unavailable("tcp connect error")));
        assert_eq!(relayed.message(), "catalog is unavailable", "the service really down is named");
        let bug = downstream("catalog", Status::internal("SELECT … panicked"));
        assert_eq!(bug.message(), "internal error");
    }
}
