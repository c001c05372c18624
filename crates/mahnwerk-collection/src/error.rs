//! The service's error type and its one mapping to gRPC status codes.

use crate::engine::Refused;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// What can go wrong. `Refused` and `NotFound` are the caller's, `Conflict` is retryable,
/// `Log`/`Database`/`Nats`/`Documents` are infrastructure (their text never reaches a caller),
/// `Unreadable` is a stored event this version cannot read (permanent: dead-lettered).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("too many concurrent changes to the case")]
    Conflict,
    #[error("event log: {0}")]
    Log(#[from] mahnwerk_eventlog::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("nats: {0}")]
    Nats(String),
    #[error("documents: {0}")]
    Documents(String),
    /// A document of an erased debtor (GDPR Art. 17): unreadable for good.
    #[error("{0}")]
    Erased(String),
    #[error(transparent)]
    Unreadable(#[from] crate::casefile::Unreadable),
}

pub type Result<T> = std::result::Result<T, Error>;

/// `INVALID_ARGUMENT` naming one field.
pub fn invalid_field(field: &str, reason: &str) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        format!("{field}: {reason}"),
        ErrorDetails::with_bad_request(vec![FieldViolation::new(field, reason)]),
    )
}

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        match err {
            Error::Refused(Refused::Invalid { field, reason }) => invalid_field(&field, &reason),
            Error::Refused(Refused::Precondition(msg)) => Status::failed_precondition(msg),
            Error::NotFound(what) => Status::not_found(format!("{what} not found")),
            Error::Conflict | Error::Log(mahnwerk_eventlog::Error::Conflict { .. }) => {
                Status::aborted("concurrent change to the same case; retry")
            }
            Error::Log(e) => {
                tracing::error!(error = %e, "event log failure");
                Status::unavailable("event log unavailable")
            }
            Error::Database(e) => {
                tracing::error!(error = %e, "database failure");
                Status::unavailable("database unavailable")
            }
            Error::Nats(e) => {
                tracing::error!(error = %e, "nats failure");
                Status::unavailable("message bus unavailable")
            }
            Error::Documents(e) => {
                tracing::error!(error = %e, "document store failure");
                Status::unavailable("document store unavailable")
            }
            Error::Erased(m) => Status::failed_precondition(m),
            Error::Unreadable(e) => {
                tracing::error!(error = %e, "unreadable case stream");
                Status::internal("the case stream holds an event this version cannot read")
            }
        }
    }
}

impl From<Error> for mahnwerk_bus::HandlerError {
    fn from(err: Error) -> Self {
        match err {
            Error::Unreadable(e) => mahnwerk_bus::HandlerError::Permanent(e.to_string()),
            other => mahnwerk_bus::HandlerError::Transient(other.to_string()),
        }
    }
}
